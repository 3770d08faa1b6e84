"""The gateway's signature on a push delivery, and its verification (pure: stdlib and cryptography only).

Both sides use this one module: the server signs every push attempt and pull download with
:func:`sign_push` (through :mod:`gateway.delivery.push`), and an agency's system checks them with
:func:`verify_push` (through :func:`gateway.client.verify_delivery`), so the two can never disagree on
the signed string. It lives in the pure core rather than in ``gateway.delivery`` so that the agency client
imports nothing of the server.

Every push ``POST`` carries these headers (values are ASCII)::

    X-Gateway-Delivery-Id      the delivery's id (one per document and recipient; stable across retries)
    X-Gateway-Document-Id      the gateway document id (the idempotency key: at-least-once delivery)
    X-Gateway-Kind             document | status
    X-Gateway-Sender           OrganId of the document's sender (for a status: the agency reporting it)
    X-Gateway-Recipient        OrganId of the recipient the delivery is for
    X-Gateway-Sent-At          the sent instant (Điều 11.1), RFC 3339, UTC, microseconds
    X-Gateway-Timestamp        the instant this attempt started, same form
    X-Gateway-Content-SHA256   lower-case hex SHA-256 of the original edXML bytes
    X-Gateway-Attempt          the attempt number (informational, not signed)
    X-Gateway-Refers-To        for a status: the gateway id of the document it is about (not signed)
    X-Gateway-Signature        alg=<rsa-sha256|ecdsa-sha256>, cert=<hex SHA-256 of the signing
                               certificate's DER>, sig=<base64 signature>

The signature is over the UTF-8 bytes of exactly these nine lines joined by ``\\n`` (no trailing newline)::

    gateway-push-v1
    <X-Gateway-Delivery-Id>
    <X-Gateway-Document-Id>
    <X-Gateway-Kind>
    <X-Gateway-Sender>
    <X-Gateway-Recipient>
    <X-Gateway-Sent-At>
    <X-Gateway-Timestamp>
    <X-Gateway-Content-SHA256>

made with the gateway's key (RSA: PKCS#1 v1.5 with SHA-256; EC: ECDSA with SHA-256, DER-encoded), and
verifiable with the certificate served at ``GET /v1/gateway/certificate``. A recipient checks the
signature, that ``X-Gateway-Recipient`` is itself (a captured delivery cannot be replayed to another
agency), and that the SHA-256 of the edXML bytes equals ``X-Gateway-Content-SHA256``. The body is the
edXML bytes themselves (``application/xml``), or, for a document whose large attachments travelled as
multipart parts, ``multipart/form-data`` with the edXML as part ``envelope`` and each large attachment
as a part named by its Content-ID: the content digest is then the envelope part's, and each part's
SHA-256 is the one the (signed) envelope declares for it, so the signature covers the parts too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = [
    "SIGNED_HEADERS",
    "PushHeaders",
    "PushSignatureError",
    "format_instant",
    "sign_push",
    "signed_string",
    "verify_push",
]

PREFIX = "gateway-push-v1"
H_DELIVERY = "X-Gateway-Delivery-Id"
H_DOCUMENT = "X-Gateway-Document-Id"
H_KIND = "X-Gateway-Kind"
H_SENDER = "X-Gateway-Sender"
H_RECIPIENT = "X-Gateway-Recipient"
H_SENT_AT = "X-Gateway-Sent-At"
H_TIMESTAMP = "X-Gateway-Timestamp"
H_CONTENT = "X-Gateway-Content-SHA256"
H_SIGNATURE = "X-Gateway-Signature"
H_ATTEMPT = "X-Gateway-Attempt"
H_REFERS_TO = "X-Gateway-Refers-To"

#: the signed headers, in the order of the signed string
SIGNED_HEADERS = (H_DELIVERY, H_DOCUMENT, H_KIND, H_SENDER, H_RECIPIENT, H_SENT_AT, H_TIMESTAMP, H_CONTENT)


class PushSignatureError(Exception):
    """A push delivery whose gateway signature does not verify (the reason is the message)."""


@dataclass(frozen=True)
class PushHeaders:
    delivery_id: str
    document_id: str
    kind: str
    sender: str
    recipient: str
    sent_at: str
    timestamp: str
    content_sha256: str

    def values(self) -> tuple[str, ...]:
        return (self.delivery_id, self.document_id, self.kind, self.sender, self.recipient, self.sent_at,
                self.timestamp, self.content_sha256)


def format_instant(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one form the signed headers use."""
    if value.tzinfo is None:
        raise ValueError("naive instant")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def signed_string(headers: PushHeaders) -> bytes:
    for value in headers.values():
        if "\n" in value or "\r" in value or not value.isascii():
            raise ValueError("a signed header value holds a line break or non-ASCII text")
    return "\n".join((PREFIX, *headers.values())).encode("utf-8")


