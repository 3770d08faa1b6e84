"""The agency's signing key and certificate: loaded from PEM or PKCS#12, or made for tests.

An agency signs every envelope and status it sends with the key of a certificate registered for it at the
gateway (EDXML.md, "Signatures"). Real certificates come from the agency's CA (in Viet Nam, usually a
PKCS#12 file or a token); :func:`generate_test_key` makes a self-signed one whose subject says
``TEST ONLY`` in every name, for trying the gateway out, never for real documents.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from gateway.envelope import SigningAlgorithm, sign

from .errors import KeyLoadError

__all__ = [
    "TEST_ONLY",
    "AgencyKey",
    "agency_code_of",
    "agency_name_of",
    "generate_test_key",
    "load_certificate",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

#: written into every name of a certificate made by :func:`generate_test_key`
TEST_ONLY = "TEST ONLY"

_CODE = re.compile(r"\b(\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2})\b")


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise KeyLoadError("not a readable X.509 certificate (PEM or DER)") from exc


def _algorithm_for(key: PrivateKey) -> SigningAlgorithm:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa-sha256"
    return "ecdsa-sha384" if key.curve.key_size >= 384 else "ecdsa-sha256"


@dataclass(frozen=True)
class AgencyKey:
    """A private key, its certificate (and any chain), ready to sign edXML with the gateway's profile."""

    private_key: PrivateKey
    certificate: x509.Certificate
    chain: Sequence[x509.Certificate] = field(default_factory=tuple)
    #: the XML signature algorithm; default: RSA-SHA256 for RSA keys, ECDSA-SHA256/384 for EC keys
    algorithm: SigningAlgorithm | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyLoadError("only RSA and EC keys can sign edXML")
        if _spki(self.private_key.public_key()) != _spki(self.certificate.public_key()):
            raise KeyLoadError("the private key does not belong to the certificate")

    @classmethod
    def load(cls, key_path: Path, cert_path: Path | None = None, *, password: str | bytes | None = None) -> AgencyKey:
        """Load a key: a PKCS#12 file (``.p12``/``.pfx``, or any non-PEM file) holding key and certificate,
        or a PEM private key with its certificate in ``cert_path`` (PEM or DER) or in the same PEM file."""
        try:
            data = key_path.read_bytes()
            cert_data = cert_path.read_bytes() if cert_path is not None else None
        except OSError as exc:
            raise KeyLoadError(f"cannot read {exc.filename}: {exc.strerror}") from None
        return cls.from_bytes(data, cert_data, password=password)

    @classmethod
    def from_bytes(cls, key_data: bytes, cert_data: bytes | None = None, *,
                   password: str | bytes | None = None) -> AgencyKey:
        secret = password.encode("utf-8") if isinstance(password, str) else password
        if b"-----BEGIN" not in key_data:
            return cls.from_pkcs12(key_data, secret, cert_data)
        try:
            key = serialization.load_pem_private_key(key_data, password=secret)
        except TypeError as exc:  # password missing, or given for an unencrypted key
            raise KeyLoadError(f"the key file: {exc}") from None
        except ValueError:
            raise KeyLoadError("the key file is not a readable PEM private key (or the password is wrong)") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyLoadError("only RSA and EC keys can sign edXML")
        if cert_data is None:
            if b"CERTIFICATE-----" not in key_data:
                raise KeyLoadError("no certificate: give the certificate file, or a PEM holding key and certificate")
            cert_data = key_data
        certs = _pem_certificates(cert_data) if b"-----BEGIN" in cert_data else [load_certificate(cert_data)]
        return cls._with_leaf(key, certs)

    @classmethod
    def from_pkcs12(cls, data: bytes, password: bytes | None = None, cert_data: bytes | None = None) -> AgencyKey:
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            raise KeyLoadError("not a readable PKCS#12 file (or the password is wrong)") from None
        if key is None:
            raise KeyLoadError("the PKCS#12 file holds no private key")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyLoadError("only RSA and EC keys can sign edXML")
        certs = [c for c in [cert, *extra] if c is not None]
        if cert_data is not None:
            certs = [load_certificate(cert_data), *certs]
        return cls._with_leaf(key, certs)

    @classmethod
    def _with_leaf(cls, key: PrivateKey, certs: Sequence[x509.Certificate]) -> AgencyKey:
        mine = _spki(key.public_key())
        leaf = next((c for c in certs if _spki(c.public_key()) == mine), None)
        if leaf is None:
            raise KeyLoadError("the private key does not belong to the certificate")
        return cls(key, leaf, tuple(c for c in certs if c is not leaf))

    @property
    def signing_algorithm(self) -> SigningAlgorithm:
        return self.algorithm or _algorithm_for(self.private_key)

    @property
    def certificate_sha256(self) -> str:
        """Hex SHA-256 of the certificate's DER: the id the gateway's register uses."""
        return _fingerprint(self.certificate)

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def is_test_only(self) -> bool:
        return TEST_ONLY in self.certificate.subject.rfc4514_string()

    def sign(self, xml: bytes) -> bytes:
        """Sign an edXML document or status with the profile signature (last child of ``edXMLHeader``)."""
        return sign(xml, self.private_key, self.certificate, algorithm=self.signing_algorithm, chain=self.chain)

    def private_key_pem(self, password: str | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode("utf-8")) if password
            else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              encryption)

    def pkcs12(self, password: str | None = None, name: str = "agency") -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode("utf-8")) if password
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(name.encode("utf-8"), self.private_key, self.certificate,
                                                     list(self.chain) or None, encryption)

    def write_pem(self, key_path: Path, cert_path: Path, password: str | None = None) -> None:
        """Write the key (owner-only permissions) and the certificate as PEM files."""
        _write_private(key_path, self.private_key_pem(password))
        cert_path.write_text(self.certificate_pem, encoding="ascii")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when overwriting a file that had wider permissions
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise KeyLoadError("the certificate file is not readable PEM") from exc
    return certs


