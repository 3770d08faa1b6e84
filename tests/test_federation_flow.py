"""Federation (issue 15) in one process: this gateway (the downstream, on both databases) and a second gateway
(its upstream, SQLite) whose /vxp face it calls through the upstream client over an in-process transport.

The worker and the poller are the real ones, driven a round at a time (``run_once``, ``round``), so each step's
effect is asserted where it happens: the forward and its ledger entry, the upstream's acceptance, the statuses
both ways, the received instants both sides, the poller's idempotence when an acknowledgement is lost, its
refusals acknowledged ``fail``, and the forward's retry and dead states. The same flows over real sockets with
two real processes are in ``tests/federation/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from delivery_support import eventually, ledger_types
from gateway.app import create_app
from gateway.auth.service import AuthService
from gateway.config import Settings
from gateway.delivery.worker import DeliveryWorker
from gateway.documents.models import Delivery, Document
from gateway.envelope import LargeFile, ResponseFor, StatusSpec, build_status
from gateway.ledger.models import LedgerEntry
from gateway.signing import load_or_create
from gateway.upstream.client import UpstreamClient
from gateway.upstream.errors import UpstreamUnavailable
from gateway.upstream.forwarder import UpstreamForwarder
from gateway.upstream.poller import UpstreamPoller
from gateway.upstream.sync import UpstreamRegisterSync
from gw import PDF, Agency, register, submit

A1, A2 = "000.00.01.H41", "000.00.02.H41"  # local agencies of this (downstream) gateway
B1, B2 = "000.00.00.G22", "000.00.00.B01"  # agencies of the upstream only
UPSTREAM = "http://upstream.test/vxp"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # An upstream is configured (forwarding on); the worker and poller are built by the test with a transport
    # to the upstream app, so the app's own stay off (run_workers False).
    return settings.model_copy(update={
        "upstream_url": UPSTREAM, "upstream_system_id": "placeholder", "upstream_secret": SecretStr("placeholder"),
        "upstream_poll_seconds": 0.05, "delivery_backoff_base_seconds": 0.01, "delivery_backoff_cap_seconds": 0.02,
    })


@pytest.fixture(scope="session")
def upstream_key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The upstream gateway's own key (not this gateway's): its 01s are verified here by their KeyInfo."""
    data_dir = tmp_path_factory.mktemp("upstream-key")
    load_or_create(Settings(data_dir=data_dir))
    return data_dir / "keys" / "gateway.key.pem", data_dir / "keys" / "gateway.cert.pem"


@pytest.fixture
async def upstream_app(tmp_path: Path, sqlite_template: Path,
                       upstream_key_files: tuple[Path, Path]) -> AsyncIterator[FastAPI]:
    target = tmp_path / "upstream.sqlite3"
    shutil.copyfile(sqlite_template, target)
    key_file, cert_file = upstream_key_files
    app = create_app(Settings(data_dir=tmp_path / "upstream", database_url=f"sqlite+aiosqlite:///{target}",
                              signing_key_file=key_file, signing_cert_file=cert_file, run_workers=False,
                              log_json=True, log_level="warning"))
    async with app.router.lifespan_context(app):
        yield app


@dataclass
class Federation:
    here: FastAPI
    there: FastAPI
    client: httpx.AsyncClient  # this gateway's API
    up: httpx.AsyncClient  # the upstream's API
    admin: dict[str, str]
    up_admin: dict[str, str]
    a1: Agency
    a2: Agency
    b1: Agency  # registered upstream (its token there) — here only through the sync
    system_id: str
    secret: str
    upstream: UpstreamClient
    worker: DeliveryWorker
    poller: UpstreamPoller

    def client_with(self, secret: str) -> UpstreamClient:
        return UpstreamClient(UPSTREAM, self.system_id, secret, transport=httpx.ASGITransport(app=self.there))


