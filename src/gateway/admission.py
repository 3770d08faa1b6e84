"""Admission control: a bounded number of requests in flight per process, and a fast, clear 503 past it.

Past its capacity a gateway that takes every request makes every request slow: each one waits its turn
for the CPU and the database pool, and the ones that wait too long end in a pool timeout. Here at most
``max_concurrent_requests`` requests run at once in a process; the next ones queue in arrival order for
at most ``admission_wait_seconds``, and a request still waiting then is answered at once with
``503 urn:gateway:problem:overloaded`` and ``Retry-After`` — before authentication, so nothing about it is
read or stored (it was not looked at, so there is nothing to refuse in the ledger). A client that retries
after the pause sends the same bytes; intake is idempotent, so a retry never makes a second document.

Health, readiness and metrics are never queued: an operator must see an overloaded gateway. A Server-Sent
Events stream is admitted like any request and gives its slot back when its answer starts: it may stay open for
hours, and the streams have a cap of their own (``GATEWAY_EVENTS_MAX_STREAMS``).

A pure ASGI middleware (no per-request task or body buffering); the limiter itself lives on
``app.state.admission``, made in the lifespan inside the event loop that uses it.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import PROBLEM_MEDIA_TYPE, Overloaded

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

SHED = Counter("gateway_requests_shed", "Requests answered 503 overloaded without being handled")


class Admission:
    """At most ``limit`` holders at once; others wait in order up to ``wait`` seconds."""

    def __init__(self, limit: int, wait: float, retry_after: int = 1) -> None:
        if limit < 1:
            raise ValueError("the admission limit must be at least 1")
        self.limit = limit
        self.wait = wait
        self.retry_after = retry_after
        self.in_flight = 0
        self._slots = asyncio.Semaphore(limit)

    async def enter(self) -> bool:
        """Take a slot; False if none came free within ``wait`` seconds."""
        try:
            async with asyncio.timeout(self.wait):
                await self._slots.acquire()
        except TimeoutError:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1
        self._slots.release()


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admission: Admission | None = None
        if scope["type"] == "http" and scope["path"] not in EXEMPT_PATHS:
            admission = getattr(scope["app"].state, "admission", None)
        if admission is None:
            await self.app(scope, receive, send)
            return
        if not await admission.enter():
            SHED.inc()
            await _overloaded(scope, send, admission.retry_after)
            return
        held = True

        async def send_releasing_streams(message: Message) -> None:
            # A Server-Sent Events stream (GET /v1/events, the console's live view) lives as long as its client:
            # it holds its slot while it is authenticated and set up, and gives it back once its answer starts
            # (the streams have their own cap: gateway.ledger.feed.StreamSlots).
            nonlocal held
            if held and message["type"] == "http.response.start" and _is_event_stream(message):
                held = False
                admission.leave()
            await send(message)

        try:
            await self.app(scope, receive, send_releasing_streams)
        finally:
            if held:
                admission.leave()


def _is_event_stream(start: Message) -> bool:
    return any(name.lower() == b"content-type" and value.lower().startswith(b"text/event-stream")
               for name, value in start.get("headers", ()))


async def _overloaded(scope: Scope, send: Send, retry_after: int) -> None:
    error = Overloaded(f"more requests than this gateway process can take at once; retry after {retry_after} s")
    if str(scope["path"]).startswith("/vxp/"):
        # The national axis SDK reads only a JSON body (gateway.vxp.protocol.answer's shape): an RFC 9457
        # document would make it report an empty success. DocId is there for sendEdoc.
        body = json.dumps({"status": "FAIL", "ErrorCode": error.slug, "ErrorDesc": error.detail, "DocId": ""},
                          ensure_ascii=True).encode("ascii")
        media_type = "application/json"
    else:
        body = json.dumps(error.to_problem(instance=scope["path"])).encode("utf-8")
        media_type = PROBLEM_MEDIA_TYPE
    await send({
        "type": "http.response.start",
        "status": error.status,
        "headers": [
            (b"content-type", media_type.encode("ascii")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"retry-after", str(retry_after).encode("ascii")),
        ],
    })
    await send({"type": "http.response.body", "body": body})
