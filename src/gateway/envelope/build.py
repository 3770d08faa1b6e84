"""Building edXML documents and status messages, and signing them with the gateway's profile.

Used by the tests, the sample generator and the client library, so the defaults make a valid document:
``sign(build_document(DocumentSpec(attachments=[InlineFile("cv.pdf", pdf)])), key, cert)`` is a complete,
signed envelope. Output follows EDXML.md and the prefix layout of the files real software writes
(``../shared/samples/external``): UTF-8; the root ``edXML`` declares only the default namespace;
``edXML:edXMLEnvelope`` declares the ``edXML`` prefix and everything inside it uses it; ``AttachmentEncoded``,
``Attachment`` and its children are unprefixed (default namespace) except ``edXML:ContentTransferEncoded``,
which declares the prefix again; profile elements keep their own ``p:`` namespace. Dates ``yyyy/MM/dd``,
date-times in +07:00 without a zone, inline attachments as base64 of a ZIP holding the one file, large
attachments as profile references, ContentIds ``cid:<uuid>`` (a UUID derived from the file, so the output
is deterministic): what the gateway writes records no deviation when read back.

:func:`sign` writes exactly the profile signature: a W3C ``ds:Signature`` placed as the last child of
``edXMLHeader`` (through signxml's ``<ds:Signature Id="placeholder"/>`` mechanism, since signxml would
otherwise append it to the root), enveloped, one ``Reference URI=""``, exclusive c14n, SHA-256 digest,
the certificate in ``KeyInfo/X509Data``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.signer import XMLSigner

from ._values import VN_TZ, format_date, format_datetime
from ._xml import DS_NS, EDXML_NS, PROFILE_NS, child, header, q
from .attachments import CONTENT_TYPES, file_type_of_name
from .model import Organ, ResponseFor, SignerInfo, StaffInfo, derive_document_id

__all__ = [
    "DocumentSpec",
    "InlineFile",
    "LargeFile",
    "SigningAlgorithm",
    "StatusSpec",
    "build_document",
    "build_status",
    "sign",
    "zip_single",
]

SigningAlgorithm = Literal[
    "rsa-sha256", "rsa-sha384", "rsa-sha512", "rsa-pss-sha256", "rsa-pss-sha512", "ecdsa-sha256", "ecdsa-sha384"
]
_SIGNATURE_METHODS: dict[str, SignatureMethod] = {
    "rsa-sha256": SignatureMethod.RSA_SHA256,
    "rsa-sha384": SignatureMethod.RSA_SHA384,
    "rsa-sha512": SignatureMethod.RSA_SHA512,
    "rsa-pss-sha256": SignatureMethod.SHA256_RSA_MGF1,
    "rsa-pss-sha512": SignatureMethod.SHA512_RSA_MGF1,
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256,
    "ecdsa-sha384": SignatureMethod.ECDSA_SHA384,
}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class InlineFile:
    """A file carried inline (base64 of a ZIP holding it)."""

    name: str
    data: bytes
    content_type: str | None = None
    description: str | None = None
    content_id: str | None = None
    #: Test hook: write this text as ContentTransferEncoded instead of encoding ``data``.
    encoded: str | None = None


@dataclass(frozen=True)
class LargeFile:
    """A profile large attachment: digest and size here, the bytes in a multipart part."""

    name: str
    sha256: str
    size: int
    content_type: str | None = None
    description: str | None = None
    content_id: str | None = None

    @classmethod
    def from_bytes(cls, name: str, data: bytes, **kwargs: str | None) -> LargeFile:
        return cls(name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data), **kwargs)


_VPCP = Organ("000.00.00.G22", "Văn phòng Chính phủ")
_NGHE_AN = Organ("000.00.00.H41", "UBND tỉnh Nghệ An")
_SIGNER = SignerInfo("KT.", "Phó Chủ nhiệm", "Nguyễn Văn Thành")


@dataclass(frozen=True)
class DocumentSpec:
    sender: Organ = _VPCP
    recipients: Sequence[Organ] = (_NGHE_AN,)
    code_number: str = "1234"
    code_notation: str = "VPCP-TTĐT"
    place: str = "Hà Nội"
    #: default: today in Vietnam
    promulgation_date: date | None = None
    document_type: int = 1
    type_detail: int | None = 1
    type_name: str = "Công văn"
    subject: str = "Về việc thử nghiệm liên thông văn bản điện tử qua cổng"
    content: str | None = None
    signer: SignerInfo | None = _SIGNER
    due_date: date | None = None
    to_places: Sequence[str] = ("Như trên;", "Lưu: VT.")
    priority: int = 0
    steering_type: int | None = 0
    response_for: Sequence[ResponseFor] = ()
    #: default: derived as EDXML.md says; set ``write_document_id=False`` to leave it out
    document_id: str | None = None
    write_document_id: bool = True
    business_doc_type: int = 0
    business_doc_reason: str | None = None
    paper: bool = False
    staff: StaffInfo | None = None
    #: profile secrecy marker; None writes none, "0" is normal
    secrecy: str | None = None
    #: the sender's TraceHeader Timestamp (the signing time); default: now
    timestamp: datetime | None = None
    attachments: Sequence[InlineFile | LargeFile] = field(default_factory=tuple)
    #: add a legacy edXML-namespace Signature block with placeholder values, as found in the wild
    legacy_signature: bool = False


@dataclass(frozen=True)
class StatusSpec:
    response_for: ResponseFor
    sender: Organ = _NGHE_AN
    status_code: str = "03"
    description: str | None = "Đã tiếp nhận"
    staff: StaffInfo | None = None
    timestamp: datetime | None = None
    #: write the header as ``Status`` (as some producers do) instead of ``MessageHeader``
    header_name: Literal["MessageHeader", "Status"] = "MessageHeader"


def zip_single(name: str, data: bytes) -> bytes:
    """A deflated ZIP holding one file (fixed timestamp, so the output is deterministic)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o100644 << 16
        zf.writestr(info, data)
    return buf.getvalue()