async def _admin(app: FastAPI) -> dict[str, str]:
    async with app.state.db.transaction() as session:
        _, _, token = await AuthService(session).create_operator("admin", "admin", actor="console:test")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def fed(app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str],
              upstream_app: FastAPI) -> AsyncIterator[Federation]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream_app), base_url="http://upstream.test",
                                 timeout=30) as up:
        up_admin = await _admin(upstream_app)
        # Upstream: its own agency B1, and this gateway's agencies (with the same keys) under one VXP system.
        b1 = await register(up, up_admin, B1, "Văn phòng Chính phủ")
        a1_up = await register(up, up_admin, A1, "Sở Nội vụ Nghệ An")
        await register(up, up_admin, A2, "Sở Y tế Nghệ An", keys=None)
        r = await up.patch(f"/v1/agencies/{A2}", json={"parent_code": A1}, headers=up_admin)
        assert r.status_code == 200, r.text
        r = await up.post("/v1/vxp/systems", json={"agency": A1, "serves": "subtree"}, headers=up_admin)
        assert r.status_code == 201, r.text
        system_id, secret = r.json()["system_id"], r.json()["secret"]
        # Here: the local agencies (A1 with the same keys as upstream), then the upstream's register imported.
        a1 = await register(client, admin_headers, A1, "Sở Nội vụ Nghệ An", keys=a1_up.keys)
        a2 = await register(client, admin_headers, A2, "Sở Y tế Nghệ An")
        upstream = UpstreamClient(UPSTREAM, system_id, secret, transport=httpx.ASGITransport(app=upstream_app))
        summary = await UpstreamRegisterSync(app.state.db, upstream, actor="console:test").run()
        assert summary.added == [B1]
        worker = DeliveryWorker(app.state.db, app.state.blobs, app.state.gateway_key, app.state.settings,
                                forwarder=UpstreamForwarder(upstream))
        poller = UpstreamPoller(app.state.db, app.state.intake, upstream, app.state.settings, owner="poller-1")
        try:
            yield Federation(app, upstream_app, client, up, admin_headers, up_admin, a1, a2, b1, system_id, secret,
                             upstream, worker, poller)
        finally:
            await upstream.aclose()