def _cert_sha256(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def sign_push(headers: PushHeaders, key: PrivateKeyTypes, certificate: x509.Certificate) -> dict[str, str]:
    """The signed headers and ``X-Gateway-Signature`` for one push attempt."""
    message = signed_string(headers)
    if isinstance(key, rsa.RSAPrivateKey):
        alg, sig = "rsa-sha256", key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        alg, sig = "ecdsa-sha256", key.sign(message, ec.ECDSA(hashes.SHA256()))
    else:
        raise TypeError("the gateway key must be RSA or EC to sign push deliveries")
    out = dict(zip(SIGNED_HEADERS, headers.values(), strict=True))
    out[H_SIGNATURE] = f"alg={alg}, cert={_cert_sha256(certificate)}, sig={base64.b64encode(sig).decode('ascii')}"
    return out


def _parse_signature(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in value.split(","):
        name, sep, val = item.strip().partition("=")
        if not sep or name in params:
            raise PushSignatureError("X-Gateway-Signature is malformed")
        params[name] = val
    if set(params) != {"alg", "cert", "sig"}:
        raise PushSignatureError("X-Gateway-Signature needs exactly alg, cert and sig")
    return params


def verify_push(
    headers: Mapping[str, str],
    envelope: bytes,
    certificate: x509.Certificate,
    *,
    recipient: str | None = None,
    now: datetime | None = None,
    max_skew: timedelta | None = None,
) -> PushHeaders:
    """Verify a push delivery; returns the signed header values or raises :class:`PushSignatureError`.

    ``headers`` is looked up case-insensitively; ``envelope`` is the edXML bytes (the body, or the
    ``envelope`` part of a multipart body). With ``recipient``, the delivery must be addressed to it; with
    ``now`` and ``max_skew``, ``X-Gateway-Timestamp`` must be that close to ``now``.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    # 1. every signed header is present
    try:
        values = PushHeaders(*(lower[h.lower()] for h in SIGNED_HEADERS))
        params = _parse_signature(lower[H_SIGNATURE.lower()])
    except KeyError as exc:
        raise PushSignatureError(f"missing header {exc.args[0]}") from None
    # 2. the certificate named is the one given
    if not hmac.compare_digest(params["cert"].lower(), _cert_sha256(certificate)):
        raise PushSignatureError("signed by another certificate")
    # 3. the signature, with the algorithm the certificate's key allows
    try:
        signature = base64.b64decode(params["sig"], validate=True)
        message = signed_string(values)
    except ValueError as exc:
        raise PushSignatureError("signature or header value malformed") from exc
    public_key = certificate.public_key()
    try:
        if params["alg"] == "rsa-sha256" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif params["alg"] == "ecdsa-sha256" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            raise PushSignatureError("algorithm not allowed for this certificate")
    except InvalidSignature:
        raise PushSignatureError("signature does not verify") from None
    # 4. the body is the one signed
    if not hmac.compare_digest(hashlib.sha256(envelope).hexdigest(), values.content_sha256.lower()):
        raise PushSignatureError("the edXML bytes differ from X-Gateway-Content-SHA256")
    # 5. addressed to this recipient, and fresh
    if recipient is not None and values.recipient != recipient:
        raise PushSignatureError("addressed to another recipient")
    if now is not None and max_skew is not None:
        try:
            stamp = datetime.fromisoformat(values.timestamp)
        except ValueError:
            raise PushSignatureError("X-Gateway-Timestamp is not an RFC 3339 instant") from None
        if stamp.tzinfo is None or abs(now - stamp) > max_skew:
            raise PushSignatureError("X-Gateway-Timestamp is too far from now")
    return values

