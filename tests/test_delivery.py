"""Delivery end to end: real intake, the in-process push worker, real recipient servers on 127.0.0.1, pull
agencies using the inbox; every transition in the ledger; both databases."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from lxml import etree
from prometheus_client import REGISTRY
from signxml import XMLVerifier

from delivery_support import (
    Recipient,
    always,
    check_delivery,
    delivery_rows,
    eventually,
    fail_first,
    ledger_types,
    ok,
    split_multipart,
)
from gateway.config import Settings
from gateway.envelope import EDXML_NS, InlineFile, LargeFile
from gw import PDF, Agency, register, submit

E = f"{{{EDXML_NS}}}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The in-process worker on, with backoff in milliseconds so retries happen within the test."""
    return settings.model_copy(update={
        "run_workers": True,
        "worker_poll_seconds": 0.05,
        "worker_concurrency": 8,
        "delivery_backoff_base_seconds": 0.05,
        "delivery_backoff_cap_seconds": 0.2,
        "delivery_max_attempts": 5,
        "delivery_timeout_seconds": 5.0,
        "lease_seconds": 10.0,
    })


@pytest.fixture
def servers() -> Iterator[list[Recipient]]:
    started: list[Recipient] = []
    yield started
    for server in started:
        server.stop()


def serve(servers: list[Recipient], app: FastAPI, code: str, script: Any = None) -> Recipient:
    server = Recipient(code, app.state.gateway_key.certificate, script).start()
    servers.append(server)
    return server


async def pull_all(client: httpx.AsyncClient, agency: Agency) -> list[dict[str, Any]]:
    r = await client.get("/v1/inbox", headers=agency.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def fetch_and_ack(client: httpx.AsyncClient, agency: Agency, delivery_id: str) -> httpx.Response:
    r = await client.get(f"/v1/inbox/{delivery_id}", headers=agency.headers)
    assert r.status_code == 200, r.text
    return await client.post(f"/v1/inbox/{delivery_id}/ack", json={"result": "done"}, headers=agency.headers)


def status_code_of(xml: bytes) -> str | None:
    return etree.fromstring(xml).findtext(f".//{E}StatusCode")


async def test_one_document_reaches_three_push_and_two_pull_recipients(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    push_codes = ["000.00.00.H41", "000.00.00.H42", "000.00.00.H43"]
    push = {code: serve(servers, app, code) for code in push_codes}
    sender = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    to = [await register(client, admin_headers, code, f"Tỉnh {code[-3:]}", delivery=push[code].delivery)
          for code in push_codes]
    pulls = [await register(client, admin_headers, code, f"Sở {code[-3:]}") for code in
             ("000.00.00.H44", "000.00.00.H45")]
    xml = sender.envelope(*to, *pulls)
    r = await submit(client, sender, xml)
    assert r.status_code == 201, r.text
    doc = r.headers["X-Gateway-Document-Id"]

    # Push: each recipient's system got the original bytes once, signed by the gateway and addressed to it.
    await eventually(lambda: all(len(s.delivered()) == 1 for s in push.values()), what="three pushes")
    for code, server in push.items():
        [arrival] = server.all()
        assert arrival.verified, arrival.error
        assert (arrival.document, arrival.recipient, arrival.kind) == (doc, code, "document")
        assert arrival.envelope == xml
        assert arrival.content_type.startswith("application/xml")

    # Pull: in the inbox, downloaded (the same bytes, the same verifiable headers), acknowledged.
    cert = app.state.gateway_key.certificate
    for agency in pulls:
        [item] = await pull_all(client, agency)
        assert (item["id"], item["kind"], item["sender"], item["priority"]) == (doc, "document", sender.code, 0)
        assert set(item) >= {"delivery_id", "id", "document_id", "kind", "sender", "sent_at", "priority"}
        got = await client.get(f"/v1/inbox/{item['delivery_id']}", headers=agency.headers)
        assert got.content == xml
        _, _, verified, error = check_delivery(dict(got.headers), got.content, cert, agency.code)
        assert verified, error
        ack = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"},
                                headers=agency.headers)
        assert ack.status_code == 200, ack.text
        assert ack.json()["state"] == "delivered"
        assert ack.json()["changed"] is True
        again = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"},
                                  headers=agency.headers)
        assert again.status_code == 200
        assert again.json()["received_at"] == ack.json()["received_at"]
        assert again.json()["changed"] is False
        assert await pull_all(client, agency) == []

    # The view: every recipient delivered, with its received instant and the gateway's status 01.
    async def all_arrived() -> bool:
        view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
        return all(x["state"] == "delivered" and x["status"] == "01" for x in view["recipients"])

    await eventually(all_arrived, what="five recipients delivered with status 01")
    view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
    assert len(view["recipients"]) == 5
    assert all(x["received_at"] for x in view["recipients"])

    # The ledger: exactly one delivered per recipient, and one automatic 01 each.
    entries = await ledger_types(app.state.db, doc)
    delivered = Counter(rcpt for t, rcpt, _ in entries if t == "delivery.delivered")
    assert delivered == Counter({code: 1 for code in [*push_codes, *(p.code for p in pulls)]})
    assert Counter(d["mode"] for t, _, d in entries if t == "delivery.delivered") == Counter(push=3, pull=2)
    assert sum(1 for t, _, _ in entries if t == "delivery.fetched") == 2

    # The sender (pull) finds five statuses 01 in its inbox, each signed by the gateway.
    statuses = await pull_all(client, sender)
    assert len(statuses) == 5
    assert {s["kind"] for s in statuses} == {"status"}
    assert {s["refers_to"] for s in statuses} == {doc}
    assert {s["sender"] for s in statuses} == {*push_codes, *(p.code for p in pulls)}
    one = await client.get(f"/v1/inbox/{statuses[0]['delivery_id']}", headers=sender.headers)
    cert_pem = (await client.get("/v1/gateway/certificate")).text
    verified_xml = XMLVerifier().verify(one.content, x509_cert=cert_pem).signed_xml
    assert verified_xml is not None
    assert verified_xml.findtext(f".//{E}StatusCode") == "01"
    assert verified_xml.findtext(f".//{E}From/{E}OrganId") == statuses[0]["sender"]