async def _entries(app: FastAPI, *types: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, actor, details) of the ledger entries of ``types``, in order."""
    async with app.state.db.read() as session:
        query = select(LedgerEntry).where(LedgerEntry.type.in_(types)).order_by(LedgerEntry.seq)
        return [(e.type, e.actor, json.loads(e.details)) for e in (await session.execute(query)).scalars()]


async def _rows(app: FastAPI, **where: Any) -> list[Delivery]:
    async with app.state.db.read() as session:
        query = select(Delivery).where(*(getattr(Delivery, k) == v for k, v in where.items()))
        return list((await session.execute(query)).scalars())


async def _documents(app: FastAPI, **where: Any) -> list[Document]:
    async with app.state.db.read() as session:
        query = select(Document).where(*(getattr(Document, k) == v for k, v in where.items()))
        return list((await session.execute(query)).scalars())


def _status(reporter: Agency, original_sender: str, document_id: str, code: str) -> bytes:
    return reporter.sign(build_status(StatusSpec(
        response_for=ResponseFor(organ_id=original_sender, document_id=document_id), sender=reporter.organ,
        status_code=code, description=f"trạng thái {code}")))


async def _inbox(client: httpx.AsyncClient, agency: Agency) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get("/v1/inbox", headers=agency.headers)).json()["items"]
    return items


async def _take(client: httpx.AsyncClient, agency: Agency, item: dict[str, Any]) -> bytes:
    data = (await client.get(f"/v1/inbox/{item['delivery_id']}", headers=agency.headers)).content
    r = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"}, headers=agency.headers)
    assert r.status_code == 200, r.text
    return data


async def test_a_document_to_an_upstream_agency_is_forwarded_once_and_its_statuses_and_instant_come_back(
    fed: Federation,
) -> None:
    here, there = fed.here, fed.there
    b1_here = Agency(B1, "Văn phòng Chính phủ", fed.b1.keys)
    envelope = fed.a1.envelope(b1_here, fed.a2, subject="Gửi ra ngoài tỉnh")
    r = await submit(fed.client, fed.a1, envelope)
    assert r.status_code == 201, r.text
    document = r.headers["location"].rsplit("/", 1)[-1] if "location" in r.headers else None
    [doc] = await _documents(here, sender=A1, kind="document")
    assert document in (None, doc.id)
    [upstream_delivery] = await _rows(here, document=doc.id, mode="upstream")
    assert (upstream_delivery.recipient, upstream_delivery.state) == (B1, "pending")

    # The worker forwards it once; the local recipient A2 is served here (pull).
    assert await fed.worker.run_once() == 1
    [forwarded] = await _rows(here, document=doc.id, mode="upstream")
    assert forwarded.state == "forwarded"
    assert forwarded.upstream_doc_id is not None
    assert forwarded.forwarded_at is not None
    assert forwarded.forwarded_at >= doc.sent_at
    entries = [(t, d) for t, _, d in await ledger_types(here.state.db, doc.id) if t == "upstream.forwarded"]
    assert len(entries) == 1
    assert entries[0][1]["upstream_doc_id"] == forwarded.upstream_doc_id
    assert entries[0][1]["recipients"] == [B1]
    assert entries[0][1]["upstream"] == UPSTREAM
    assert await fed.worker.run_once() == 0  # nothing more to forward

    # Upstream: accepted as A1's document (the upstream's id is the DocId), bytes unchanged, delivered to B1;
    # A2 is local here, so upstream it waits for this gateway's system and comes back as "already here".
    [there_doc] = await _documents(there, sender=A1, kind="document")
    assert there_doc.id == forwarded.upstream_doc_id
    [item] = await _inbox(fed.up, fed.b1)
    assert await _take(fed.up, fed.b1, item) == envelope
    round1 = await fed.poller.round()
    # the copy for A2 is found here (already_here); B1's 01 is accepted; the 01 the upstream wrote for A2 when
    # this gateway acknowledged that copy is an echo of local traffic: acknowledged, not kept
    assert (round1.accepted, round1.already_here, round1.echoes, round1.refused) == (1, 1, 1, 0), round1
    assert len(await _documents(here, sender=A1, kind="document")) == 1  # never a second document

    # B1's 01 (the upstream's own, signed with its key) reached A1 here, routed like any status.
    statuses = await _inbox(fed.client, fed.a1)
    assert [(s["kind"], s["sender"]) for s in statuses] == [("status", B1)], statuses
    [status_doc] = await _documents(here, kind="status", sender=B1)
    assert status_doc.upstream_doc_id is not None
    assert status_doc.refers_to == doc.id
    assert status_doc.signed is True

    # The received instant: asked with getSentEdocList once the first check is due.
    async def delivered() -> bool:
        await fed.poller.round()
        return (await _rows(here, document=doc.id, mode="upstream"))[0].state == "delivered"

    await eventually(delivered, what="B1's received instant learned from the upstream")
    [done] = await _rows(here, document=doc.id, mode="upstream")
    [there_delivery] = await _rows(there, document=there_doc.id, recipient=B1)
    assert done.received_at is not None
    assert there_delivery.received_at is not None
    assert abs((done.received_at - there_delivery.received_at).total_seconds()) < 0.001  # its statement, to the ms
    assert doc.sent_at <= done.forwarded_at <= done.received_at  # type: ignore[operator]
    delivered_entries = [d for t, _, d in await ledger_types(here.state.db, doc.id) if t == "delivery.delivered"]
    assert [(d["mode"], d["reported_by"], d["upstream_doc_id"]) for d in delivered_entries] == [
        ("upstream", "upstream", forwarded.upstream_doc_id)]

    # The operator's view: where it went.
    view = (await fed.client.get(f"/v1/documents/{doc.id}", headers=fed.admin)).json()
    b1_row = next(x for x in view["recipients"] if x["code"] == B1)
    assert b1_row["state"] == "delivered"

    # Both ledgers verify; nothing refused on either side.
    for client, admin in ((fed.client, fed.admin), (fed.up, fed.up_admin)):
        verify = (await client.get("/v1/ledger/verify", headers=admin)).json()
        assert verify["ok"] is True, verify
    assert not [t for t, _, _ in await ledger_types(here.state.db) if t.endswith(".refused")]
    assert not [t for t, _, _ in await ledger_types(there.state.db) if t.endswith(".refused")]


async def test_a_document_from_upstream_is_accepted_delivered_then_acknowledged_and_a_status_goes_back(
    fed: Federation,
) -> None:
    here, there = fed.here, fed.there
    a1_there = Agency(A1, fed.a1.name, fed.a1.keys)
    envelope = fed.b1.envelope(a1_there, subject="Từ Văn phòng Chính phủ")
    r = await submit(fed.up, fed.b1, envelope)
    assert r.status_code == 201, r.text
    [there_doc] = await _documents(there, sender=B1, kind="document")
    [waiting] = await _rows(there, document=there_doc.id)
    assert (waiting.recipient, waiting.state) == (A1, "pending")

    round1 = await fed.poller.round()
    assert (round1.accepted, round1.refused, round1.errors) == (1, 0, []), round1
    [doc] = await _documents(here, sender=B1, kind="document")
    assert doc.upstream_doc_id == waiting.id  # the upstream's DocId of it: its delivery id there
    assert doc.signed is True  # B1's own signature, verified with the certificate it carries
    [(_, actor, details)] = [e for e in await _entries(here, "envelope.accepted") if e[2]["recipients"] == [A1]]
    assert actor == f"upstream:{fed.system_id}"
    assert details["upstream_doc_id"] == waiting.id
    assert details["left_to_upstream"] == []
    assert details["certificate_source"] == "keyinfo"  # B1's certificate is registered upstream only
    # Acknowledged upstream only after the acceptance: there, delivered at that instant.
    [acked] = await _rows(there, id=waiting.id)
    assert acked.state == "delivered"
    assert acked.received_at is not None
    assert acked.received_at >= doc.sent_at
    ack_entries = [d for t, _, d in await ledger_types(here.state.db, doc.id) if t == "upstream.acknowledged"]
    assert [(d["status"], d["already_here"]) for d in ack_entries] == [("done", False)]

    # A1 receives it here; the gateway's 01 is kept here (the upstream made its own at the acknowledgement).
    [item] = await _inbox(fed.client, fed.a1)
    assert await _take(fed.client, fed.a1, item) == envelope
    auto = await _documents(here, kind="status", refers_to=doc.id, automatic=True)
    assert len(auto) == 1
    assert await _rows(here, document=auto[0].id) == []  # not forwarded
    assert await fed.worker.run_once() == 0

    # A1's own 03 goes back upstream (messagetype status) and reaches B1 there.
    r = await fed.client.post("/v1/statuses", content=_status(fed.a1, B1, doc.document_id, "03"),
                              headers={**fed.a1.headers, "Content-Type": "application/xml"})
    assert r.status_code == 201, r.text
    assert await fed.worker.run_once() == 1
    [status_here] = await _documents(here, kind="status", sender=A1, status_code="03")
    [carried] = await _rows(here, document=status_here.id)
    assert (carried.mode, carried.state, carried.recipient) == ("upstream", "forwarded", B1)
    b1_inbox = await _inbox(fed.up, fed.b1)
    assert sorted((s["kind"], s["sender"]) for s in b1_inbox) == [("status", A1), ("status", A1)]  # 01 and 03
    [status_there] = await _documents(there, kind="status", sender=A1, status_code="03")
    assert status_there.refers_to == there_doc.id


async def test_a_lost_acknowledgement_never_makes_a_second_document(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptance committed, the acknowledgement lost (upstream gone at that moment): the next round
    fetches it again, finds it, and acknowledges it."""
    here, there = fed.here, fed.there
    envelope = fed.b1.envelope(Agency(A1, fed.a1.name, fed.a1.keys))
    assert (await submit(fed.up, fed.b1, envelope)).status_code == 201
    real = fed.upstream.update_status

    async def lost(doc_id: str, status: Any, description: str | None = None) -> None:
        raise UpstreamUnavailable("updateStatus: no answer (ReadTimeout)", operation="updateStatus",
                                  request_sent=True)

    monkeypatch.setattr(fed.upstream, "update_status", lost)
    first = await fed.poller.round()
    assert first.errors == ["updateStatus: updateStatus: no answer (ReadTimeout)"], first
    assert len(await _documents(here, sender=B1)) == 1  # stored before the acknowledgement was attempted
    [waiting] = await _rows(there, recipient=A1)
    assert waiting.state == "fetched"  # not acknowledged upstream

    monkeypatch.setattr(fed.upstream, "update_status", real)
    second = await fed.poller.round()
    assert (second.accepted, second.already_here) == (0, 1), second
    assert len(await _documents(here, sender=B1)) == 1
    assert len(await _rows(here, recipient=A1)) == 1
    [acked] = await _rows(there, recipient=A1)
    assert acked.state == "delivered"
    assert [t for t, _, _ in await ledger_types(here.state.db) if t == "envelope.accepted"].count(
        "envelope.accepted") == 1


