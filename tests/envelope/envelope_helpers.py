"""Shared helpers of the envelope tests (a plain module: tests/envelope has no __init__.py)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.signer import XMLSigner

from gateway.envelope import (
    DocumentSpec,
    InlineFile,
    TrustedCertificate,
    certificate_sha256,
)

NOW = dt.datetime(2025, 6, 2, 3, 0, 0, tzinfo=dt.UTC)  # 10:00 in Hà Nội
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def make_cert(
    key: Key,
    *,
    cn: str = "Văn phòng Chính phủ",
    not_before: dt.datetime = NOW - dt.timedelta(days=365),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    issuer_key: Key | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(issuer_key or key, hashes.SHA256())
    )


@dataclass(frozen=True)
class Signer:
    key: Key
    cert: x509.Certificate

    @property
    def trusted(self) -> TrustedCertificate:
        return TrustedCertificate(certificate_sha256(self.cert), self.cert)


def base_spec(**changes: object) -> DocumentSpec:
    """A valid document, written a minute before NOW, with one small PDF."""
    spec = DocumentSpec(
        timestamp=NOW - dt.timedelta(minutes=1),
        attachments=(InlineFile("Công văn 1234.pdf", PDF, description="Văn bản"),),
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def mutate(xml: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, huge_tree=True))
    change(root)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


# --- forging: test-only ways to write signatures the profile refuses ------------------------------

DS = "http://www.w3.org/2000/09/xmldsig#"
EDXML = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def _parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml, etree.XMLParser(resolve_entities=False, huge_tree=True))


def _header(root: etree._Element) -> etree._Element:
    found = root.find(f"{{{EDXML}}}edXMLEnvelope/{{{EDXML}}}edXMLHeader")
    assert found is not None
    return found


class _PermissiveSigner(XMLSigner):
    """signxml refuses to *write* SHA-1; attackers do not."""

    def check_deprecated_methods(self) -> None:
        return None


def sign_with(
    xml: bytes,
    key: Key,
    cert: x509.Certificate,
    *,
    signature_method: SignatureMethod = SignatureMethod.RSA_SHA256,
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
    c14n: CanonicalizationMethod = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    in_header: bool = True,
    reference_uri: str | None = None,
) -> bytes:
    root = _parse(xml)
    if in_header:
        etree.SubElement(_header(root), f"{{{DS}}}Signature", {"Id": "placeholder"}, nsmap={"ds": DS})
    signer = _PermissiveSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=signature_method,
        digest_algorithm=digest,
        c14n_algorithm=c14n,
    )
    signed = signer.sign(root, key=key, cert=[cert], reference_uri=reference_uri)
    out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return out


def resign_signed_info(root: etree._Element, key: rsa.RSAPrivateKey) -> None:
    """Recompute SignatureValue (RSA-SHA256, exclusive c14n) after SignedInfo was edited."""
    signature = next(root.iter(f"{{{DS}}}Signature"))
    signed_info = signature.find(f"{{{DS}}}SignedInfo")
    value = signature.find(f"{{{DS}}}SignatureValue")
    assert signed_info is not None
    assert value is not None
    c14n = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    value.text = base64.b64encode(key.sign(c14n, padding.PKCS1v15(), hashes.SHA256())).decode()


def add_transform(xml: bytes, key: rsa.RSAPrivateKey, algorithm: str, payload: etree._Element | None = None) -> bytes:
    """Add a transform to the (valid) signature and re-sign SignedInfo, so only the transform is wrong."""
    root = _parse(xml)
    transforms = next(root.iter(f"{{{DS}}}Transforms"))
    transform = etree.SubElement(transforms, f"{{{DS}}}Transform", {"Algorithm": algorithm})
    if payload is not None:
        transform.append(payload)
    resign_signed_info(root, key)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"


def xslt_payload() -> etree._Element:
    return etree.fromstring(
        b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        b'<xsl:template match="/"><xsl:copy-of select="document(\'file:///etc/passwd\')"/></xsl:template>'
        b"</xsl:stylesheet>"
    )


def xpath_payload() -> etree._Element:
    el = etree.Element(f"{{{DS}}}XPath", nsmap={"ds": DS})
    el.text = "not(ancestor-or-self::*[local-name()='AttachmentEncoded'])"
    return el


# --- ZIP forging ---------------------------------------------------------------------------------


def zip_entries(
    entries: list[tuple[str, bytes]], *, compress: int = zipfile.ZIP_DEFLATED, mode: int = 0o100644
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compress
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def zip_encrypted_flag(name: str, data: bytes) -> bytes:
    """A ZIP whose entry says it is encrypted (general purpose flag bit 0) in both headers."""
    raw = bytearray(zip_entries([(name, data)]))
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    raw[local + 6] |= 0x01
    raw[central + 8] |= 0x01
    return bytes(raw)


def zip_lying_size(name: str, data: bytes, declared: int) -> bytes:
    """A ZIP whose headers declare ``declared`` uncompressed bytes while the stream holds more."""
    raw = bytearray(zip_entries([(name, data)]))
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)
    struct.pack_into("<I", raw, central + 24, declared)
    return bytes(raw)


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii")


def docx_bytes(*, macro: bool = False) -> bytes:
    main = (
        "application/vnd.ms-word.document.macroEnabled.main+xml"
        if macro
        else ("application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")
    )
    content_types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        f'<Override PartName="/word/document.xml" ContentType="{main}"/></Types>'
    ).encode()
    return zip_entries([("[Content_Types].xml", content_types), ("word/document.xml", b"<w:document/>")])


def odt_bytes() -> bytes:
    return zip_entries(
        [("mimetype", b"application/vnd.oasis.opendocument.text"), ("content.xml", b"<office:document-content/>")],
        compress=zipfile.ZIP_STORED,
    )
