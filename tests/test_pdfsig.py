"""PDF signature reporting: none, valid and invalid, from bytes and from a stream read in chunks."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.pdfsig import _contains, pdf_signature_state, pdf_signature_state_of
from gw import PDF


def _signed_pdf() -> bytes:
    from pyhanko.keys import load_cert_from_pemder, load_private_key_from_pemder_data  # noqa: F401
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.writer import PdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field
    from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Người ký thử")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.signers import SimpleSigner

    signer = SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        cert_registry=None,
    )
    w = PdfFileWriter()
    page = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 200, 200)]),
    })
    w.insert_page(page)
    buf = io.BytesIO()
    w.write(buf)
    buf.seek(0)
    inc = IncrementalPdfFileWriter(buf)
    append_signature_field(inc, SigFieldSpec(sig_field_name="Sig1"))
    out = signers.sign_pdf(inc, PdfSignatureMetadata(field_name="Sig1"), signer=signer)
    return out.getvalue()


def test_reports_none_valid_and_invalid() -> None:
    assert pdf_signature_state(PDF) == "none"
    signed = _signed_pdf()
    assert pdf_signature_state(signed) == "valid"
    assert pdf_signature_state_of(io.BytesIO(signed)) == "valid"
    # Change one byte inside the signed range: the signature no longer covers what is there.
    tampered = signed.replace(b"/MediaBox [0 0 200 200]", b"/MediaBox [0 0 200 201]", 1)
    if tampered == signed:
        tampered = signed.replace(b"/Type /Page", b"/Type /Pagf", 1)
    assert tampered != signed
    assert pdf_signature_state(tampered) == "invalid"


def test_marker_is_found_across_chunk_boundaries() -> None:
    data = b"x" * 10 + b"/ByteRange" + b"y" * 10
    for chunk in range(1, 25):
        assert _contains(io.BytesIO(data), b"/ByteRange", chunk=chunk)
    assert not _contains(io.BytesIO(b"z" * 100), b"/ByteRange", chunk=7)