async def test_a_message_this_gateway_refuses_is_acknowledged_fail_and_ledgered(fed: Federation) -> None:
    # B2 joined the upstream after the sync: unknown here.
    b2 = await register(fed.up, fed.up_admin, B2, "Bộ Nội vụ")
    assert (await submit(fed.up, b2, b2.envelope(Agency(A1, fed.a1.name, fed.a1.keys)))).status_code == 201
    done = await fed.poller.round()
    assert (done.accepted, done.refused) == (0, 1), done
    assert await _documents(fed.here, sender=B2) == []
    [failed] = await _rows(fed.there, recipient=A1)
    assert failed.state == "failed"
    assert failed.last_error is not None
    assert failed.last_error.startswith("upstream-sender-unknown: ")
    types = await _entries(fed.here, "envelope.refused", "upstream.acknowledged")
    assert [(t, a, d.get("rule")) for t, a, d in types] == [
        ("envelope.refused", f"upstream:{fed.system_id}", "upstream-sender-unknown"),
        ("upstream.acknowledged", f"upstream:{fed.system_id}", "upstream-sender-unknown")]
    assert (await fed.poller.round()).refused == 0  # acknowledged: never listed again


async def test_a_forward_waits_while_the_upstream_is_down_and_dies_when_it_refuses_then_an_operator_requeues(
    fed: Federation,
) -> None:
    here = fed.here
    b1_here = Agency(B1, "Văn phòng Chính phủ", fed.b1.keys)
    assert (await submit(fed.client, fed.a1, fed.a1.envelope(b1_here))).status_code == 201
    [doc] = await _documents(here, sender=A1)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    unreachable = UpstreamClient(UPSTREAM, fed.system_id, fed.secret, transport=httpx.MockTransport(down))
    worker = DeliveryWorker(here.state.db, here.state.blobs, here.state.gateway_key, here.state.settings,
                            forwarder=UpstreamForwarder(unreachable))
    assert await worker.run_once() == 1
    [row] = await _rows(here, document=doc.id)
    assert row.state == "retry_wait"
    assert row.last_error is not None
    assert "unavailable" in row.last_error

    wrong = fed.client_with("not-the-secret")
    refused = DeliveryWorker(here.state.db, here.state.blobs, here.state.gateway_key, here.state.settings,
                             forwarder=UpstreamForwarder(wrong))
    await eventually(lambda: _due(here, doc.id), what="the retry due")
    assert await refused.run_once() == 1
    [row] = await _rows(here, document=doc.id)
    assert row.state == "dead"
    assert row.last_error is not None
    assert "vxp-hmac-invalid" in row.last_error
    dead = [d for t, _, d in await ledger_types(here.state.db, doc.id) if t == "delivery.dead"]
    assert [d["reason"] for d in dead] == ["refused"]
    assert await _documents(fed.there, sender=A1) == []  # nothing reached the upstream

    r = await fed.client.post(f"/v1/deliveries/{row.id}/retry", json={"reason": "secret fixed"}, headers=fed.admin)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "pending"
    assert await fed.worker.run_once() == 1
    [row] = await _rows(here, document=doc.id)
    assert row.state == "forwarded"
    assert len(await _documents(fed.there, sender=A1)) == 1
    await unreachable.aclose()
    await wrong.aclose()


async def _due(app: FastAPI, document: str) -> bool:
    from datetime import UTC, datetime

    [row] = await _rows(app, document=document)
    return row.next_attempt_at is not None and row.next_attempt_at <= datetime.now(UTC)


async def test_only_inline_documents_are_forwarded(fed: Federation) -> None:
    b1_here = Agency(B1, "Văn phòng Chính phủ", fed.b1.keys)
    big = PDF + b"0" * 1024
    xml = fed.a1.envelope(b1_here, attachments=(
        LargeFile.from_bytes("phu-luc.pdf", big, content_type="application/pdf", content_id="cid:phu-luc"),))
    r = await fed.client.post("/v1/envelopes", headers=fed.a1.headers, files={
        "envelope": ("envelope.edxml", xml, "application/xml"), "phu-luc": ("phu-luc.pdf", big, "application/pdf")})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "urn:gateway:problem:recipient-upstream-not-forwarded"
    assert problem["recipients"] == [B1]
    assert "multipart" in problem["detail"]
    assert await _documents(fed.here, sender=A1) == []
    assert json.dumps(problem)  # a problem document, nothing stored
