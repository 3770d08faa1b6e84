"""Agency keys for the client: PEM (separate, combined, encrypted), PKCS#12, the test-only generator, and
every way a key can fail to load, each a KeyLoadError."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from certs import make_keypair
from gateway.client import TEST_ONLY, AgencyKey, KeyLoadError, agency_code_of, generate_test_key
from gateway.envelope import TrustedCertificate, parse_envelope, verify_signature
from gateway.envelope.build import DocumentSpec, build_document


def _verifies(key: AgencyKey) -> bool:
    xml = key.sign(build_document(DocumentSpec()))
    trusted = TrustedCertificate(sha256=key.certificate_sha256, certificate=key.certificate)
    return verify_signature(parse_envelope(xml), [trusted], now=datetime.now(UTC)).signed


def test_a_generated_key_is_labelled_test_only_and_names_its_agency() -> None:
    key = generate_test_key("000.00.00.G22", "Văn phòng Chính phủ")
    subject = key.certificate.subject.rfc4514_string()
    assert subject.count(TEST_ONLY) == 3
    assert key.is_test_only
    assert agency_code_of(key.certificate) == "000.00.00.G22"
    assert key.signing_algorithm == "ecdsa-sha256"
    assert generate_test_key("000.00.00.H41", kind="rsa").signing_algorithm == "rsa-sha256"
    with pytest.raises(KeyLoadError):
        generate_test_key("G22")


def test_keys_load_from_pem_files_combined_pem_encrypted_pem_and_pkcs12(tmp_path: Path) -> None:
    made = generate_test_key("000.00.00.G22")
    made.write_pem(tmp_path / "k.pem", tmp_path / "c.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    assert AgencyKey.load(tmp_path / "k.pem", tmp_path / "c.pem").certificate_sha256 == made.certificate_sha256
    combined = tmp_path / "both.pem"
    combined.write_bytes(made.private_key_pem() + made.certificate_pem.encode())
    assert AgencyKey.load(combined).certificate == made.certificate
    der = tmp_path / "c.der"
    der.write_bytes(made.certificate.public_bytes(serialization.Encoding.DER))
    assert AgencyKey.load(tmp_path / "k.pem", der).certificate == made.certificate
    made.write_pem(tmp_path / "enc.pem", tmp_path / "c2.pem", password="mật khẩu")
    assert AgencyKey.load(tmp_path / "enc.pem", tmp_path / "c2.pem", password="mật khẩu").certificate == (
        made.certificate)
    p12 = tmp_path / "k.p12"
    p12.write_bytes(made.pkcs12("mật khẩu"))
    loaded = AgencyKey.load(p12, password="mật khẩu")
    assert loaded.certificate == made.certificate
    assert _verifies(loaded)


@pytest.mark.parametrize(
    "case",
    ["wrong_pkcs12_password", "encrypted_pem_without_password", "certificate_of_another_key", "no_certificate",
     "not_a_key", "missing_file"],
)
def test_every_key_that_cannot_be_used_is_a_key_load_error(case: str, tmp_path: Path) -> None:
    made = generate_test_key("000.00.00.G22")
    made.write_pem(tmp_path / "k.pem", tmp_path / "c.pem")
    made.write_pem(tmp_path / "enc.pem", tmp_path / "c.pem", password="x")
    (tmp_path / "k.p12").write_bytes(made.pkcs12("right"))
    (tmp_path / "other.pem").write_text(make_keypair().cert_pem)
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    load = {
        "wrong_pkcs12_password": lambda: AgencyKey.load(tmp_path / "k.p12", password="wrong"),
        "encrypted_pem_without_password": lambda: AgencyKey.load(tmp_path / "enc.pem", tmp_path / "c.pem"),
        "certificate_of_another_key": lambda: AgencyKey.load(tmp_path / "k.pem", tmp_path / "other.pem"),
        "no_certificate": lambda: AgencyKey.load(tmp_path / "k.pem"),
        "not_a_key": lambda: AgencyKey.load(tmp_path / "junk.pem", tmp_path / "c.pem"),
        "missing_file": lambda: AgencyKey.load(tmp_path / "absent.pem", tmp_path / "c.pem"),
    }[case]
    with pytest.raises(KeyLoadError):
        load()
