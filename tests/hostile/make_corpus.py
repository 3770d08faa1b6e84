"""Regenerate the hostile-input corpus in tests/hostile/ (files named after the attack).

    .venv/bin/python tests/hostile/make_corpus.py

Keys and certificates in tests/hostile/keys/ are TEST-ONLY and committed, so the files are reproducible
and the HTTP-level tests can register the same certificates (registry.json says which, for which agency,
and which one is revoked). They are made on the first run if missing. Each file is judged under the
``required`` signature policy with the limits of limits.json; expected.json maps file → problem slug.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "envelope"))

from envelope_helpers import (  # noqa: E402  the helpers live next to the unit tests
    DS,
    EDXML,
    PDF,
    XPATH,
    XSLT,
    add_transform,
    b64,
    sign_with,
    xpath_payload,
    xslt_payload,
    zip_encrypted_flag,
    zip_entries,
    zip_lying_size,
)
from signxml.algorithms import DigestAlgorithm, SignatureMethod  # noqa: E402

from gateway.envelope import (  # noqa: E402
    DocumentSpec,
    InlineFile,
    Organ,
    ResponseFor,
    StatusSpec,
    build_document,
    build_status,
    sign,
)

KEYS = HERE / "keys"
SENDER = Organ("000.00.00.G22", "Văn phòng Chính phủ")
H41 = Organ("000.00.00.H41", "UBND tỉnh Nghệ An")
H47 = Organ("001.00.10.H47", "Sở Nội vụ tỉnh Nghệ An")
SIGNED_AT = dt.datetime(2025, 1, 15, 2, 0, 0, tzinfo=dt.UTC)  # 09:00 in Hà Nội
LIMITS = {"max_inline_attachment_bytes": 256 * 1024}

CERTS: dict[str, tuple[dt.datetime, dt.datetime]] = {
    "sender": (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2049, 12, 31, tzinfo=dt.UTC)),
    "revoked": (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2049, 12, 31, tzinfo=dt.UTC)),
    "expired": (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2021, 1, 1, tzinfo=dt.UTC)),
    "not_yet_valid": (dt.datetime(2090, 1, 1, tzinfo=dt.UTC), dt.datetime(2099, 12, 31, tzinfo=dt.UTC)),
    "stranger": (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2049, 12, 31, tzinfo=dt.UTC)),
}


def load_or_make(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key_path, cert_path = KEYS / f"{name}.key.pem", KEYS / f"{name}.crt.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    not_before, not_after = CERTS[name]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TEST ONLY - hostile corpus"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"TEST ONLY {name}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    KEYS.mkdir(exist_ok=True)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def spec(**changes: object) -> DocumentSpec:
    base = DocumentSpec(
        sender=SENDER,
        recipients=(H41, H47),
        code_number="15",
        code_notation="VPCP-KSTT",
        promulgation_date=SIGNED_AT.date(),
        timestamp=SIGNED_AT,
        subject="Về việc thử nghiệm bộ mẫu tấn công",
        attachments=(InlineFile("Công văn 15.pdf", PDF),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def edit(xml: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, huge_tree=True))
    change(root)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def with_prolog(xml: bytes, prolog: bytes) -> bytes:
    end = xml.index(b"?>") + 2
    return xml[:end] + b"\n" + prolog + xml[end:]


def main() -> None:
    keys = {name: load_or_make(name) for name in CERTS}
    key, cert = keys["sender"]

    def signed(s: DocumentSpec | None = None, by: str = "sender") -> bytes:
        k, c = keys[by]
        return sign(build_document(s or spec()), k, c)

    valid = signed()
    files: dict[str, tuple[bytes, str]] = {}

    def add(name: str, data: bytes, slug: str) -> None:
        files[name] = (data, slug)

    # --- XML layer
    add(
        "xxe_file.edxml",
        with_prolog(valid, b'<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'),
        "xml-dtd-forbidden",
    )
    add(
        "xxe_network.edxml",
        with_prolog(valid, b'<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/steal">]>').replace(
            "Về việc".encode(), "&xxe; Về việc".encode(), 1
        ),
        "xml-dtd-forbidden",
    )
    laughs = (
        b'<!DOCTYPE edXML [<!ENTITY lol0 "lol">'
        + b"".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">'.encode() for i in range(1, 10))
        + b"]>"
    )
    add(
        "billion_laughs.edxml",
        with_prolog(valid, laughs).replace("Về việc".encode(), b"&lol9;", 1),
        "xml-dtd-forbidden",
    )
    blow = b'<!DOCTYPE edXML [<!ENTITY big "' + b"A" * 20_000 + b'">]>'
    add(
        "quadratic_blowup.edxml",
        with_prolog(valid, blow).replace("Về việc".encode(), b"&big;" * 2000, 1),
        "xml-dtd-forbidden",
    )
    add(
        "external_dtd.edxml",
        with_prolog(valid, b'<!DOCTYPE edXML SYSTEM "http://127.0.0.1:9/evil.dtd">'),
        "xml-dtd-forbidden",
    )
    add(
        "xinclude.edxml",
        valid.replace(
            "Về việc".encode(),
            b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>',
            1,
        ),
        "xml-xinclude-forbidden",
    )
    add(
        "tcvn3_encoded.edxml",
        valid.replace(b"encoding='UTF-8'", b"encoding='TCVN3'", 1).replace("Hà Nội".encode(), b"H\xb5 N\xa9i"),
        "encoding-not-utf8",
    )
    # VNI-Windows writes "Hà Nội" as "Haø Noäi" in windows-1252 bytes: not UTF-8.
    add("vni_encoded.edxml", valid.replace("Hà Nội".encode(), b"Ha\xf8 No\xe4i"), "encoding-not-utf8")
    text = valid.decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'")
    add("utf16_encoded.edxml", text.encode("utf-16"), "encoding-not-utf8")
    add("nul_bytes.edxml", valid.replace("Về việc".encode(), "Về\x00 việc".encode(), 1), "nul-byte")
    add("malformed.edxml", valid[: len(valid) // 2], "xml-malformed")
    deep = b"<edXML:Content>" + b"<a>" * 500 + b"</a>" * 500 + b"</edXML:Content>"
    add("too_deep.edxml", valid.replace(b"<edXML:Subject>", deep + b"<edXML:Subject>", 1), "xml-too-deep")

    # --- signature
    add("legacy_signature_only.edxml", build_document(spec(legacy_signature=True)), "signature-missing")
    add("unsigned.edxml", build_document(spec()), "signature-missing")
    add(
        "xslt_transform_in_signature.edxml",
        add_transform(valid, key, XSLT, xslt_payload()),
        "signature-transform-forbidden",
    )
    add(
        "xpath_transform_in_signature.edxml",
        add_transform(valid, key, XPATH, xpath_payload()),
        "signature-transform-forbidden",
    )
    add(
        "sha1_signature.edxml",
        sign_with(build_document(spec()), key, cert, signature_method=SignatureMethod.RSA_SHA1),
        "signature-algorithm-forbidden",
    )
    add(
        "sha1_digest.edxml",
        sign_with(build_document(spec()), key, cert, digest=DigestAlgorithm.SHA1),
        "signature-algorithm-forbidden",
    )
    add(
        "signature_wrapping_appended_to_root.edxml",
        sign_with(build_document(spec()), key, cert, in_header=False),
        "signature-wrong-location",
    )

    def hide_second_signature(root: etree._Element) -> None:
        signature = next(root.iter(f"{{{DS}}}Signature"))
        legacy = etree.Element(f"{{{EDXML}}}Signature")
        legacy.append(etree.fromstring(etree.tostring(signature)))
        header = signature.getparent()
        assert header is not None
        header.insert(0, legacy)

    add(
        "signature_wrapping_second_signature_in_legacy_block.edxml",
        edit(valid, hide_second_signature),
        "signature-wrong-location",
    )
    with_id = edit(build_document(spec()), lambda r: r.set("{http://www.w3.org/XML/1998/namespace}id", "doc"))
    add(
        "signature_wrapping_id_reference.edxml",
        sign_with(with_id, key, cert, reference_uri="#doc"),
        "signature-wrong-location",
    )
    add(
        "signature_wrapping_altered_subject.edxml",
        valid.replace("Về việc".encode(), "Chỉ đạo khẩn: chuyển tiền".encode(), 1),
        "signature-invalid",
    )

    evil = build_document(spec(subject="Chỉ đạo khẩn: chuyển tiền"))

    def graft_signature(root: etree._Element) -> None:
        original = etree.fromstring(valid)
        signature = next(original.iter(f"{{{DS}}}Signature"))
        # the original signed document, without its signature, hidden where verifiers may look
        copy = etree.fromstring(etree.tostring(original))
        inner = next(copy.iter(f"{{{DS}}}Signature"))
        inner_parent = inner.getparent()
        assert inner_parent is not None
        inner_parent.remove(inner)
        obj = etree.SubElement(signature, f"{{{DS}}}Object")
        obj.append(copy)
        header = root.find(f"{{{EDXML}}}edXMLEnvelope/{{{EDXML}}}edXMLHeader")
        assert header is not None
        header.append(signature)

    add("signature_wrapping_original_in_object.edxml", edit(evil, graft_signature), "signature-invalid")

    stranger_key, _stranger_cert = keys["stranger"]
    cert_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    def claim_registered(root: etree._Element) -> None:
        next(root.iter(f"{{{DS}}}X509Certificate")).text = cert_b64

    add(
        "signature_keyinfo_swapped.edxml",
        edit(sign(build_document(spec()), stranger_key, _stranger_cert), claim_registered),
        "signature-invalid",
    )
    add("unregistered_certificate.edxml", signed(by="stranger"), "certificate-unregistered")
    add("expired_certificate.edxml", signed(by="expired"), "certificate-expired")
    add("not_yet_valid_certificate.edxml", signed(by="not_yet_valid"), "certificate-not-yet-valid")
    add("revoked_certificate.edxml", signed(by="revoked"), "certificate-revoked")

    # --- metadata
    add("sender_mismatch.edxml", signed(spec(sender=H41, recipients=(SENDER,))), "sender-mismatch")
    add("recipient_duplicate.edxml", signed(spec(recipients=(H41, H47, H41))), "recipient-duplicate")
    add(
        "recipient_id_malformed.edxml",
        signed(spec(recipients=(H41, Organ("000.00.00.h41", "Sai mã")))),
        "recipient-id-malformed",
    )
    add("classified_document.edxml", signed(spec(secrecy="Tối mật")), "secrecy-forbidden")
    add("future_promulgation_date.edxml", signed(spec(promulgation_date=dt.date(2099, 1, 1))), "date-invalid")
    status = build_status(
        StatusSpec(
            response_for=ResponseFor("000.00.00.H41", document_id="000.00.00.H41,2025/01/10,7/UBND-VP"),
            sender=SENDER,
            status_code="07",
            timestamp=SIGNED_AT,
        )
    )
    add("status_code_unknown.edxml", sign(status, key, cert), "code-list-invalid")

    # --- attachments
    def inline(
        payload: bytes | None = None, *, name: str = "Công văn 15.pdf", encoded: str | None = None, data: bytes = PDF
    ) -> bytes:
        text = encoded if encoded is not None else (b64(payload) if payload is not None else None)
        return signed(spec(attachments=(InlineFile(name, data, encoded=text),)))

    def drop(local: str) -> Callable[[etree._Element], None]:
        def change(root: etree._Element) -> None:
            el = next(root.iter(f"{{{EDXML}}}{local}"))
            parent = el.getparent()
            assert parent is not None
            parent.remove(el)

        return change

    add(
        "manifest_without_attachment.edxml",
        sign(edit(build_document(spec()), drop("Attachment")), key, cert),
        "manifest-without-attachment",
    )
    add(
        "attachment_without_manifest.edxml",
        sign(edit(build_document(spec()), drop("Reference")), key, cert),
        "attachment-without-manifest",
    )
    add(
        "zip_bomb.edxml",
        inline(zip_entries([("bomb.pdf", b"%PDF-1.4\n" + b"\x00" * (50 * 1024 * 1024))])),
        "attachment-zip-invalid",
    )
    add(
        "zip_bomb_lying_header.edxml",
        inline(zip_lying_size("bomb.pdf", b"%PDF-1.4\n" + b"\x00" * (4 * 1024 * 1024), declared=1000)),
        "attachment-zip-invalid",
    )
    add("zip_several_files.edxml", inline(zip_entries([("a.pdf", PDF), ("b.pdf", PDF)])), "attachment-zip-invalid")
    add("zip_path_traversal.edxml", inline(zip_entries([("../../../../tmp/evil.pdf", PDF)])), "attachment-zip-invalid")
    add("zip_encrypted.edxml", inline(zip_encrypted_flag("a.pdf", PDF)), "attachment-zip-invalid")
    oversize = "\n".join(["A" * 76] * 4800)  # 364,800 base64 characters > 256 KiB decoded
    add("oversize_base64.edxml", inline(encoded=oversize), "attachment-too-large")
    add("undecodable_base64.edxml", inline(encoded="@@@@ not base64 @@@@"), "attachment-undecodable")
    add("executable_as_pdf.edxml", inline(data=b"MZ\x90\x00\x03" + b"\x00" * 200), "file-type-forbidden")
    add("forbidden_extension.edxml", inline(name="setup.exe"), "file-type-forbidden")

    for name, (data, _slug) in files.items():
        (HERE / name).write_bytes(data)
    expected = {name: slug for name, (_data, slug) in sorted(files.items())}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    (HERE / "limits.json").write_text(json.dumps(LIMITS, indent=2) + "\n")
    registry = {
        "sender": SENDER.organ_id,
        "policy": "required",
        "recipients": [H41.organ_id, H47.organ_id],
        "certificates": [
            {"file": "keys/sender.crt.pem", "revoked_at": None},
            {"file": "keys/revoked.crt.pem", "revoked_at": "2024-06-01T00:00:00+00:00"},
            {"file": "keys/expired.crt.pem", "revoked_at": None},
            {"file": "keys/not_yet_valid.crt.pem", "revoked_at": None},
        ],
        "unregistered": ["keys/stranger.crt.pem"],
    }
    (HERE / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
    print(f"wrote {len(files)} files to {HERE}")


if __name__ == "__main__":
    main()
