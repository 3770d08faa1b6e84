"""Fail-closed verification of the gateway's XML signature profile (EDXML.md "Signatures").

The profile: one W3C XML signature (``http://www.w3.org/2000/09/xmldsig#``), the last child of
``edXMLHeader``, enveloped, a single ``Reference URI=""`` over the whole ``edXML`` document (attachments
included), exclusive canonicalisation, RSA-SHA256 / RSA-PSS / ECDSA-SHA256 or stronger, the signer's
certificate in ``KeyInfo`` and registered for the sending agency. The edXML-namespace ``Signature`` found
in the wild (RSA-SHA1, placeholder values) is data: it is never verified and never counts as a signature.

Policies (the sender's, from the register):

- ``required``: a signature must be present, by one of the sender's registered certificates.
- ``channel``: the authenticated channel vouches for the sender, so an unsigned envelope is accepted; a
  signature that is present is checked exactly as under ``required``.
- ``upstream``: a message relayed by an upstream axis (another gateway, the national axis) from an agency
  registered only upstream. The upstream authenticated the sending system, so an unsigned envelope is
  accepted as under ``channel``; a signature that is present is still checked, fail-closed. While the
  local register holds certificates for the sender they decide, as under ``required``; while it holds none
  the certificate in ``KeyInfo`` is the only one there is, and it is used: the signature then proves that
  the content is intact and signed by the holder of that certificate, not who that holder is (the upstream
  vouched for that). :attr:`SignatureResult.certificate_source` says which of the two was used.

:func:`verify_signature` raises a typed error for every failure and otherwise returns the tree signxml
rebuilt from the canonical bytes it verified. Callers read *only* that tree ("see what is signed"): a
signature-wrapping attack that adds unsigned content next to signed content cannot reach them.

Steps, in order:

1. Find W3C ``ds:Signature`` elements anywhere in the document.
   None: under ``required`` → SignatureMissing (a legacy edXML ``Signature`` does not count);
   under ``channel`` or ``upstream`` → accepted as unsigned (``signed=False``, ``certificate_source=None``,
   the parsed tree is returned as is).
2. More than one, or not the last element child of ``edXMLEnvelope/edXMLHeader`` → SignatureWrongLocation.
3. ``SignedInfo``: canonicalisation and signature method in the allow-lists → SignatureAlgorithmForbidden.
4. Exactly one ``Reference`` with ``URI=""`` and the enveloped-signature transform → SignatureWrongLocation;
   transforms other than enveloped-signature and exclusive c14n (XSLT, XPath, base64 ...)
   → SignatureTransformForbidden; digest method in the allow-list (no SHA-1) → SignatureAlgorithmForbidden.
5. The first ``KeyInfo/X509Data/X509Certificate`` decodes (else SignatureInvalid); its SHA-256 (of the
   DER) is the result's ``certificate_sha256``. Under ``required`` and ``channel``, and under ``upstream``
   when ``certificates`` is not empty, it must be one of the sender's registered certificates
   → CertificateUnregistered, and from here on only the registered copy is used
   (``certificate_source="register"``). Under ``upstream`` with ``certificates`` empty, the decoded KeyInfo
   certificate itself is used (``certificate_source="keyinfo"``); an empty register never turns another
   policy into this one.
6. The certificate is not revoked (``revoked_at`` at or before ``now``) → CertificateRevoked, and is valid
   now → CertificateExpired / CertificateNotYetValid. A KeyInfo certificate has no revocation information,
   so only its validity is checked.
7. signxml ``XMLVerifier`` with the certificate of step 5 (``x509_cert=``: a registered one, so that
   KeyInfo only selects and is never trusted; or, under ``upstream`` with an empty register, KeyInfo's own)
   and an explicit ``SignatureConfiguration`` repeating the allow-lists, the location and
   ``expect_references=1`` → SignatureInvalid on any failure, expected or not.
8. From the signed tree only: the signing time (below) is read → DateInvalid if unreadable or in the
   future, and the certificate must have been valid (and, if registered, not revoked) then
   → CertificateExpired / CertificateNotYetValid / CertificateRevoked.

Signing time. The profile has a single reference over the document, so a XAdES ``SigningTime`` (which
lives in a separately referenced ``SignedProperties``) cannot occur. The signing time is therefore the
``Timestamp`` of the sender's own ``TraceHeader`` (its ``OrganId`` equals ``From/OrganId``; the last one
if several), read from the signed tree as Vietnam local time (+07:00); without one, ``now``. This is a time
the signer *claims*, not a trusted timestamp: it can only add a refusal (the certificate must be valid then
*and* now, and the claim may not lie in the future beyond a small clock skew), it can never rescue a
certificate that is expired or revoked now. Long-term validation of old signatures (after the certificate
expires) is out of scope: the gateway's own signed receipt proves integrity from the sent instant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration, XMLVerifier

from ._values import parse_datetime
from ._xml import DS_NS, EDXML_NS, child, children, header, message_header, q
from .errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    CertificateUnregistered,
    DateInvalid,
    SignatureAlgorithmForbidden,
    SignatureInvalid,
    SignatureMissing,
    SignatureTransformForbidden,
    SignatureWrongLocation,
)

__all__ = [
    "ALLOWED_C14N",
    "ALLOWED_DIGESTS",
    "ALLOWED_SIGNATURE_METHODS",
    "MAX_CLOCK_SKEW",
    "CertificateSource",
    "Policy",
    "SignatureResult",
    "TrustedCertificate",
    "certificate_sha256",
    "verify_signature",
]

Policy = Literal["required", "channel", "upstream"]
#: Where the certificate that verified a signature came from: the sender's register, or (only under the
#: ``upstream`` policy with no registered certificate) the signature's own ``KeyInfo``.
CertificateSource = Literal["register", "keyinfo"]
_POLICIES: frozenset[str] = frozenset(get_args(Policy))

#: RSA PKCS#1 v1.5, RSA-PSS (RFC 9231 MGF1 forms) and ECDSA, with SHA-256 or stronger.
ALLOWED_SIGNATURE_METHODS: frozenset[SignatureMethod] = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.SHA256_RSA_MGF1,
        SignatureMethod.SHA384_RSA_MGF1,
        SignatureMethod.SHA512_RSA_MGF1,
        SignatureMethod.SHA3_256_RSA_MGF1,
        SignatureMethod.SHA3_384_RSA_MGF1,
        SignatureMethod.SHA3_512_RSA_MGF1,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
        SignatureMethod.ECDSA_SHA3_256,
        SignatureMethod.ECDSA_SHA3_384,
        SignatureMethod.ECDSA_SHA3_512,
    }
)
ALLOWED_DIGESTS: frozenset[DigestAlgorithm] = frozenset(
    {
        DigestAlgorithm.SHA256,
        DigestAlgorithm.SHA384,
        DigestAlgorithm.SHA512,
        DigestAlgorithm.SHA3_256,
        DigestAlgorithm.SHA3_384,
        DigestAlgorithm.SHA3_512,
    }
)
ALLOWED_C14N: frozenset[str] = frozenset(
    {
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value,
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0_WITH_COMMENTS.value,
    }
)
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_ALLOWED_TRANSFORMS = ALLOWED_C14N | {ENVELOPED}
_SIGNATURE_URIS = frozenset(m.value for m in ALLOWED_SIGNATURE_METHODS)
_DIGEST_URIS = frozenset(d.value for d in ALLOWED_DIGESTS)

#: How far a claimed signing time may lie ahead of the gateway's clock.
MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class TrustedCertificate:
    """A certificate registered for the sending agency (the register's view of it)."""

    sha256: str
    certificate: x509.Certificate
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class SignatureResult:
    signed: bool
    #: The tree to read from: what the signature covers (``signed=True``) or the parsed tree (unsigned).
    signed_root: etree._Element
    certificate_sha256: str | None
    signing_time: datetime | None
    signature_method: str | None = None
    #: ``"register"`` or ``"keyinfo"`` when signed (module docstring, step 5); ``None`` when unsigned.
    certificate_source: CertificateSource | None = None


def certificate_sha256(certificate: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding (how the register names certificates)."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def _ds(local: str) -> str:
    return q(local, DS_NS)


def _one(parent: etree._Element, local: str) -> etree._Element:
    found = children(parent, local, DS_NS)
    if len(found) != 1:
        raise SignatureInvalid(f"ds:{local} must appear exactly once in ds:{etree.QName(parent).localname}")
    return found[0]


def _algorithm(el: etree._Element) -> str:
    return (el.get("Algorithm") or "").strip()


def _check_structure(root: etree._Element, signature: etree._Element) -> str:
    """Steps 2-4. Returns the signature method URI."""
    hdr = header(root)
    if signature.getparent() is not hdr:
        raise SignatureWrongLocation("the XML signature is not a child of edXMLEnvelope/edXMLHeader")
    last = [el for el in hdr if isinstance(el.tag, str)][-1]
    if last is not signature:
        raise SignatureWrongLocation("the XML signature is not the last child of edXMLHeader")

    signed_info = _one(signature, "SignedInfo")
    c14n = _algorithm(_one(signed_info, "CanonicalizationMethod"))
    if c14n not in ALLOWED_C14N:
        raise SignatureAlgorithmForbidden("SignedInfo is not canonicalised with exclusive c14n")
    method = _algorithm(_one(signed_info, "SignatureMethod"))
    if method not in _SIGNATURE_URIS:
        raise SignatureAlgorithmForbidden(
            "the signature method is not RSA-SHA256 / RSA-PSS / ECDSA-SHA256 or stronger (SHA-1 is refused)"
        )

    references = children(signed_info, "Reference", DS_NS)
    if len(references) != 1:
        raise SignatureWrongLocation("the signature must hold exactly one Reference, over the whole document")
    reference = references[0]
    if reference.get("URI") != "":
        raise SignatureWrongLocation('the signature Reference must have URI="" (the whole document)')
    transforms_el = child(reference, "Transforms", DS_NS)
    transforms = (
        [_algorithm(t) for t in children(transforms_el, "Transform", DS_NS)] if transforms_el is not None else []
    )
    if transforms_el is not None and len(transforms) != len([c for c in transforms_el if isinstance(c.tag, str)]):
        raise SignatureTransformForbidden("ds:Transforms holds something other than ds:Transform")
    if any(t not in _ALLOWED_TRANSFORMS for t in transforms):
        raise SignatureTransformForbidden(
            "only the enveloped-signature and exclusive c14n transforms are accepted (no XSLT, XPath, base64)"
        )
    if ENVELOPED not in transforms:
        raise SignatureWrongLocation("the signature is not enveloped (enveloped-signature transform missing)")
    if len(transforms) != len(set(transforms)) or len(transforms) > 2:
        raise SignatureTransformForbidden("the signature repeats a transform")
    for transform in children(transforms_el, "Transform", DS_NS) if transforms_el is not None else []:
        if any(isinstance(c.tag, str) for c in transform):
            # InclusiveNamespaces is the only parameter exclusive c14n knows; the profile needs none, and a
            # parameterised transform is how XPath/XSLT payloads travel.
            raise SignatureTransformForbidden("signature transforms must not carry parameters")
    digest = _algorithm(_one(reference, "DigestMethod"))
    if digest not in _DIGEST_URIS:
        raise SignatureAlgorithmForbidden("the digest method is not SHA-256 or stronger (SHA-1 is refused)")
    return method


def _signer_certificate(signature: etree._Element) -> tuple[x509.Certificate, str]:
    key_info = child(signature, "KeyInfo", DS_NS)
    certs: list[etree._Element] = []
    if key_info is not None:
        for x509_data in children(key_info, "X509Data", DS_NS):
            certs.extend(children(x509_data, "X509Certificate", DS_NS))
    if not certs:
        raise SignatureInvalid("KeyInfo carries no X509Certificate")
    try:
        der = base64.b64decode("".join((certs[0].text or "").split()), validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("the X509Certificate in KeyInfo does not decode") from None
    return cert, hashlib.sha256(der).hexdigest()


def _check_validity(cert: x509.Certificate, at: datetime, what: str) -> None:
    if at < cert.not_valid_before_utc:
        raise CertificateNotYetValid(f"the signing certificate is not yet valid {what}")
    if at > cert.not_valid_after_utc:
        raise CertificateExpired(f"the signing certificate has expired {what}")


def _signing_time(signed_root: etree._Element) -> datetime | None:
    sender_el = child(message_header(signed_root), "From")
    organ_el = child(sender_el, "OrganId") if sender_el is not None else None
    sender = (organ_el.text or "").strip() if organ_el is not None else None
    trace_list = child(header(signed_root), "TraceHeaderList")
    if trace_list is None or not sender:
        return None
    stamps: list[etree._Element] = []
    for trace in children(trace_list, "TraceHeader"):
        organ = child(trace, "OrganId")
        if organ is not None and (organ.text or "").strip() == sender:
            stamp = child(trace, "Timestamp")
            if stamp is not None:
                stamps.append(stamp)
    if not stamps:
        return None
    return parse_datetime(stamps[-1].text, "TraceHeader/Timestamp")


def _huge_parser() -> etree.XMLParser:
    # signxml re-parses the document; inline attachments exceed libxml2's default 10 MB text node limit.
    # The bytes already passed gateway.envelope.parse (no DTD, bounded size and depth).
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


def verify_signature(
    root: etree._Element,
    certificates: Sequence[TrustedCertificate],
    *,
    now: datetime,
    policy: Policy = "required",
) -> SignatureResult:
    """Verify the profile signature of a parsed envelope (see the module docstring for the steps).

    ``certificates`` are the sender's registered certificates and ``policy`` its signature policy; an
    unknown policy is a programming error (ValueError), never a refusal.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if policy not in _POLICIES:
        raise ValueError("policy must be 'required', 'channel' or 'upstream'")

    # 1. find the W3C signatures (the legacy edXML one is never among them)
    signatures = list(root.iter(_ds("Signature")))
    if not signatures:
        if policy in ("channel", "upstream"):
            return SignatureResult(signed=False, signed_root=root, certificate_sha256=None, signing_time=None)
        legacy = child(header(root), "Signature", EDXML_NS) is not None
        raise SignatureMissing(
            "a W3C XML signature is required; the edXML-namespace Signature is not verified"
            if legacy
            else "a W3C XML signature is required and the envelope has none"
        )
    # 2. one signature, in its place
    if len(signatures) > 1:
        raise SignatureWrongLocation("the envelope holds more than one W3C XML signature")
    signature = signatures[0]
    # 3-4. algorithms, reference, transforms
    method = _check_structure(root, signature)

    # 5. the signer's certificate must be registered, and from here on only the registered copy is used;
    # except under upstream with nothing registered, where KeyInfo's certificate is all there is
    cert_in_keyinfo, fingerprint = _signer_certificate(signature)
    registered: TrustedCertificate | None = None
    source: CertificateSource
    if policy == "upstream" and not certificates:
        cert = cert_in_keyinfo
        source = "keyinfo"
    else:
        registered = next((c for c in certificates if c.sha256.lower() == fingerprint), None)
        if registered is None:
            raise CertificateUnregistered("the signing certificate is not registered for the sending agency")
        cert = registered.certificate
        if certificate_sha256(cert) != fingerprint:
            raise CertificateUnregistered("the register's certificate does not match its recorded SHA-256")
        source = "register"

    # 6. revocation (known only for a registered certificate) and validity now
    if registered is not None and registered.revoked_at is not None and registered.revoked_at <= now:
        raise CertificateRevoked("the signing certificate has been revoked")
    _check_validity(cert, now, "now")

    # 7. the cryptographic check, with the certificate of step 5 and an explicit configuration
    config = SignatureConfiguration(
        require_x509=True,
        location=f"./{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader/",
        expect_references=1,
        signature_methods=ALLOWED_SIGNATURE_METHODS,
        digest_algorithms=ALLOWED_DIGESTS,
        ignore_ambiguous_key_info=False,
        verification_time=now,
        default_reference_c14n_method=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=cert, expect_config=config, parser=_huge_parser())
    except Exception:  # fail closed: any failure inside the verifier is a refusal
        raise SignatureInvalid("the XML signature does not verify") from None
    if isinstance(result, list) or not isinstance(result.signed_xml, etree._Element):
        raise SignatureInvalid("the XML signature does not cover the document")
    signed_root = result.signed_xml
    if signed_root.tag != root.tag:
        raise SignatureInvalid("the XML signature does not cover the edXML document")

    # 8. the signing time, from the signed tree only
    signing_time = _signing_time(signed_root)
    if signing_time is not None:
        if signing_time > now + MAX_CLOCK_SKEW:
            raise DateInvalid("the sender's TraceHeader Timestamp lies in the future", field="Timestamp")
        _check_validity(cert, signing_time, "at the signing time (the sender's TraceHeader Timestamp)")
        if registered is not None and registered.revoked_at is not None and registered.revoked_at <= signing_time:
            raise CertificateRevoked("the signing certificate was revoked before the signing time")
    return SignatureResult(
        signed=True,
        signed_root=signed_root,
        certificate_sha256=fingerprint,
        signing_time=signing_time,
        signature_method=method,
        certificate_source=source,
    )