def generate_test_key(agency: str, name: str | None = None, *, kind: Literal["ec", "rsa"] = "ec",
                      days: int = 365) -> AgencyKey:
    """A new key and a self-signed certificate for ``agency``, labelled test-only in every name.

    The agency code goes into the subject's ``UID`` (and the CN) so that :func:`agency_code_of` finds it.
    """
    if not _CODE.fullmatch(agency):
        raise KeyLoadError("the agency code must look like LLL.KK.JJ.Xnn, e.g. 000.00.00.G22")
    key: PrivateKey = (rsa.generate_private_key(public_exponent=65537, key_size=3072) if kind == "rsa"
                       else ec.generate_private_key(ec.SECP256R1()))
    label = f"{name} ({agency})" if name else agency
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{TEST_ONLY} - {name or agency}"[:64]),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{TEST_ONLY}: not for real documents"),
        x509.NameAttribute(NameOID.USER_ID, agency),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{TEST_ONLY} {label}"[:64]),
    ])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return AgencyKey(key, certificate)


def agency_code_of(certificate: x509.Certificate) -> str | None:
    """The agency code (mã định danh) the certificate's subject names, if it names exactly one: looked for
    in ``UID``, then ``serialNumber``, ``OU`` and ``CN``."""
    for oid in (NameOID.USER_ID, NameOID.SERIAL_NUMBER, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME):
        found: set[str] = {m for attr in certificate.subject.get_attributes_for_oid(oid)
                           for m in _CODE.findall(str(attr.value))}
        if len(found) == 1:
            return found.pop()
    return None


def agency_name_of(certificate: x509.Certificate) -> str | None:
    """The organisation the certificate names (``O``, else ``CN``), for the ``From/OrganName`` block."""
    for oid in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        for attr in certificate.subject.get_attributes_for_oid(oid):
            value: str = str(attr.value).strip()
            if value:
                return value
    return None
