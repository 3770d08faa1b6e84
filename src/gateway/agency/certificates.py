"""Reading a signing certificate from PEM, pure: fail with a typed error naming the field."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.agency.errors import CertificateMalformed

# The same rule as an envelope signed with an expired certificate: one problem type for both.
from gateway.envelope.errors import CertificateExpired


@dataclass(frozen=True)
class CertificateInfo:
    sha256: str
    pem: str
    subject: str
    not_before: datetime
    not_after: datetime
    certificate: x509.Certificate


def certificate_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def read_pem_certificate(pem: str, *, now: datetime, field: str = "pem") -> CertificateInfo:
    """Exactly one X.509 certificate, not expired at ``now``."""
    data = pem.strip().encode("ascii", errors="strict") if pem.isascii() else None
    if not data or data.count(b"-----BEGIN CERTIFICATE-----") != 1:
        raise CertificateMalformed(f"{field}: expected exactly one PEM 'CERTIFICATE' block", field=field)
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateMalformed(f"{field}: not a readable X.509 certificate", field=field) from exc
    if cert.not_valid_after_utc <= now:
        raise CertificateExpired(f"{field}: the certificate expired before now", field=field)
    canonical = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return CertificateInfo(
        sha256=certificate_sha256(cert),
        pem=canonical,
        subject=cert.subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        certificate=cert,
    )