def _el(parent: etree._Element, local: str, text: str | None = None, ns: str = EDXML_NS) -> etree._Element:
    el = etree.SubElement(parent, q(local, ns))
    if text is not None:
        el.text = text
    return el


def _opt(parent: etree._Element, local: str, text: str | None) -> None:
    if text is not None:
        _el(parent, local, text)


def _organ(parent: etree._Element, local: str, organ: Organ) -> None:
    el = _el(parent, local)
    _el(el, "OrganId", organ.organ_id)
    _opt(el, "OrganName", organ.name)
    _opt(el, "OrganizationInCharge", organ.organization_in_charge)
    _opt(el, "OrganAdd", organ.address)
    _opt(el, "Email", organ.email)
    _opt(el, "Telephone", organ.telephone)
    _opt(el, "Fax", organ.fax)
    _opt(el, "Website", organ.website)


def _response_for(parent: etree._Element, rf: ResponseFor) -> None:
    el = _el(parent, "ResponseFor")
    _opt(el, "OrganId", rf.organ_id)
    _opt(el, "Code", rf.code)
    _opt(el, "PromulgationDate", format_date(rf.promulgation_date) if rf.promulgation_date else None)
    _opt(el, "DocumentId", rf.document_id)


def _staff(parent: etree._Element, staff: StaffInfo) -> None:
    el = _el(parent, "StaffInfo")
    _opt(el, "Department", staff.department)
    _opt(el, "Staff", staff.staff)
    _opt(el, "Mobile", staff.mobile)
    _opt(el, "Email", staff.email)


