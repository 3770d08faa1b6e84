"""The gateway's own signing key and certificate.

Generated into ``<data_dir>/keys`` on first start when none is configured (RSA 3072, self-signed, ten
years), loaded from the configured files otherwise. Receipts and push deliveries are signed with it;
``GET /v1/gateway/certificate`` serves the certificate so that anyone can verify them.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from gateway.config import Settings


@dataclass(frozen=True)
class GatewayKey:
    private_key: PrivateKeyTypes
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _generate(common_name: str) -> GatewayKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Document interoperability gateway"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return GatewayKey(private_key=key, certificate=cert)


def _load(key_file: Path, cert_file: Path, passphrase: bytes | None) -> GatewayKey:
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=passphrase)
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return GatewayKey(private_key=key, certificate=cert)


def _write_durably(path: Path, data: bytes, mode: int) -> None:
    """Put ``data`` at ``path`` so that ``path`` is either absent or whole, even after a crash.

    ``mode`` is given to open(2), so the umask still applies. The caller holds the keys lock: the fixed
    temporary name is nobody else's.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # left by a crash; O_EXCL then creates it afresh with ``mode``
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    # The rename itself is durable only once the directory is: this keeps "certificate, then key" on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_or_create(settings: Settings) -> GatewayKey:
    """The configured key, else the one in ``<data_dir>/keys``, generated there by the first caller.

    Several processes may start at once on an empty data directory (``uvicorn --workers N``); each must end
    up with the same key. Generation therefore happens under an exclusive lock on a file in the keys
    directory, and whoever takes the lock second loads what the first one wrote. The certificate is put in
    place before the private key, each file whole (temporary file, fsync, rename), so once the key file
    exists the pair is complete and final: that is what lets a caller that finds it skip the lock (a
    read-only keys directory holding a key keeps working).
    """
    passphrase = (
        settings.signing_key_passphrase.get_secret_value().encode() if settings.signing_key_passphrase else None
    )
    if settings.signing_key_file is not None and settings.signing_cert_file is not None:
        return _load(settings.signing_key_file, settings.signing_cert_file, passphrase)
    key_file = settings.keys_dir / "gateway.key.pem"
    cert_file = settings.keys_dir / "gateway.cert.pem"
    if key_file.exists() and cert_file.exists():
        return _load(key_file, cert_file, None)
    settings.keys_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(settings.keys_dir / "gateway.key.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # released when lock_fd is closed, or when the process dies
        if key_file.exists() and cert_file.exists():
            return _load(key_file, cert_file, None)
        generated = _generate("gateway")
        _write_durably(cert_file, generated.certificate_pem.encode("ascii"), 0o666)
        _write_durably(key_file, generated.private_key_pem, 0o600)
        return generated
    finally:
        os.close(lock_fd)
