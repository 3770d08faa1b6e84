"""Signed checkpoints of the ledger, pure: the signed bytes, signing, and verifying with a certificate.

A checkpoint says "the ledger held ``size`` entries (seq 0 … size-1), the last one's hash was ``head``,
at this instant", signed with the gateway's key. Anyone holding the gateway certificate
(``GET /v1/gateway/certificate``) can check it offline, and so can later tell whether the ledger they are
shown still extends what was signed: the entry at seq size-1 must still carry that hash, and a ledger
shorter than a signed size has lost entries.

The signed byte string (version 1) is ASCII, four lines, each ending in one line feed (0x0A)::

    gateway-ledger-checkpoint/v1
    size <size, decimal, no sign, no leading zeros>
    head <hash of entry size-1: 64 lowercase hex digits>
    time <signed instant: YYYY-MM-DDTHH:MM:SS.ffffffZ, UTC, always six digits of microseconds>

For example ``b"gateway-ledger-checkpoint/v1\\nsize 1000\\nhead 9f86…0f00\\ntime 2026-11-22T03:04:05.123456Z\\n"``.

Signature algorithms, an allow-list chosen by the key type (the stored name must match the certificate's
key, so a verifier is never talked into another algorithm):

==========================  ==============================================================
``rsa-pkcs1v15-sha256``      RSA key: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017), the gateway's default
``ecdsa-p256-sha256``        EC P-256 key: ECDSA with SHA-256, DER-encoded signature (RFC 3279)
``ecdsa-p384-sha384``        EC P-384 key: ECDSA with SHA-384, DER-encoded signature
``ed25519``                  Ed25519 key (RFC 8032)
==========================  ==============================================================

The signature travels base64-encoded (RFC 4648 §4, with padding). Verifying offline with ``cryptography``
(RSA, the default key)::

    cert.public_key().verify(base64.b64decode(sig), statement, padding.PKCS1v15(), hashes.SHA256())

:func:`verify_signature` fails closed: it returns nothing and raises :class:`CheckpointSignatureInvalid`
for every reason a checkpoint cannot be trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from gateway.ledger.chain import format_instant

STATEMENT_HEADER = "gateway-ledger-checkpoint/v1"

RSA_PKCS1V15_SHA256 = "rsa-pkcs1v15-sha256"
ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
ECDSA_P384_SHA384 = "ecdsa-p384-sha384"
ED25519 = "ed25519"
ALGORITHMS = frozenset({RSA_PKCS1V15_SHA256, ECDSA_P256_SHA256, ECDSA_P384_SHA384, ED25519})

_HEX64 = re.compile(r"[0-9a-f]{64}")


class CheckpointError(Exception):
    """A checkpoint that cannot be made or trusted; ``size`` names it."""

    def __init__(self, size: int, reason: str) -> None:
        super().__init__(f"checkpoint at size {size}: {reason}")
        self.size = size
        self.reason = reason


class CheckpointSignatureInvalid(CheckpointError):
    """The signature does not verify with the certificate (or cannot be checked at all)."""


class UnsupportedSigningKey(CheckpointError):
    """The gateway key is of a type outside the allow-list."""


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    size: int
    head_hash: str
    signed_at: datetime
    algorithm: str
    signature: str  # base64
    certificate_sha256: str

    @property
    def statement(self) -> bytes:
        return statement(self.size, self.head_hash, self.signed_at)


def statement(size: int, head_hash: str, signed_at: datetime) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    if size <= 0:
        raise ValueError("a checkpoint covers at least the genesis entry")
    if not _HEX64.fullmatch(head_hash):
        raise ValueError("head hash: 64 lowercase hex digits")
    text = f"{STATEMENT_HEADER}\nsize {size}\nhead {head_hash}\ntime {format_instant(signed_at)}\n"
    return text.encode("ascii")


def certificate_sha256(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def algorithm_for_key(key: object) -> str | None:
    """The allow-listed algorithm for a private or public key, or None."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSA_PKCS1V15_SHA256
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return ECDSA_P256_SHA256
        if isinstance(key.curve, ec.SECP384R1):
            return ECDSA_P384_SHA384
        return None
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return ED25519
    return None


def sign(
    private_key: PrivateKeyTypes, certificate: x509.Certificate, size: int, head_hash: str, signed_at: datetime
) -> SignedCheckpoint:
    message = statement(size, head_hash, signed_at)
    algorithm = algorithm_for_key(private_key)
    raw: bytes
    if algorithm == RSA_PKCS1V15_SHA256 and isinstance(private_key, rsa.RSAPrivateKey):
        raw = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    elif algorithm == ECDSA_P256_SHA256 and isinstance(private_key, ec.EllipticCurvePrivateKey):
        raw = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    elif algorithm == ECDSA_P384_SHA384 and isinstance(private_key, ec.EllipticCurvePrivateKey):
        raw = private_key.sign(message, ec.ECDSA(hashes.SHA384()))
    elif algorithm == ED25519 and isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.sign(message)
    else:
        raise UnsupportedSigningKey(size, f"the gateway key type {type(private_key).__name__} is not allow-listed")
    return SignedCheckpoint(
        size=size,
        head_hash=head_hash,
        signed_at=signed_at,
        algorithm=algorithm,
        signature=base64.b64encode(raw).decode("ascii"),
        certificate_sha256=certificate_sha256(certificate),
    )


def verify_signature(checkpoint: SignedCheckpoint, certificate: x509.Certificate) -> None:
    """Raise :class:`CheckpointSignatureInvalid` unless ``certificate`` signed exactly this checkpoint."""
    size = checkpoint.size
    # 1. The algorithm is allow-listed and is the one the certificate's key type dictates.
    public_key = certificate.public_key()
    expected = algorithm_for_key(public_key)
    if checkpoint.algorithm not in ALGORITHMS:
        raise CheckpointSignatureInvalid(size, "signature algorithm not allow-listed")
    if expected != checkpoint.algorithm:
        raise CheckpointSignatureInvalid(size, "signature algorithm does not match the certificate's key")
    # 2. It names this certificate (a checkpoint signed by an earlier key is not silently accepted).
    if checkpoint.certificate_sha256 != certificate_sha256(certificate):
        raise CheckpointSignatureInvalid(size, "signed with another certificate")
    # 3. The statement can be rebuilt from the stored fields.
    try:
        message = checkpoint.statement
    except ValueError as exc:
        raise CheckpointSignatureInvalid(size, f"malformed checkpoint ({exc})") from exc
    # 4. The signature is strict base64.
    try:
        raw = base64.b64decode(checkpoint.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointSignatureInvalid(size, "signature is not base64") from exc
    # 5. The signature verifies over exactly those bytes.
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            digest = hashes.SHA256() if checkpoint.algorithm == ECDSA_P256_SHA256 else hashes.SHA384()
            public_key.verify(raw, message, ec.ECDSA(digest))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(raw, message)
        else:  # unreachable: step 1 admits only the key types above
            raise CheckpointSignatureInvalid(size, "unsupported certificate key")
    except InvalidSignature as exc:
        raise CheckpointSignatureInvalid(size, "signature does not verify") from exc
