"""Write the sample envelopes in schemas/samples/, signed with throwaway keys made on each run.

    .venv/bin/python scripts/make_samples.py

Only the signer's certificate is kept (``sample-signer.crt.pem``), so anyone can verify the samples; the
private key exists only while this script runs. The samples: a signed document with a small PDF inline,
a status message (03, Đã tiếp nhận), the same document unsigned (accepted only under the ``channel``
policy), and a document whose attachment travels as a profile large attachment (the part file is
written next to it).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.envelope import (
    DocumentSpec,
    InlineFile,
    LargeFile,
    Organ,
    ResponseFor,
    StatusSpec,
    build_document,
    build_status,
    derive_document_id,
    sign,
)

OUT = Path(__file__).resolve().parents[1] / "schemas" / "samples"
VPCP = Organ("000.00.00.G22", "Văn phòng Chính phủ", address="16 Lê Hồng Phong, Ba Đình, Hà Nội")
NGHE_AN = Organ("000.00.00.H41", "UBND tỉnh Nghệ An")
NOI_VU = Organ("001.00.10.H47", "Sở Nội vụ tỉnh Nghệ An")


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a correct cross-reference table (ASCII text only in the content stream)."""
    stream = f"BT /F1 14 Tf 72 760 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def throwaway_signer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SAMPLE ONLY - throwaway"),
            x509.NameAttribute(NameOID.COMMON_NAME, "sample signer (throwaway key)"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    key, cert = throwaway_signer()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    pdf = minimal_pdf("Cong van so 1234/VPCP-TTDT - mau thu nghiem")
    spec = DocumentSpec(
        sender=VPCP,
        recipients=(NGHE_AN, NOI_VU),
        code_number="1234",
        code_notation="VPCP-TTĐT",
        subject="Về việc thử nghiệm liên thông văn bản điện tử qua cổng trao đổi",
        content="Văn phòng Chính phủ gửi văn bản thử nghiệm để kiểm tra kết nối.",
        timestamp=now,
        priority=1,
        attachments=(InlineFile("Công văn 1234-VPCP-TTĐT.pdf", pdf, description="Văn bản chính"),),
    )
    (OUT / "document-signed.edxml").write_bytes(sign(build_document(spec), key, cert))
    (OUT / "document-unsigned.edxml").write_bytes(build_document(spec))

    big = minimal_pdf("Phu luc kem theo - tep lon") + b"%" + b"0" * 200_000 + b"\n"
    large_spec = DocumentSpec(
        sender=VPCP,
        recipients=(NGHE_AN,),
        code_number="1235",
        code_notation="VPCP-TTĐT",
        subject="Về việc gửi phụ lục dung lượng lớn",
        timestamp=now,
        attachments=(LargeFile.from_bytes("Phụ lục.pdf", big, content_id="cid:phu-luc-1235"),),
    )
    (OUT / "document-large-attachment.edxml").write_bytes(sign(build_document(large_spec), key, cert))
    (OUT / "document-large-attachment.part-phu-luc-1235.pdf").write_bytes(big)

    local_day = now.astimezone(dt.timezone(dt.timedelta(hours=7))).date()
    original_id = derive_document_id(VPCP.organ_id, local_day, "1234", "VPCP-TTĐT")
    status = StatusSpec(
        response_for=ResponseFor(VPCP.organ_id, document_id=original_id, code="1234/VPCP-TTĐT"),
        sender=NGHE_AN,
        status_code="03",
        description="Đã tiếp nhận vào sổ văn bản đến",
        timestamp=now,
    )
    # Signed with the same throwaway key: in real traffic the recipient signs with its own certificate.
    (OUT / "status-03.edxml").write_bytes(sign(build_status(status), key, cert))
    (OUT / "sample-signer.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    print(f"wrote samples to {OUT}")


if __name__ == "__main__":
    main()
