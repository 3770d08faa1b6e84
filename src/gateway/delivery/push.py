"""One push attempt: POST the delivery body with the gateway's signed headers, and say what the answer means.

Nothing here touches the database: the worker calls :func:`push` between its claim transaction and its
result transaction. The received instant is the moment the answer's status line and headers arrived
(Điều 11.2); at most :data:`MAX_ANSWER_BYTES` of the answer body are read (to reuse the connection and to
quote a refusal's reason), the rest is discarded. Redirects are not followed: a 3xx is a final answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from gateway.envelope.push_signature import H_ATTEMPT, H_REFERS_TO, PushHeaders, format_instant, sign_push
from gateway.signing import GatewayKey

from .backoff import Outcome, classify_status, parse_retry_after
from .body import DeliveryBody
from .repository import Job

MAX_ANSWER_BYTES = 2048


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    http_status: int | None
    #: for the ledger and ``last_error``: the status or the transport error, and a refusal's reason
    error: str
    retry_after: float | None
    received_at: datetime
    duration: float


def gateway_headers(*, delivery_id: str, document: str, kind: str, sender: str, recipient: str, sent_at: datetime,
                    content_sha256: str, refers_to: str | None, key: GatewayKey, now: datetime) -> dict[str, str]:
    """The signed headers (see :mod:`gateway.envelope.push_signature`) of a push or of a pull download."""
    headers = sign_push(
        PushHeaders(delivery_id=delivery_id, document_id=document, kind=kind, sender=sender, recipient=recipient,
                    sent_at=format_instant(sent_at), timestamp=format_instant(now), content_sha256=content_sha256),
        key.private_key, key.certificate,
    )
    if refers_to is not None:
        headers[H_REFERS_TO] = refers_to
    return headers


def delivery_headers(job: Job, body: DeliveryBody, key: GatewayKey, now: datetime) -> dict[str, str]:
    headers = gateway_headers(delivery_id=job.delivery_id, document=job.document, kind=job.kind, sender=job.sender,
                              recipient=job.recipient, sent_at=job.sent_at, content_sha256=job.envelope_sha256,
                              refers_to=job.refers_to, key=key, now=now)
    return {**headers, H_ATTEMPT: str(job.attempt), "Content-Type": body.media_type,
            "Content-Length": str(body.length)}


def _reason(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(cleaned.split())[:200]


async def push(client: httpx.AsyncClient, job: Job, body: DeliveryBody, key: GatewayKey,
               timeout_seconds: float) -> PushResult:
    assert job.endpoint is not None
    started = time.perf_counter()
    now = datetime.now(UTC)
    headers = delivery_headers(job, body, key, now)

    def result(outcome: Outcome, status: int | None, error: str, retry_after: float | None = None,
               at: datetime | None = None) -> PushResult:
        return PushResult(outcome, status, error, retry_after, at or datetime.now(UTC),
                          time.perf_counter() - started)

    try:
        content = body.chunks() if body.parts else body.envelope  # bytes: written in one go, no generator
        async with client.stream("POST", job.endpoint, content=content, headers=headers,
                                 timeout=httpx.Timeout(timeout_seconds), follow_redirects=False) as response:
            received_at = datetime.now(UTC)
            answer = b""
            async for chunk in response.aiter_raw():
                answer += chunk
                if len(answer) >= MAX_ANSWER_BYTES:
                    break
    except httpx.TimeoutException as exc:
        return result("retry", None, f"timeout ({type(exc).__name__})")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return result("dead", None, f"endpoint unusable ({type(exc).__name__})")
    except (httpx.TransportError, OSError) as exc:
        return result("retry", None, f"connection error ({type(exc).__name__})")
    status = response.status_code
    outcome = classify_status(status)
    error = f"HTTP {status}"
    if outcome == "dead":
        reason = _reason(answer[:MAX_ANSWER_BYTES])
        if reason:
            error += f": {reason}"
    retry_after = parse_retry_after(response.headers.get("retry-after"), received_at) if outcome == "retry" else None
    return result(outcome, status, error, retry_after, received_at)
