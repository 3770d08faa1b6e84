"""Asking a timestamping authority (RFC 3161 over HTTP, §3.4) for a token, and verifying what it answers.

Kept apart from :mod:`gateway.ledger.timestamp` so that the verification stays pure (no httpx): this is
the one exchange, ``POST`` of a DER TimeStampReq as ``application/timestamp-query``, answered by a DER
TimeStampResp as ``application/timestamp-reply``, then :func:`~gateway.ledger.timestamp.verify_token`
with the nonce this call chose. Whatever fails raises a :class:`~gateway.ledger.timestamp.TimestampError`:
the transport failures below (the authority down, a proxy's error page), or the verification's own::

    TimestampError                    (gateway.ledger.timestamp, with the verification's subclasses)
    └── TsaTransportError             no usable answer from the authority
        ├── TsaUnreachable            no connection, no answer, or none within ``timeout``
        ├── TsaHttpError              an HTTP status other than 200 (.status_code)
        ├── TsaContentTypeInvalid     a 200 that is not application/timestamp-reply
        └── TsaReplyTooLarge          more than MAX_REPLY_BYTES
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Final

import httpx
from cryptography import x509

from gateway.ledger.timestamp import TimestampError, TimestampResult, build_request, verify_token

QUERY_MEDIA_TYPE: Final = "application/timestamp-query"
REPLY_MEDIA_TYPE: Final = "application/timestamp-reply"
#: a token is a few kilobytes (TSTInfo, one signature, a certificate or a short chain)
MAX_REPLY_BYTES: Final = 256 * 1024


class TsaTransportError(TimestampError):
    """The authority gave no usable answer (as opposed to an answer that failed verification)."""


class TsaUnreachable(TsaTransportError):
    """No connection, no complete answer, or none within the timeout."""


class TsaHttpError(TsaTransportError):
    """The authority answered with an HTTP status other than 200."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"the timestamping authority answered HTTP {status_code}")
        self.status_code = status_code


class TsaContentTypeInvalid(TsaTransportError):
    """A 200 answer whose media type is not application/timestamp-reply."""


class TsaReplyTooLarge(TsaTransportError):
    """The answer is longer than any timestamp reply should be."""


async def request_timestamp(
    client: httpx.AsyncClient,
    url: str,
    digest: bytes,
    *,
    nonce: int | None = None,
    timeout: float,  # noqa: ASYNC109 -- the public API takes seconds; asyncio.timeout enforces them inside
    tsa_certificates: Sequence[x509.Certificate] | None = None,
) -> TimestampResult:
    """A verified timestamp of ``digest`` (= SHA-256 of the data, the message imprint) from the TSA at ``url``.

    ``nonce`` defaults to 64 fresh random bits; ``timeout`` (seconds) bounds the whole exchange;
    ``tsa_certificates``, when given, are the only certificates the token may be signed with.
    """
    if nonce is None:
        nonce = secrets.randbits(64)
    query = build_request(digest, nonce=nonce)
    try:
        async with asyncio.timeout(timeout):
            reply = await _exchange(client, url, query, httpx.Timeout(timeout))
    except (TimeoutError, httpx.TransportError) as exc:
        raise TsaUnreachable(f"no answer from the timestamping authority ({type(exc).__name__})") from None
    return verify_token(reply, digest=digest, nonce=nonce, tsa_certificates=tsa_certificates)


async def _exchange(client: httpx.AsyncClient, url: str, query: bytes, limits: httpx.Timeout) -> bytes:
    headers = {"Content-Type": QUERY_MEDIA_TYPE, "Accept": REPLY_MEDIA_TYPE}
    async with client.stream(
        "POST", url, content=query, headers=headers, timeout=limits, follow_redirects=False
    ) as response:
        if response.status_code != 200:
            raise TsaHttpError(response.status_code)
        media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != REPLY_MEDIA_TYPE:
            raise TsaContentTypeInvalid("the timestamping authority's answer is not application/timestamp-reply")
        reply = bytearray()
        async for chunk in response.aiter_bytes():
            reply += chunk
            if len(reply) > MAX_REPLY_BYTES:
                raise TsaReplyTooLarge(f"the timestamping authority's answer exceeds {MAX_REPLY_BYTES} bytes")
    return bytes(reply)
