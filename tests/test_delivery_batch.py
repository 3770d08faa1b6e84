"""The push worker's outcomes recorded together (issue 17, fan-out): one transaction for many attempts keeps
every guarantee of one at a time — a row moves on only while its attempt holds the lease, each delivered
document gets its ``delivery.delivered`` with its received instant followed at once by its automatic 01, a
recipient that already reported 01 gets none from the gateway, and the chain stays whole. Both databases."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from delivery_support import insert_documents
from gateway.acceptance import Event, Message, accept
from gateway.db.group_commit import GroupCommit
from gateway.delivery.arrival import build_arrival, original_of_job
from gateway.delivery.backoff import Decision
from gateway.delivery.repository import DeliveryRepository, Job
from gateway.delivery.service import PushTransitions, dead, delivered, record_outcomes, retry
from gateway.documents.models import Delivery, Document
from gateway.ledger.models import LedgerEntry
from gateway.signing import GatewayKey
from gw import register

SENDER = "000.00.00.G22"
RECIPIENTS = ["000.00.00.H41", "000.00.00.H42", "000.00.00.H43"]


async def _claimed(app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], documents: int) -> list[Job]:
    await register(client, admin, SENDER)
    for code in RECIPIENTS:
        await register(client, admin, code, delivery={"mode": "push", "endpoint": f"http://127.0.0.1:9/{code}"})
    digest = app.state.blobs.put(b"<edXML/>")
    await insert_documents(app.state.db, SENDER, [(c, "push") for c in RECIPIENTS], digest, 8, documents)
    async with app.state.db.transaction() as session:
        jobs = await PushTransitions(session).claim("w1", datetime.now(UTC), timedelta(minutes=5), 100)
    assert len(jobs) == documents * len(RECIPIENTS)
    return jobs


def _arrival(app: FastAPI, job: Job, at: datetime) -> bytes:
    key: GatewayKey = app.state.gateway_key
    data = build_arrival(original_of_job(job), job.recipient, job.recipient_name, at, key.private_key,
                         key.certificate)
    app.state.blobs.put(data)
    return data


async def _own_01(session: AsyncSession, job: Job) -> None:
    """The recipient's own status 01 about ``job``'s document, accepted before the push answer is recorded."""
    await accept(session, Message(kind="status", sender=job.recipient, document_id=job.document_id,
                                  envelope_sha256="0" * 64, envelope_size=1, signed=False, signer_certificate=None,
                                  priority=0, status_code="01", refers_to=job.document),
                 [], Event("status.accepted", f"agency:{job.recipient}", {}))


async def test_a_batch_of_outcomes_records_each_as_if_alone(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    jobs = await _claimed(app, client, admin_headers, 3)
    db = app.state.db
    key: GatewayKey = app.state.gateway_key
    *answered, failing, refused, lost, reported = jobs
    async with db.transaction() as session:
        await _own_01(session, reported)
    at = {job.delivery_id: datetime.now(UTC) - timedelta(seconds=i) for i, job in enumerate(jobs)}
    later = datetime.now(UTC) + timedelta(minutes=1)
    taken_over = dataclasses.replace(lost, owner="w0")  # an attempt whose lease another worker took
    outcomes = [
        *(delivered(j, at[j.delivery_id], 200, 0.01, _arrival(app, j, at[j.delivery_id]), key.certificate)
          for j in answered),
        retry(failing, Decision(False, later, 60.0, None), "HTTP 503", 503),
        dead(refused, "refused", "HTTP 404: no such agency", 404),
        delivered(taken_over, at[lost.delivery_id], 200, 0.01, _arrival(app, lost, at[lost.delivery_id]),
                  key.certificate),
        delivered(reported, at[reported.delivery_id], 200, 0.01,
                  _arrival(app, reported, at[reported.delivery_id]), key.certificate),
    ]
    forwarded: list[str] = []

    async def other(session: AsyncSession) -> bool:  # any other operation still runs, in the same transaction
        forwarded.append("ran")
        return True

    ops: list[Callable[[AsyncSession], Awaitable[bool]]] = [*outcomes, other]
    group: GroupCommit[bool] = GroupCommit(db, max_batch=64, apply=record_outcomes)
    results = await asyncio.gather(*(group.run(op) for op in ops))
    await group.close()
    assert results == [True] * len(answered) + [True, True, False, True, True]
    assert forwarded == ["ran"]
    assert group.transactions < group.items == len(outcomes) + 1

    async with db.read() as session:
        rows = {d.id: d for d in (await session.execute(select(Delivery))).scalars()}
        entries = list((await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq))).scalars())
        automatic = {(d.sender, d.refers_to): d for d in (await session.execute(
            select(Document).where(Document.automatic.is_(True)))).scalars()}
    for job in [*answered, reported]:
        row = rows[job.delivery_id]
        assert (row.state, row.received_at, row.lease_owner) == ("delivered", at[job.delivery_id], None)
    assert (rows[failing.delivery_id].state, rows[failing.delivery_id].next_attempt_at) == ("retry_wait", later)
    assert (rows[refused.delivery_id].state, rows[refused.delivery_id].last_error) == (
        "dead", "HTTP 404: no such agency")
    assert (rows[lost.delivery_id].state, rows[lost.delivery_id].lease_owner) == ("in_flight", "w1")

    def of(delivery_id: str) -> list[tuple[int, str, dict[str, object]]]:
        return [(e.seq, e.type, json.loads(e.details)) for e in entries
                if json.loads(e.details).get("delivery") == delivery_id]

    for job in answered:  # delivered, then its automatic 01, whose entry fixes that 01's sent instant
        [(seq, kind, details), (auto_seq, auto, auto_details)] = of(job.delivery_id)[1:]
        assert (kind, details["received_at"], details["worker"]) == (
            "delivery.delivered", at[job.delivery_id].isoformat(), "w1")
        assert (auto, auto_details["received_at"]) == ("status.auto_arrived", at[job.delivery_id].isoformat())
        assert seq < auto_seq
        status = automatic[(job.recipient, job.document)]
        assert (status.sent_at, status.ledger_seq) == (entries[auto_seq].recorded_at, auto_seq)
    assert [k for _, k, _ in of(reported.delivery_id)] == ["delivery.in_flight", "delivery.delivered"]
    assert (reported.recipient, reported.document) not in automatic
    assert [k for _, k, _ in of(failing.delivery_id)] == ["delivery.in_flight", "delivery.retry_scheduled"]
    assert [k for _, k, _ in of(refused.delivery_id)] == ["delivery.in_flight", "delivery.dead"]
    assert [k for _, k, _ in of(lost.delivery_id)] == ["delivery.in_flight"]
    assert len(automatic) == len(answered)
    assert all(b.prev_hash == a.hash and b.seq == a.seq + 1 for a, b in itertools.pairwise(entries))

    # Recorded once: the same outcomes again find no row still in flight under their attempt.
    async with db.transaction() as session:
        assert await PushTransitions(session).record(outcomes) == [False] * len(outcomes)


async def test_one_outcome_that_cannot_be_written_does_not_take_the_others_down(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    jobs = await _claimed(app, client, admin_headers, 1)
    db = app.state.db
    key: GatewayKey = app.state.gateway_key
    good, other, broken = jobs
    now = datetime.now(UTC)
    # An entry the ledger refuses (an undeclared event type) fails the shared transaction; the group commit
    # then records each outcome on its own, and only that one fails.
    bad = dead(broken, "refused", "HTTP 404", 404)
    bad = dataclasses.replace(bad, event=dataclasses.replace(bad.event, type="delivery.undeclared"))
    outcomes = [*(delivered(j, now, 200, 0.01, _arrival(app, j, now), key.certificate) for j in (good, other)), bad]
    group: GroupCommit[bool] = GroupCommit(db, max_batch=64, apply=record_outcomes)
    results = await asyncio.gather(*(group.run(o) for o in outcomes), return_exceptions=True)
    await group.close()
    assert results[:2] == [True, True]
    assert isinstance(results[2], Exception)
    async with db.read() as session:
        states = {d.id: d.state for d in (await session.execute(select(Delivery))).scalars()}
    assert (states[good.delivery_id], states[other.delivery_id], states[broken.delivery_id]) == (
        "delivered", "delivered", "in_flight")


async def test_a_batch_whose_01_loses_a_race_drops_only_that_01(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = await _claimed(app, client, admin_headers, 1)
    db = app.state.db
    key: GatewayKey = app.state.gateway_key
    first, raced, third = jobs
    now = datetime.now(UTC)
    # The gateway's 01 for ``raced`` is already there (another transaction committed it after this one read):
    # the batch's 01s are refused together by the unique index (migration 0005), then accepted one by one.
    async with db.transaction() as session:
        assert await PushTransitions(session).record([delivered(raced, now, 200, 0.01, _arrival(app, raced, now),
                                                                key.certificate)]) == [True]

    async def not_yet(self: DeliveryRepository, code: str, pairs: object) -> set[tuple[str, str]]:
        return set()

    monkeypatch.setattr(DeliveryRepository, "statuses_reported", not_yet)
    async with db.transaction() as session:  # ``raced`` in flight again under its attempt, as in the race
        await session.execute(update(Delivery).where(Delivery.id == raced.delivery_id).values(
            state="in_flight", lease_owner="w1"))
    async with db.transaction() as session:
        results = await PushTransitions(session).record(
            [delivered(j, now, 200, 0.01, _arrival(app, j, now), key.certificate) for j in (first, raced, third)])
    assert results == [True, True, True]
    async with db.read() as session:
        automatic = [(d.sender, d.refers_to) for d in (await session.execute(
            select(Document).where(Document.automatic.is_(True)))).scalars()]
        entries = [e.type for e in (await session.execute(select(LedgerEntry))).scalars()]
    assert sorted(automatic) == sorted((j.recipient, j.document) for j in jobs)  # one each, none twice
    assert entries.count("delivery.delivered") == 4
    assert entries.count("status.auto_arrived") == 3
