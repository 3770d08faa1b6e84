"""Units of delivery: backoff (pure), the push signature, one push attempt under injected faults (respx),
and claims with leases on both databases."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
from cryptography import x509
from fastapi import FastAPI

from certs import make_keypair
from delivery_support import insert_documents
from gateway.config import Settings
from gateway.delivery.backoff import Policy, backoff_delay, classify_status, decide_failure, parse_retry_after
from gateway.delivery.body import delivery_body
from gateway.delivery.push import push
from gateway.delivery.repository import Job
from gateway.delivery.service import PushTransitions
from gateway.envelope.push_signature import PushHeaders, PushSignatureError, sign_push, verify_push
from gateway.signing import GatewayKey, load_or_create
from gw import register

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
POLICY = Policy(max_attempts=5, max_age=timedelta(hours=1), base=2.0, cap=60.0)


# -- backoff ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "outcome"), [
    (200, "delivered"), (202, "delivered"), (204, "delivered"), (500, "retry"), (503, "retry"), (408, "retry"),
    (429, "retry"), (400, "dead"), (401, "dead"), (404, "dead"), (410, "dead"), (301, "dead"), (100, "dead"),
])
def test_answer_statuses_are_classified(status: int, outcome: str) -> None:
    assert classify_status(status) == outcome


def test_full_jitter_stays_within_the_exponential_ceiling_and_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 40):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, base=2.0, cap=60.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8, "full jitter spans the whole interval"


def test_retry_after_is_a_floor_and_the_bounds_make_a_delivery_dead() -> None:
    decision = decide_failure(attempt=1, window_start=NOW, now=NOW, policy=POLICY, retry_after=120.0)
    assert not decision.dead
    assert decision.delay == 120.0
    assert decide_failure(attempt=5, window_start=NOW, now=NOW, policy=POLICY).reason == "attempts-exhausted"
    late = decide_failure(attempt=2, window_start=NOW - timedelta(minutes=59, seconds=59), now=NOW, policy=POLICY,
                          retry_after=30)
    assert late.dead
    assert late.reason == "age-exceeded"


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), ("0", 0.0), ("Mon, 23 Nov 2026 08:01:00 GMT", 60.0), ("Mon, 23 Nov 2026 07:00:00 GMT", 0.0),
    ("soon", None), ("-5", None), ("", None), (None, None), ("99999999999", 7 * 24 * 3600.0), ("1" * 100, None),
])
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


# -- signature ---------------------------------------------------------------------------------------------------

HEADERS = PushHeaders(delivery_id="d-1", document_id="doc-1", kind="document", sender="000.00.00.G22",
                      recipient="000.00.00.H41", sent_at="2026-11-23T01:00:00.000001+00:00",
                      timestamp="2026-11-23T01:00:05.000000+00:00",
                      content_sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")


@pytest.fixture(scope="module")
def rsa_key(gateway_key_files: tuple[Path, Path]) -> GatewayKey:
    """The gateway's own (RSA) key, as the app loads it."""
    key_file, cert_file = gateway_key_files
    return load_or_create(Settings(signing_key_file=key_file, signing_cert_file=cert_file))


@pytest.fixture
def key(rsa_key: GatewayKey) -> GatewayKey:
    return rsa_key


@pytest.fixture(scope="module")
def ec_key() -> tuple[object, x509.Certificate]:
    pair = make_keypair("gateway (EC)")
    return pair.key, pair.cert


def test_push_signature_verifies_with_rsa_and_ec_keys(rsa_key: GatewayKey,
                                                      ec_key: tuple[object, x509.Certificate]) -> None:
    for private, cert in ((rsa_key.private_key, rsa_key.certificate), ec_key):
        headers = sign_push(HEADERS, private, cert)  # type: ignore[arg-type]
        assert verify_push(headers, b"test", cert, recipient="000.00.00.H41") == HEADERS
        with pytest.raises(PushSignatureError, match="differ"):
            verify_push(headers, b"tEst", cert)
        with pytest.raises(PushSignatureError, match="another recipient"):
            verify_push(headers, b"test", cert, recipient="000.00.00.H42")
        forged = {**headers, "X-Gateway-Recipient": "000.00.00.H42"}
        with pytest.raises(PushSignatureError, match="does not verify"):
            verify_push(forged, b"test", cert)
        with pytest.raises(PushSignatureError, match="missing header"):
            verify_push({k: v for k, v in headers.items() if k != "X-Gateway-Sent-At"}, b"test", cert)
        with pytest.raises(PushSignatureError, match="too far"):
            verify_push(headers, b"test", cert, now=NOW + timedelta(days=1), max_skew=timedelta(minutes=5))
    other = make_keypair("someone else")
    with pytest.raises(PushSignatureError, match="another certificate"):
        verify_push(sign_push(HEADERS, rsa_key.private_key, rsa_key.certificate), b"test", other.cert)