def _root() -> tuple[etree._Element, etree._Element]:
    # The samples' layout: the default namespace on the root, the edXML prefix declared on the envelope.
    # lxml names a new element with the nearest declaration of its namespace, so everything under the
    # envelope is written edXML:..., everything else under the root unprefixed.
    # None is lxml's key for the default namespace; lxml-stubs type the keys as str only.
    root = etree.Element(q("edXML"), nsmap={None: EDXML_NS})  # type: ignore[dict-item]
    envelope = etree.SubElement(root, q("edXMLEnvelope"), nsmap={"edXML": EDXML_NS})
    return root, _el(envelope, "edXMLHeader")


def _serialize(root: etree._Element) -> bytes:
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


def _content_id(index: int, attachment: InlineFile | LargeFile) -> str:
    if attachment.content_id is not None:
        return attachment.content_id
    digest = hashlib.sha256(attachment.data).hexdigest() if isinstance(attachment, InlineFile) else attachment.sha256
    return f"cid:{uuid.uuid5(uuid.NAMESPACE_URL, f'urn:gateway:attachment:{index}:{digest}:{attachment.name}')}"


def _now(value: datetime | None) -> datetime:
    return value if value is not None else datetime.now(UTC)


def build_document(spec: DocumentSpec) -> bytes:
    """The unsigned edXML document for ``spec`` (UTF-8 bytes)."""
    timestamp = _now(spec.timestamp)
    promulgation_date = spec.promulgation_date or timestamp.astimezone(VN_TZ).date()
    root, hdr = _root()
    mh = _el(hdr, "MessageHeader")
    _organ(mh, "From", spec.sender)
    for recipient in spec.recipients:
        _organ(mh, "To", recipient)
    if spec.write_document_id:
        _el(
            mh,
            "DocumentId",
            spec.document_id
            or derive_document_id(spec.sender.organ_id, promulgation_date, spec.code_number, spec.code_notation),
        )
    code = _el(mh, "Code")
    _el(code, "CodeNumber", spec.code_number)
    _el(code, "CodeNotation", spec.code_notation)
    prom = _el(mh, "PromulgationInfo")
    _el(prom, "Place", spec.place)
    _el(prom, "PromulgationDate", format_date(promulgation_date))
    dtype = _el(mh, "DocumentType")
    _el(dtype, "Type", str(spec.document_type))
    _opt(dtype, "TypeDetail", str(spec.type_detail) if spec.type_detail is not None else None)
    _el(dtype, "TypeName", spec.type_name)
    _el(mh, "Subject", spec.subject)
    _opt(mh, "Content", spec.content)
    if spec.signer is not None:
        signer = _el(mh, "SignerInfo")
        _opt(signer, "Competence", spec.signer.competence)
        _opt(signer, "Position", spec.signer.position)
        _opt(signer, "FullName", spec.signer.full_name)
    _opt(mh, "DueDate", format_date(spec.due_date) if spec.due_date else None)
    if spec.to_places:
        places = _el(mh, "ToPlaces")
        for place in spec.to_places:
            _el(places, "Place", place)
    other = _el(mh, "OtherInfo")
    _el(other, "Priority", str(spec.priority))
    for rf in spec.response_for:
        _response_for(mh, rf)
    _opt(mh, "SteeringType", str(spec.steering_type) if spec.steering_type is not None else None)
    if spec.secrecy is not None:
        secrecy = etree.SubElement(mh, q("Secrecy", PROFILE_NS), nsmap={"p": PROFILE_NS})
        secrecy.text = spec.secrecy

    trace_list = _el(hdr, "TraceHeaderList")
    trace = _el(trace_list, "TraceHeader")
    _el(trace, "OrganId", spec.sender.organ_id)
    _el(trace, "Timestamp", format_datetime(timestamp))
    business = _el(trace_list, "Bussiness")
    _el(business, "BussinessDocType", str(spec.business_doc_type))
    _opt(business, "BussinessDocReason", spec.business_doc_reason)
    _el(business, "Paper", "1" if spec.paper else "0")
    if spec.staff is not None:
        _staff(business, spec.staff)
    if spec.legacy_signature:
        legacy = _el(hdr, "Signature")
        legacy.text = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA..."  # the truncated placeholder of the wild

    body = _el(hdr.getparent(), "edXMLBody")  # type: ignore[arg-type]  # hdr always has the envelope parent
    manifest = _el(body, "edXMLManifest")
    manifest.set("version", "1.0")
    encoded_block = _el(root, "AttachmentEncoded") if spec.attachments else None
    for index, attachment in enumerate(spec.attachments, start=1):
        cid = _content_id(index, attachment)
        kind = file_type_of_name(attachment.name)
        content_type = attachment.content_type or (CONTENT_TYPES[kind] if kind else "application/octet-stream")
        ref = _el(manifest, "Reference")
        _el(ref, "ContentId", cid)
        _el(ref, "ContentType", content_type)
        _opt(ref, "Description", attachment.description)
        _el(ref, "AttachmentName", attachment.name)
        assert encoded_block is not None
        att = _el(encoded_block, "Attachment")
        _el(att, "ContentId", cid)
        _el(att, "AttachmentName", attachment.name)
        _opt(att, "Description", attachment.description)
        _el(att, "ContentType", content_type)
        if isinstance(attachment, InlineFile):
            text = attachment.encoded
            if text is None:
                text = base64.encodebytes(zip_single(attachment.name, attachment.data)).decode("ascii")
            # as the samples write it: prefixed, re-declaring the prefix (its parent is unprefixed)
            transfer = etree.SubElement(att, q("ContentTransferEncoded"), nsmap={"edXML": EDXML_NS})
            transfer.text = text
        else:
            sha = etree.SubElement(att, q("Sha256", PROFILE_NS), nsmap={"p": PROFILE_NS})
            sha.text = attachment.sha256
            size = etree.SubElement(att, q("Size", PROFILE_NS), nsmap={"p": PROFILE_NS})
            size.text = str(attachment.size)
    return _serialize(root)


