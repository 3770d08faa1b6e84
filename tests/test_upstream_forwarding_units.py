"""The forwarder's reading of every upstream failure, and the instants an upstream writes, without a network."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from gateway.upstream.client import UpstreamClient
from gateway.upstream.forwarder import UpstreamForwarder
from gateway.upstream.times import parse_upstream_time


def _forwarder(handler: httpx.MockTransport) -> UpstreamForwarder:
    return UpstreamForwarder(UpstreamClient("http://axis.test/vxp", "system-1", "secret", transport=handler))


def _answer(status: int, body: dict[str, object] | str) -> httpx.MockTransport:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.MockTransport(lambda request: httpx.Response(status, content=content,
                                                              headers={"Content-Type": "application/json"}))


def _fail(code: str) -> dict[str, object]:
    return {"status": "FAIL", "ErrorCode": code, "ErrorDesc": f"refused: {code}"}


@pytest.mark.parametrize(("transport", "outcome", "in_error"), [
    (_answer(200, {"status": "OK", "ErrorCode": "0", "DocId": "up-1"}), "forwarded", ""),
    (_answer(200, {"status": "OK", "ErrorCode": 0, "DocId": ""}), "retry", "unreadable"),
    (_answer(200, "<html>proxy error</html>"), "retry", "unreadable"),
    (_answer(503, "Service Unavailable"), "retry", "unavailable"),
    (_answer(429, _fail("too-many-requests")), "retry", "too-many-requests"),
    (_answer(200, _fail("overloaded")), "retry", "overloaded"),
    (_answer(500, _fail("E500")), "retry", "E500"),
    (_answer(401, _fail("vxp-hmac-invalid")), "dead", "vxp-hmac-invalid"),
    (_answer(422, _fail("recipient-unknown")), "dead", "recipient-unknown"),
    (_answer(200, _fail("-1")), "dead", "-1"),
])
async def test_each_upstream_answer_is_forwarded_retried_or_dead(transport: httpx.MockTransport, outcome: str,
                                                                 in_error: str) -> None:
    forwarder = _forwarder(transport)
    result = await forwarder.forward(b"<edXMLEnvelope/>", "000.00.01.H41", "document")
    assert result.outcome == outcome, result
    assert in_error in result.error
    assert (result.upstream_doc_id == "up-1") == (outcome == "forwarded")
    await forwarder.client.aclose()


async def test_no_connection_is_a_retry_and_a_status_goes_as_messagetype_status() -> None:
    seen: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["XroadVnpt-messagetype"])
        raise httpx.ConnectError("refused", request=request)

    forwarder = _forwarder(httpx.MockTransport(down))
    result = await forwarder.forward(b"<edXMLEnvelope/>", "000.00.01.H41", "status")
    assert (result.outcome, result.http_status) == ("retry", None)
    assert seen == ["status"]
    await forwarder.client.aclose()


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-28T23:35:28.419+07:00", datetime(2026, 11, 28, 16, 35, 28, 419_000, tzinfo=UTC)),
    ("2026-11-28T23:35:28+07:00", datetime(2026, 11, 28, 16, 35, 28, tzinfo=UTC)),
    ("2026-11-28T16:35:28Z", datetime(2026, 11, 28, 16, 35, 28, tzinfo=UTC)),
    ("2026-11-28 23:35:28", datetime(2026, 11, 28, 16, 35, 28, tzinfo=UTC)),  # no zone: Vietnam time
    ("28/11/2026 23:35:28", datetime(2026, 11, 28, 16, 35, 28, tzinfo=UTC)),
    ("28-11-2026 23:35:28", datetime(2026, 11, 28, 16, 35, 28, tzinfo=UTC)),
    ("1795882528419", datetime(2026, 11, 28, 16, 15, 28, 419_000, tzinfo=UTC)),
    ("", None), ("   ", None), ("null", None), ("31/02/2026 10:00:00", None), ("0001-01-01T00:00:00", None),
    ("9999-12-31 23:59:59", None), ("x" * 50, None),
])
def test_upstream_times_are_read_in_their_forms_and_never_invented(text: str, expected: datetime | None) -> None:
    assert parse_upstream_time(text) == expected
