"""The gateway's signed receipt: proof, handed to the sender at once, of what was accepted and when.

The receipt is a small XML document in the namespace ``urn:gateway:receipt:1``, signed by the gateway
with an enveloped W3C XML signature (exclusive c14n, RSA-SHA256 or ECDSA-SHA256, ``Reference URI=""``,
the gateway's certificate in ``KeyInfo``), so any XMLDSig verifier holding the certificate served at
``GET /v1/gateway/certificate`` can check it (``xmlsec1 --verify --pubkey-cert-pem gateway.pem``).

Format (element order fixed as written here; every element once unless marked)::

    <r:Receipt xmlns:r="urn:gateway:receipt:1" version="1">
      <r:GatewayDocumentId>the gateway's id of the accepted document</r:GatewayDocumentId>
      <r:DocumentId>edXML DocumentId (written or derived)</r:DocumentId>
      <r:Kind>document | status</r:Kind>
      <r:Sender>sender OrganId</r:Sender>
      <r:Recipients><r:Recipient>OrganId</r:Recipient>*</r:Recipients>
      <r:EnvelopeSha256>hex SHA-256 of the envelope bytes as received</r:EnvelopeSha256>
      <r:Attachments>
        <r:Attachment>*  <r:ContentId/> <r:Name/> <r:Sha256/> <r:Size/>  </r:Attachment>
      </r:Attachments>
      <r:Signed>true | false</r:Signed>           (false: accepted unsigned under the channel policy)
      <r:SignerCertificateSha256/>?               (the sender's certificate, when signed)
      <r:SentAt>2025-03-01T02:03:04.123456Z</r:SentAt>          (UTC, microseconds: the sent instant)
      <r:SentAtLocal>2025-03-01T09:03:04.123456+07:00</r:SentAtLocal>
      <r:Ledger><r:Sequence>n</r:Sequence><r:EntryHash>hex</r:EntryHash></r:Ledger>
      <ds:Signature>…</ds:Signature>               (last child of r:Receipt)
    </r:Receipt>

:func:`verify_receipt` checks it with the same allow-lists as envelopes and reads only the signed tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography import x509
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from ._values import VN_TZ
from ._xml import DS_NS, q
from .build import _SIGNATURE_METHODS, PrivateKey, SigningAlgorithm
from .errors import SchemaInvalid, SignatureInvalid, SignatureMissing, SignatureWrongLocation
from .limits import Limits
from .parse import parse_xml
from .signature import ALLOWED_DIGESTS, ALLOWED_SIGNATURE_METHODS

__all__ = ["RECEIPT_NS", "ReceiptAttachment", "ReceiptData", "build_receipt", "verify_receipt"]

RECEIPT_NS = "urn:gateway:receipt:1"
_RECEIPT_LIMITS = Limits(max_envelope_bytes=16 * 1024 * 1024, max_depth=16, max_elements=50_000)


@dataclass(frozen=True)
class ReceiptAttachment:
    content_id: str
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ReceiptData:
    gateway_document_id: str
    document_id: str
    sender: str
    recipients: tuple[str, ...]
    envelope_sha256: str
    attachments: tuple[ReceiptAttachment, ...]
    signed: bool
    #: the sent instant, aware (rendered in UTC with microseconds)
    sent_at: datetime
    ledger_sequence: int
    ledger_entry_hash: str
    signer_certificate_sha256: str | None = None
    kind: Literal["document", "status"] = "document"

    @property
    def sent_at_local(self) -> datetime:
        return self.sent_at.astimezone(VN_TZ)


def _r(local: str) -> str:
    return q(local, RECEIPT_NS)


def _sub(parent: etree._Element, local: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _r(local))
    if text is not None:
        el.text = text
    return el


def _iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_local(value: datetime) -> str:
    return value.astimezone(VN_TZ).strftime("%Y-%m-%dT%H:%M:%S.%f+07:00")


def build_receipt(
    data: ReceiptData,
    private_key: PrivateKey,
    certificate: x509.Certificate,
    *,
    algorithm: SigningAlgorithm = "rsa-sha256",
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """The signed receipt XML for ``data`` (UTF-8 bytes)."""
    if data.sent_at.tzinfo is None:
        raise ValueError("sent_at must be an aware datetime")
    root = etree.Element(_r("Receipt"), {"version": "1"}, nsmap={"r": RECEIPT_NS})
    _sub(root, "GatewayDocumentId", data.gateway_document_id)
    _sub(root, "DocumentId", data.document_id)
    _sub(root, "Kind", data.kind)
    _sub(root, "Sender", data.sender)
    recipients = _sub(root, "Recipients")
    for organ_id in data.recipients:
        _sub(recipients, "Recipient", organ_id)
    _sub(root, "EnvelopeSha256", data.envelope_sha256)
    attachments = _sub(root, "Attachments")
    for att in data.attachments:
        el = _sub(attachments, "Attachment")
        _sub(el, "ContentId", att.content_id)
        _sub(el, "Name", att.name)
        _sub(el, "Sha256", att.sha256)
        _sub(el, "Size", str(att.size))
    _sub(root, "Signed", "true" if data.signed else "false")
    if data.signer_certificate_sha256 is not None:
        _sub(root, "SignerCertificateSha256", data.signer_certificate_sha256)
    _sub(root, "SentAt", _iso_utc(data.sent_at))
    _sub(root, "SentAtLocal", _iso_local(data.sent_at))
    ledger = _sub(root, "Ledger")
    _sub(ledger, "Sequence", str(data.ledger_sequence))
    _sub(ledger, "EntryHash", data.ledger_entry_hash)
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=_SIGNATURE_METHODS[algorithm],
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    # signxml appends an enveloped signature to the root: the last child, as documented above.
    signed = signer.sign(root, key=private_key, cert=[certificate, *chain])
    out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return out


def _text(parent: etree._Element, local: str) -> str:
    found = [c for c in parent if c.tag == _r(local)]
    if len(found) != 1 or found[0].text is None:
        raise SchemaInvalid(f"receipt element {local} is missing or repeated")
    return found[0].text.strip()


def verify_receipt(xml: bytes, gateway_cert: x509.Certificate, *, at: datetime | None = None) -> ReceiptData:
    """Verify a receipt against the gateway certificate and return what it signs.

    ``at`` is the instant at which the certificate must be valid (default: now); pass the receipt's own
    sent instant, learnt out of band, to check an old receipt after the certificate expired.
    """
    root = parse_xml(xml, _RECEIPT_LIMITS)
    if root.tag != _r("Receipt"):
        raise SchemaInvalid("not a gateway receipt")
    signatures = list(root.iter(q("Signature", DS_NS)))
    if not signatures:
        raise SignatureMissing("the receipt is not signed")
    if len(signatures) > 1 or signatures[0].getparent() is not root or root[-1] is not signatures[0]:
        raise SignatureWrongLocation("the receipt signature must be the one last child of Receipt")
    config = SignatureConfiguration(
        require_x509=True,
        location="./",
        expect_references=1,
        signature_methods=ALLOWED_SIGNATURE_METHODS,
        digest_algorithms=ALLOWED_DIGESTS,
        verification_time=at,
        default_reference_c14n_method=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=gateway_cert, expect_config=config)
        if isinstance(result, list):
            raise SignatureInvalid("the receipt signature must have exactly one reference")
        reference = result.signature_xml.find(f"{q('SignedInfo', DS_NS)}/{q('Reference', DS_NS)}")
    except Exception:  # fail closed: any verifier failure is a refusal
        raise SignatureInvalid("the receipt signature does not verify") from None
    if reference is None or reference.get("URI") != "":
        raise SignatureWrongLocation('the receipt signature must cover the whole receipt (URI="")')
    signed = result.signed_xml
    if not isinstance(signed, etree._Element) or signed.tag != _r("Receipt"):
        raise SignatureInvalid("the receipt signature does not cover the receipt")

    recipients_el = [c for c in signed if c.tag == _r("Recipients")]
    attachments_el = [c for c in signed if c.tag == _r("Attachments")]
    ledger_el = [c for c in signed if c.tag == _r("Ledger")]
    if len(recipients_el) != 1 or len(attachments_el) != 1 or len(ledger_el) != 1:
        raise SchemaInvalid("the receipt lacks Recipients, Attachments or Ledger")
    signer_sha = [c for c in signed if c.tag == _r("SignerCertificateSha256")]
    kind = _text(signed, "Kind")
    signed_flag = _text(signed, "Signed")
    if kind not in ("document", "status") or signed_flag not in ("true", "false"):
        raise SchemaInvalid("the receipt's Kind or Signed is not in its code list")
    try:
        sent_at = datetime.fromisoformat(_text(signed, "SentAt"))
        sequence = int(_text(ledger_el[0], "Sequence"))
        attachments = tuple(
            ReceiptAttachment(
                content_id=_text(a, "ContentId"),
                name=_text(a, "Name"),
                sha256=_text(a, "Sha256"),
                size=int(_text(a, "Size")),
            )
            for a in attachments_el[0]
            if a.tag == _r("Attachment")
        )
    except ValueError:
        raise SchemaInvalid("the receipt holds an unreadable number or instant") from None
    return ReceiptData(
        gateway_document_id=_text(signed, "GatewayDocumentId"),
        document_id=_text(signed, "DocumentId"),
        sender=_text(signed, "Sender"),
        recipients=tuple((c.text or "").strip() for c in recipients_el[0] if c.tag == _r("Recipient")),
        envelope_sha256=_text(signed, "EnvelopeSha256"),
        attachments=attachments,
        signed=signed_flag == "true",
        sent_at=sent_at,
        ledger_sequence=sequence,
        ledger_entry_hash=_text(ledger_el[0], "EntryHash"),
        signer_certificate_sha256=(signer_sha[0].text or "").strip() if signer_sha else None,
        kind="status" if kind == "status" else "document",
    )