# -- one push attempt under injected faults ------------------------------------------------------------------------

def _job(endpoint: str = "https://recipient.test/edxml") -> Job:
    return Job(delivery_id="d-1", attempt=1, owner="w", lease_until=NOW, recipient="000.00.00.H41",
               recipient_name="H41", endpoint=endpoint, window_start=NOW, document="doc-1", kind="document",
               sender="000.00.00.G22", document_id="x", sent_at=NOW, envelope_sha256="ab" * 32, multipart=False,
               code=None, promulgation_date=None, priority=0, refers_to=None, reclaimed_from=None)


@pytest.mark.parametrize(("fault", "outcome", "error"), [
    (httpx.ConnectTimeout("slow"), "retry", "timeout (ConnectTimeout)"),
    (httpx.ReadTimeout("slow"), "retry", "timeout (ReadTimeout)"),
    (httpx.ConnectError("refused"), "retry", "connection error (ConnectError)"),
    (httpx.RemoteProtocolError("garbage"), "retry", "connection error (RemoteProtocolError)"),
    (httpx.Response(503, headers={"Retry-After": "30"}), "retry", "HTTP 503"),
    (httpx.Response(410, text="mailbox closed\r\nX-Injected: 1"), "dead", "HTTP 410: mailbox closed X-Injected: 1"),
    (httpx.Response(204), "delivered", "HTTP 204"),
])
async def test_one_push_attempt_classifies_each_fault(
    key: GatewayKey, fault: object, outcome: str, error: str
) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("https://recipient.test/edxml")
        if isinstance(fault, httpx.Response):
            route.mock(return_value=fault)
        else:
            route.mock(side_effect=fault)
        async with httpx.AsyncClient() as client:
            result = await push(client, _job(), delivery_body(b"<edXML/>", False, None, "d-1"),  # type: ignore[arg-type]
                                key, 1.0)
        sent = route.calls.last.request
    assert (result.outcome, result.error) == (outcome, error)
    assert sent.headers["X-Gateway-Delivery-Id"] == "d-1"
    assert sent.headers["Content-Type"] == "application/xml"
    if error == "HTTP 503":
        assert result.retry_after == 30.0


async def test_an_endpoint_that_is_not_http_is_dead_at_once(key: GatewayKey) -> None:
    async with httpx.AsyncClient() as client:
        result = await push(client, _job("ftp://recipient.test/x"),
                            delivery_body(b"<edXML/>", False, None, "d-1"), key, 1.0)  # type: ignore[arg-type]
    assert result.outcome == "dead"
    assert result.error.startswith("endpoint unusable")


# -- claims and leases on both databases -----------------------------------------------------------------------

async def _queue(app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], count: int,
                 priority: int = 0) -> list[str]:
    await register(client, admin, "000.00.00.G22")
    await register(client, admin, "000.00.00.H41", delivery={"mode": "push", "endpoint": "http://127.0.0.1:9/x"})
    digest = app.state.blobs.put(b"<edXML/>")
    return await insert_documents(app.state.db, "000.00.00.G22", [("000.00.00.H41", "push")], digest, 8, count,
                                  priority)


async def test_concurrent_claims_never_take_the_same_delivery(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _queue(app, client, admin_headers, 60)

    async def claim(owner: str) -> list[str]:
        taken: list[str] = []
        for _ in range(10):
            async with app.state.db.transaction() as session:
                jobs = await PushTransitions(session).claim(owner, datetime.now(UTC), timedelta(minutes=5), 4)
            taken += [j.delivery_id for j in jobs]
        return taken

    results = await asyncio.gather(*(claim(f"w{i}") for i in range(4)))
    everything = [d for taken in results for d in taken]
    assert len(everything) == len(set(everything)) == 60


async def test_an_expired_lease_is_taken_over_and_the_old_holder_records_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _queue(app, client, admin_headers, 1)
    db = app.state.db
    async with db.transaction() as session:
        # A lease long enough that the check below runs well inside it even on a loaded machine.
        [first] = await PushTransitions(session).claim("dead-worker", datetime.now(UTC), timedelta(seconds=3), 5)
    async with db.transaction() as session:
        assert await PushTransitions(session).claim("live-worker", datetime.now(UTC), timedelta(minutes=1), 5) == []
    await asyncio.sleep(3.2)
    async with db.transaction() as session:
        [second] = await PushTransitions(session).claim("live-worker", datetime.now(UTC), timedelta(minutes=1), 5)
    assert second.delivery_id == first.delivery_id
    assert second.attempt == 2
    assert second.reclaimed_from == "dead-worker"
    async with db.transaction() as session:
        assert not await PushTransitions(session).dead(first, "refused", "late answer", 404)
        assert not await PushTransitions(session).renew(first, datetime.now(UTC) + timedelta(minutes=1))
    async with db.transaction() as session:
        assert await PushTransitions(session).dead(second, "refused", "HTTP 404", 404)