async def test_push_recipient_failing_then_recovering_is_delivered_once(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    flaky = serve(servers, app, "000.00.00.H41", fail_first(3, 503))
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41", delivery=flaky.delivery)
    r = await submit(client, sender, sender.envelope(h41))
    doc = r.headers["X-Gateway-Document-Id"]
    await eventually(lambda: len(flaky.delivered()) == 1, what="delivery after three 503s")

    arrivals = flaky.all()
    assert [a.answered for a in arrivals] == [503, 503, 503, 200]
    assert [a.attempt for a in arrivals] == [1, 2, 3, 4]
    assert len({a.delivery_id for a in arrivals}) == 1, "one delivery id across retries"
    assert all(a.verified for a in arrivals)

    async def settled() -> bool:
        return (await delivery_rows(app.state.db, doc))[h41.code].state == "delivered"

    await eventually(settled, what="delivered state")
    types = [t for t, _, _ in await ledger_types(app.state.db, doc)]
    assert types.count("delivery.delivered") == 1
    assert types.count("delivery.retry_scheduled") == 3
    assert types.count("delivery.in_flight") == 4
    row = (await delivery_rows(app.state.db, doc))[h41.code]
    assert row.attempts == 4
    assert row.received_at is not None
    assert row.lease_owner is None
    # The received instant is the answer's arrival, after the recipient logged the request.
    assert row.received_at >= arrivals[-1].at


async def test_retry_after_from_the_recipient_is_honoured(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    busy = serve(servers, app, "000.00.00.H41", fail_first(1, 429, {"Retry-After": "1"}))
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41", delivery=busy.delivery)
    await submit(client, sender, sender.envelope(h41))
    await eventually(lambda: len(busy.delivered()) == 1, what="delivery after 429")
    first, second = busy.all()
    assert (second.at - first.at).total_seconds() >= 1.0


async def test_a_recipient_answering_4xx_goes_dead_at_once_and_an_admin_can_requeue_it(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    gone = serve(servers, app, "000.00.00.H41", always(404))
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41", delivery=gone.delivery)
    dead_before = REGISTRY.get_sample_value("gateway_deliveries_dead_total", {"reason": "refused"}) or 0.0
    doc = (await submit(client, sender, sender.envelope(h41))).headers["X-Gateway-Document-Id"]

    async def is_dead() -> bool:
        return (await delivery_rows(app.state.db, doc))[h41.code].state == "dead"

    await eventually(is_dead, what="dead delivery")
    assert len(gone.all()) == 1, "a 404 is final: no retry"
    [dead] = [d for t, _, d in await ledger_types(app.state.db, doc) if t == "delivery.dead"]
    assert dead["reason"] == "refused"
    assert dead["http_status"] == 404
    assert dead["error"] == "HTTP 404: no such mailbox"
    assert REGISTRY.get_sample_value("gateway_deliveries_dead_total", {"reason": "refused"}) == dead_before + 1
    view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
    assert view["recipients"][0]["state"] == "dead"

    # The recipient fixes its system; an operator re-queues; it is delivered.
    gone.script = ok()
    delivery_id = view["recipients"][0]["delivery_id"]
    assert (await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=h41.headers)).status_code == 403
    r = await client.post(f"/v1/deliveries/{delivery_id}/retry", json={"reason": "endpoint fixed"},
                          headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] in ("pending", "in_flight", "delivered")
    assert r.json()["requeued_at"]
    await eventually(lambda: len(gone.delivered()) == 1, what="delivery after re-queue")
    types = [(t, d) for t, _, d in await ledger_types(app.state.db, doc)]
    [requeued] = [d for t, d in types if t == "delivery.requeued"]
    assert requeued["from_state"] == "dead"
    assert requeued["reason"] == "endpoint fixed"

    async def delivered() -> bool:
        return (await delivery_rows(app.state.db, doc))[h41.code].state == "delivered"

    await eventually(delivered, what="delivered state")
    # Re-queueing a delivered delivery is refused, with its own problem type, and ledgered.
    again = await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=admin_headers)
    assert again.status_code == 409
    assert again.json()["type"] == "urn:gateway:problem:delivery-not-retryable"
    missing = await client.post("/v1/deliveries/00000000-0000-0000-0000-000000000000/retry", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:gateway:problem:delivery-not-found"
    refused = [d for t, _, d in await ledger_types(app.state.db) if t == "delivery.refused"]
    assert [d["rule"] for d in refused] == ["delivery-not-retryable", "delivery-not-found"]


async def test_transient_failures_stop_after_the_attempt_bound_and_the_delivery_is_dead(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    broken = serve(servers, app, "000.00.00.H41", always(500))
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41", delivery=broken.delivery)
    doc = (await submit(client, sender, sender.envelope(h41))).headers["X-Gateway-Document-Id"]

    async def is_dead() -> bool:
        return (await delivery_rows(app.state.db, doc))[h41.code].state == "dead"

    await eventually(is_dead, what="dead after the attempt bound")
    assert len(broken.all()) == 5
    [dead] = [d for t, _, d in await ledger_types(app.state.db, doc) if t == "delivery.dead"]
    assert dead["reason"] == "attempts-exhausted"
    assert dead["attempt"] == 5


async def test_an_unreachable_endpoint_is_retried_then_dead(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    from pg import free_port

    sender = await register(client, admin_headers, "000.00.00.G22")
    nobody = {"mode": "push", "endpoint": f"http://127.0.0.1:{free_port()}/edxml"}
    h41 = await register(client, admin_headers, "000.00.00.H41", delivery=nobody)
    doc = (await submit(client, sender, sender.envelope(h41))).headers["X-Gateway-Document-Id"]

    async def is_dead() -> bool:
        return (await delivery_rows(app.state.db, doc))[h41.code].state == "dead"

    await eventually(is_dead, what="dead after connection errors")
    entries = await ledger_types(app.state.db, doc)
    retries = [d for t, _, d in entries if t == "delivery.retry_scheduled"]
    assert len(retries) == 4
    assert all(d["error"].startswith("connection error") for d in retries)


async def test_urgent_documents_are_pushed_first(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    slow = serve(servers, app, "000.00.00.H41")
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41", delivery=slow.delivery)
    # Stop the worker, queue documents of every priority, then let one worker slot take them one by one.
    worker = app.state.worker
    await worker.stop()
    priorities = [0, 3, 1, 2, 0, 3]
    docs = {}
    for i, priority in enumerate(priorities):
        r = await submit(client, sender, sender.envelope(h41, code_number=str(100 + i), priority=priority))
        docs[r.headers["X-Gateway-Document-Id"]] = priority
    from gateway.delivery.worker import DeliveryWorker

    one = DeliveryWorker(app.state.db, app.state.blobs, app.state.gateway_key,
                         app.state.settings.model_copy(update={"worker_concurrency": 1}))
    for _ in priorities:
        assert await one.run_once(1) == 1
    order = [docs[a.document] for a in slow.all()]
    assert order == sorted(priorities, reverse=True)


async def test_a_multipart_document_travels_as_multipart_to_push_and_pull_recipients(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    import hashlib
    import os

    big = PDF + os.urandom(2 * 1024 * 1024)
    server = serve(servers, app, "000.00.00.H41")
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41", delivery=server.delivery)
    h42 = await register(client, admin_headers, "000.00.00.H42")
    xml = sender.envelope(h41, h42, attachments=(
        InlineFile("cong-van.pdf", PDF, "application/pdf"),
        LargeFile.from_bytes("phu-luc.pdf", big, content_type="application/pdf", content_id="cid:phu-luc"),
    ))
    r = await client.post("/v1/envelopes", headers=sender.headers, files={
        "envelope": ("envelope.edxml", xml, "application/xml"), "phu-luc": ("phu-luc.pdf", big, "application/pdf"),
    })
    assert r.status_code == 201, r.text
    await eventually(lambda: len(server.delivered()) == 1, what="multipart push")
    [arrival] = server.all()
    assert arrival.verified, arrival.error
    assert arrival.content_type.startswith("multipart/form-data")
    assert arrival.envelope == xml
    assert arrival.parts == {"phu-luc": hashlib.sha256(big).hexdigest()}

    [item] = await pull_all(client, h42)
    assert item["multipart"] is True
    got = await client.get(f"/v1/inbox/{item['delivery_id']}", headers=h42.headers)
    assert got.headers["content-type"].startswith("multipart/form-data")
    assert int(got.headers["content-length"]) == len(got.content)
    parts = split_multipart(got.content, got.headers["content-type"])
    assert parts["envelope"][1] == xml
    assert parts["phu-luc"][1] == big
    assert parts["phu-luc"][0]["content-id"] == "<phu-luc>"
    _, _, verified, error = check_delivery(dict(got.headers), got.content, app.state.gateway_key.certificate,
                                           h42.code)
    assert verified, error
