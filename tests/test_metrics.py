"""``/metrics`` after a known sequence of requests, in one process, on both databases.

The counters live in the process (the default registry), and earlier tests of the same run counted too: each
test scrapes before and after its sequence and checks the differences exactly. The figures (deliveries by state,
the oldest waiting delivery, the ledger's head and last checkpoint) are read from the database at scrape time,
so they are checked as absolute values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from delivery_support import Recipient, always, delivery_rows
from gateway.app import create_app
from gateway.config import Settings
from gateway.delivery.worker import DeliveryWorker
from gateway.documents.models import DELIVERY_STATES
from gateway.health.figures import operational_figures
from gateway.ledger.checkpointer import checkpoint_if_due
from gateway.ledger.models import LedgerEntry
from gateway.metrics import HttpMetricsMiddleware, route_template
from gw import Agency, register, submit
from pg import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)


def family(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def ledger_size(app: FastAPI) -> int:
    async with app.state.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(LedgerEntry))).scalar_one())


@pytest.fixture
def servers() -> Iterator[list[Recipient]]:
    started: list[Recipient] = []
    yield started
    for server in started:
        server.stop()


async def test_scrape_counts_requests_per_route_template_and_status_and_intake_by_outcome(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22", "Văn phòng UBND tỉnh")
    recipient = await register(client, admin_headers, "000.00.00.H41", "Sở Y tế")
    before = await scrape(client)

    documents = []
    for number in ("1", "2", "3"):
        r = await submit(client, sender, sender.envelope(recipient, code_number=number))
        assert r.status_code == 201, r.text
        documents.append(r.headers["X-Gateway-Document-Id"])
    unsigned = await submit(client, sender, sender.envelope(recipient, code_number="4", sign_it=False))
    assert unsigned.json()["type"] == "urn:gateway:problem:signature-missing"
    wrong_type = await client.post("/v1/envelopes", content=b"{}",
                                   headers={**sender.headers, "Content-Type": "application/json"})
    assert wrong_type.json()["type"] == "urn:gateway:problem:unsupported-media-type"
    for document in documents + documents[:1]:
        assert (await client.get(f"/v1/documents/{document}", headers=admin_headers)).status_code == 200
    assert (await client.get("/v1/nowhere/9f2c", headers=admin_headers)).status_code == 404
    assert (await client.get("/v1/documents/00000000-0000-0000-0000-000000000000",
                             headers=admin_headers)).status_code == 404

    after = await scrape(client)
    requests = "gateway_http_requests_total"
    assert grew(before, after, requests, method="POST", route="/v1/envelopes", status="201") == 3
    assert grew(before, after, requests, method="POST", route="/v1/envelopes", status=str(unsigned.status_code)) == 1
    assert grew(before, after, requests, method="POST", route="/v1/envelopes", status="415") == 1
    assert grew(before, after, requests, method="GET", route="/v1/documents/{id}", status="200") == 4
    assert grew(before, after, requests, method="GET", route="/v1/documents/{id}", status="404") == 1
    assert grew(before, after, requests, method="GET", route="unmatched", status="404") == 1
    assert grew(before, after, requests, method="GET", route="/metrics", status="200") == 1  # the first scrape
    # never a raw path as a label
    routes = {dict(labels)["route"] for labels in family(after, requests)}
    assert not any(document in route for route in routes for document in documents)
    assert "/v1/nowhere/9f2c" not in routes
    # the histogram saw each request once, with the same labels
    assert grew(before, after, "gateway_http_request_duration_seconds_count", method="GET",
                route="/v1/documents/{id}", status="200") == 4
    assert grew(before, after, "gateway_http_request_duration_seconds_bucket", method="GET",
                route="/v1/documents/{id}", status="200", le="+Inf") == 4

    assert grew(before, after, "gateway_documents_accepted_total", kind="document") == 3
    assert grew(before, after, "gateway_documents_accepted_total", kind="status") == 0
    assert grew(before, after, "gateway_documents_refused_total", kind="document", problem="signature-missing") == 1
    assert grew(before, after, "gateway_documents_refused_total", kind="document",
                problem="unsupported-media-type") == 1
    refused_before = sum(family(before, "gateway_documents_refused_total").values())
    assert sum(family(after, "gateway_documents_refused_total").values()) - refused_before == 2

    # read from the database now: three pull deliveries waiting, nothing else; the ledger's head
    assert value(after, "gateway_operational_figures_up") == 1
    assert family(after, "gateway_deliveries_in_state") == {
        frozenset({("state", state)}): (3.0 if state == "pending" else 0.0) for state in DELIVERY_STATES}
    oldest = value(after, "gateway_delivery_oldest_pending_seconds")
    assert oldest is not None
    assert oldest > 0
    assert value(after, "gateway_ledger_head_sequence") == await ledger_size(app) - 1
    assert value(after, "gateway_ledger_last_checkpoint_age_seconds") is None  # none signed yet

    await checkpoint_if_due(app.state.db, app.state.gateway_key, every_entries=1, every_seconds=1, force=True)
    signed = await scrape(client)
    assert value(signed, "gateway_ledger_last_checkpoint_size") == await ledger_size(app)
    age = value(signed, "gateway_ledger_last_checkpoint_age_seconds")
    assert age is not None
    assert age >= 0


async def test_figures_count_every_delivery_state_and_find_the_oldest_waiting(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    key = app.state.gateway_key
    refusing = Recipient("000.00.00.H43", key.certificate, always(404)).start()
    # Retry-After keeps the 503's retry out of the next claim: full jitter alone may wait ~0 s.
    busy = Recipient("000.00.00.H44", key.certificate, always(503, {"Retry-After": "3600"})).start()
    taking = Recipient("000.00.00.H45", key.certificate).start()
    servers += [refusing, busy, taking]
    sender = await register(client, admin_headers, "000.00.00.G22", "Văn phòng UBND tỉnh")
    puller = await register(client, admin_headers, "000.00.00.H41", "Sở Y tế")
    h43, h44, h45 = [await register(client, admin_headers, s.code, delivery=s.delivery)
                     for s in (refusing, busy, taking)]

    async with app.state.db.read() as session:
        empty = await operational_figures(session)
    assert empty.deliveries_by_state == {state: 0 for state in DELIVERY_STATES}
    assert (empty.dead, empty.oldest_pending_seconds, empty.oldest_pending_delivery) == (0, None, None)
    assert (empty.last_checkpoint_size, empty.last_checkpoint_at, empty.last_checkpoint_age_seconds) == (None,) * 3

    async def send(to: Agency, number: str) -> str:
        r = await submit(client, sender, sender.envelope(to, code_number=number))
        assert r.status_code == 201, r.text
        return r.headers["X-Gateway-Document-Id"]

    # Pull: one fetched, one acknowledged done (delivered), one acknowledged fail (failed), one left pending.
    pulled = [(await delivery_rows(app.state.db, await send(puller, str(n))))[puller.code] for n in range(1, 5)]
    for row in pulled[:3]:
        assert (await client.get(f"/v1/inbox/{row.id}", headers=puller.headers)).status_code == 200
    assert (await client.post(f"/v1/inbox/{pulled[1].id}/ack", json={"result": "done"},
                              headers=puller.headers)).status_code == 200
    assert (await client.post(f"/v1/inbox/{pulled[2].id}/ack", json={"result": "fail", "reason": "sai địa chỉ"},
                              headers=puller.headers)).status_code == 200
    # Push, one attempt each: refused (dead), 503 (retry_wait), taken (delivered).
    refused_doc = await send(h43, "5")
    for to, number in ((h44, "6"), (h45, "7")):
        await send(to, number)
    before = await scrape(client)
    worker = DeliveryWorker(app.state.db, app.state.blobs, key, app.state.settings)
    assert await worker.run_once() == 3
    after = await scrape(client)
    # One more to the busy recipient, claimed and not finished: in flight.
    await send(h44, "8")
    assert len(await worker.claim(5)) == 1

    async with app.state.db.read() as session:
        figures = await operational_figures(session)
    # pending: pull number 4, and the gateway's own status 01 to the (pull) sender of each delivered document
    assert figures.deliveries_by_state == {"pending": 3, "in_flight": 1, "retry_wait": 1, "delivered": 2, "dead": 1,
                                           "fetched": 1, "failed": 1, "forwarded": 0}
    assert figures.dead == 1
    assert figures.oldest_pending_delivery == pulled[3].id
    assert figures.ledger_head_seq == await ledger_size(app) - 1
    assert figures.last_checkpoint_size is None

    # A dead delivery re-queued waits from its re-queueing, so it is not the oldest; a checkpoint is seen.
    dead = (await delivery_rows(app.state.db, refused_doc))[h43.code]
    assert dead.state == "dead"
    r = await client.post(f"/v1/deliveries/{dead.id}/retry", json={"reason": "đã sửa"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    signed = await checkpoint_if_due(app.state.db, key, every_entries=1, every_seconds=1, force=True)
    assert signed is not None
    now = pulled[3].created_at + timedelta(seconds=42)
    async with app.state.db.read() as session:
        later = await operational_figures(session, now=now)
    assert later.deliveries_by_state["dead"] == later.dead == 0
    assert later.deliveries_by_state["pending"] == 4
    assert later.oldest_pending_delivery == pulled[3].id
    assert later.oldest_pending_seconds == 42.0
    assert later.last_checkpoint_size == signed.size == later.ledger_head_seq + 1
    assert later.last_checkpoint_at == signed.signed_at
    assert later.last_checkpoint_age_seconds == max(0.0, (now - signed.signed_at).total_seconds())

    # The push attempts by outcome and recipient, as /metrics shows them.
    attempts = "gateway_delivery_attempts_total"
    assert grew(before, after, attempts, outcome="dead", recipient=h43.code) == 1
    assert grew(before, after, attempts, outcome="retry", recipient=h44.code) == 1
    assert grew(before, after, attempts, outcome="delivered", recipient=h45.code) == 1
    assert sum(family(after, attempts).values()) - sum(family(before, attempts).values()) == 3
    for code in (h43.code, h44.code, h45.code):
        assert grew(before, after, "gateway_push_seconds_count", recipient=code) == 1


def test_a_route_label_is_the_template_and_an_unknown_path_is_one_label(tmp_path: Path) -> None:
    application = create_app(Settings(data_dir=tmp_path))
    # not routed (as a request shed by admission control): matched against the templates
    scope = {"type": "http", "method": "GET", "path": "/v1/documents/abc", "root_path": "", "app": application,
             "headers": []}
    assert route_template(scope) == "/v1/documents/{id}"
    assert route_template({**scope, "path": "/v1/documents/abc/proof"}) == "/v1/documents/{id}/proof"
    assert route_template({**scope, "path": "/../../etc/passwd"}) == "unmatched"


async def test_a_router_included_under_a_prefix_is_labelled_with_the_prefix() -> None:
    inner = APIRouter()

    @inner.get("/{number}")
    async def echo(number: int) -> int:
        return number

    application = FastAPI()
    application.include_router(inner, prefix="/so-hieu")
    application.add_middleware(HttpMetricsMiddleware)
    labels = {"method": "GET", "route": "/so-hieu/{number}", "status": "200"}
    before = REGISTRY.get_sample_value("gateway_http_requests_total", labels) or 0.0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
        assert (await c.get("/so-hieu/15")).json() == 15
        assert (await c.get("/so-hieu/16")).json() == 16
    assert REGISTRY.get_sample_value("gateway_http_requests_total", labels) == before + 2


async def test_connections_held_out_of_the_pool_are_counted_while_held(app: FastAPI, client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    async with app.state.db.read() as session:
        await session.execute(select(func.count()).select_from(LedgerEntry))
        during = await scrape(client)  # the scrape's own read has given its connection back by now
    after = await scrape(client)
    assert grew(before, during, "gateway_db_pool_connections_in_use") == 1
    assert grew(before, after, "gateway_db_pool_connections_in_use") == 0


async def test_metrics_answer_without_the_database_and_say_the_figures_are_missing(
    tmp_path: Path, gateway_key_files: tuple[Path, Path]
) -> None:
    key_file, cert_file = gateway_key_files
    nowhere = f"postgresql+asyncpg://gateway@127.0.0.1:{free_port()}/gateway"  # nothing listens there
    application = create_app(Settings(data_dir=tmp_path, database_url=nowhere, signing_key_file=key_file,
                                      signing_cert_file=cert_file, run_workers=False, log_level="error"))
    async with application.router.lifespan_context(application), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://gateway.test") as c:
        samples = await scrape(c)
    assert value(samples, "gateway_operational_figures_up") == 0
    assert not family(samples, "gateway_deliveries_in_state")
    assert value(samples, "gateway_requests_shed_total") is not None  # the process's own metrics are there