def build_status(spec: StatusSpec) -> bytes:
    """The unsigned status message for ``spec`` (no body, no attachments)."""
    timestamp = _now(spec.timestamp)
    root, hdr = _root()
    mh = _el(hdr, spec.header_name)
    _organ(mh, "From", spec.sender)
    _response_for(mh, spec.response_for)
    if spec.staff is not None:
        _staff(mh, spec.staff)
    _el(mh, "StatusCode", spec.status_code)
    _opt(mh, "Description", spec.description)
    _el(mh, "Timestamp", format_datetime(timestamp))
    trace_list = _el(hdr, "TraceHeaderList")
    trace = _el(trace_list, "TraceHeader")
    _el(trace, "OrganId", spec.sender.organ_id)
    _el(trace, "Timestamp", format_datetime(timestamp))
    return _serialize(root)


def _load(xml: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    return etree.fromstring(xml, parser)


def sign(
    xml: bytes,
    private_key: PrivateKey,
    certificate: x509.Certificate,
    *,
    algorithm: SigningAlgorithm = "rsa-sha256",
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """Sign an edXML document with the profile signature (last child of ``edXMLHeader``)."""
    root = _load(xml)
    hdr = header(root)
    if next(root.iter(q("Signature", DS_NS)), None) is not None:
        raise ValueError("the document already carries a W3C XML signature")
    # The placeholder tells signxml where the signature goes; without it signxml appends to the root.
    etree.SubElement(hdr, q("Signature", DS_NS), {"Id": "placeholder"}, nsmap={"ds": DS_NS})
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=_SIGNATURE_METHODS[algorithm],
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(root, key=private_key, cert=[certificate, *chain])
    signature = child(header(signed), "Signature", DS_NS)
    if signature is None or signature.get("Id") is not None:
        raise RuntimeError("signxml did not place the signature in edXMLHeader")
    out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return out
