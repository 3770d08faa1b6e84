"""The delivery state machine: every transition is a conditional update and a ledger entry, in one
transaction.

Push (per document and recipient)::

    pending ──claim──▶ in_flight ──2xx──▶ delivered
                         │  ▲  └──5xx/408/429/timeout/connection──▶ retry_wait ──due──▶ (claim again)
                         │  └──lease expired (worker died): claimed again by another worker
                         └──other status, or attempts/age used up──▶ dead ──operator re-queue──▶ pending

Upstream (per document and recipient reached through the upstream axis; the document's upstream deliveries
move together, :mod:`gateway.delivery.forward`)::

    pending ──claim──▶ in_flight ──sendEdoc OK──▶ forwarded ──the upstream reports receivedTime──▶ delivered
                         └── as push: retry_wait, dead, claimed again after a lease expired

Pull::

    pending ──GET /v1/inbox/{id}──▶ fetched ──ack done──▶ delivered
                                          └──ack fail──▶ failed ──operator re-queue──▶ pending

Ledger event types (declared in ``gateway.ledger.events``): ``delivery.in_flight`` (a push attempt
claimed), ``delivery.delivered`` (the received instant is fixed: push 2xx, or pull ``done``),
``delivery.retry_scheduled``, ``delivery.dead``, ``delivery.fetched``, ``delivery.failed``,
``delivery.requeued``, ``delivery.refused`` (an ack or re-queue request refused),
``status.auto_arrived`` (the gateway's own 01, see :mod:`gateway.delivery.arrival`), and
``upstream.forwarded`` (one per forward: the upstream's DocId and the deliveries it carries).

Nothing here holds a transaction across network I/O: the worker posts between its claim transaction and
its result transaction, and the result is written only while the lease is still the worker's.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.repository import AgencyRepository
from gateway.blobs import BlobStore
from gateway.db import Database
from gateway.documents.models import Delivery, Document
from gateway.ledger import service as ledger
from gateway.ledger.service import GATEWAY_ACTOR
from gateway.principal import Principal
from gateway.signing import GatewayKey

from . import metrics
from .arrival import Arrived, build_arrival, original_of, original_of_job, record_delivered, record_delivered_many
from .backoff import Decision
from .errors import AckConflict, DeliveryNotFetched, DeliveryNotFound, DeliveryNotRetryable, InboxCursorInvalid
from .forward import ForwardResult
from .repository import DeliveryRepository, Forwarded, Job


def _now() -> datetime:
    return datetime.now(UTC)


def _short(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _event(type: str, actor: str, delivery: Delivery | Job, document: Document | Job,
           details: dict[str, Any]) -> ledger.Event:
    delivery_id = delivery.id if isinstance(delivery, Delivery) else delivery.delivery_id
    doc_id = document.id if isinstance(document, Document) else document.document
    return ledger.Event(type, actor, document=doc_id, document_id=document.document_id, sender=document.sender,
                        recipient=delivery.recipient, details={"delivery": delivery_id, **details})


async def _append(session: AsyncSession, type: str, actor: str, delivery: Delivery | Job, document: Document | Job,
                  details: dict[str, Any]) -> None:
    await ledger.append_many(session, [_event(type, actor, delivery, document, details)])


# -- push: used by the worker, each call inside the worker's short transaction ---------------------------------

@dataclass(frozen=True)
class Outcome:
    """One push attempt's answer to record: the row's new values, its ledger entry, and for a delivered
    document the automatic 01 made for it. Calling it records it alone (a :mod:`gateway.db.group_commit`
    operation); :func:`record_outcomes` records a batch of them together."""

    job: Job
    values: Mapping[str, Any]
    event: ledger.Event
    arrived: Arrived | None = None
    certificate: x509.Certificate | None = None

    async def __call__(self, session: AsyncSession) -> bool:
        [recorded] = await PushTransitions(session).record([self])
        return recorded


def delivered(job: Job, received_at: datetime, http_status: int, duration: float, arrival: bytes | None,
              certificate: x509.Certificate) -> Outcome:
    """A 2xx: ``delivered`` with its received instant (Điều 11.2), and the automatic 01 (``arrival``, already
    stored; None for a status) accepted right after the ledger's ``delivery.delivered``."""
    event = _event("delivery.delivered", GATEWAY_ACTOR, job, job, {
        "mode": "push", "attempt": job.attempt, "http_status": http_status,
        "received_at": received_at.isoformat(), "duration_ms": round(duration * 1000, 1), "worker": job.owner,
    })
    return Outcome(job, {"state": "delivered", "received_at": received_at, "next_attempt_at": None,
                         "last_error": None}, event,
                   Arrived(event, original_of_job(job), job.recipient, received_at, arrival, job.delivery_id),
                   certificate)


def retry(job: Job, decision: Decision, error: str, http_status: int | None) -> Outcome:
    assert decision.next_attempt_at is not None
    return Outcome(job, {"state": "retry_wait", "next_attempt_at": decision.next_attempt_at,
                         "last_error": _short(error)},
                   _event("delivery.retry_scheduled", GATEWAY_ACTOR, job, job, {
                       "attempt": job.attempt, "error": _short(error, 300), "http_status": http_status,
                       "next_attempt_at": decision.next_attempt_at.isoformat(),
                       "delay_seconds": round(decision.delay or 0, 3)}))


def dead(job: Job, reason: str, error: str, http_status: int | None) -> Outcome:
    return Outcome(job, {"state": "dead", "next_attempt_at": None, "last_error": _short(error)},
                   _event("delivery.dead", GATEWAY_ACTOR, job, job, {
                       "attempt": job.attempt, "reason": reason, "error": _short(error, 300),
                       "http_status": http_status}))


async def record_outcomes(session: AsyncSession, ops: list[Callable[[AsyncSession], Awaitable[bool]]]) -> list[bool]:
    """The push worker's group commit (``apply``): its :class:`Outcome` items recorded together
    (:meth:`PushTransitions.record`), then any other operation (a forward's) on its own, in order."""
    outcomes = [op for op in ops if isinstance(op, Outcome)]
    together = dict(zip(map(id, outcomes), await PushTransitions(session).record(outcomes), strict=True))
    return [together[id(op)] if isinstance(op, Outcome) else await op(session) for op in ops]


class PushTransitions:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = DeliveryRepository(session)

    async def claim(self, owner: str, now: datetime, lease: timedelta, limit: int,
                    modes: Sequence[str] = ("push",)) -> list[Job]:
        jobs = await self.repo.claim(owner, now, now + lease, limit, modes)
        events = []
        for job in jobs:
            details: dict[str, Any] = {"attempt": job.attempt, "worker": owner}
            if job.reclaimed_from is not None:
                details["reclaimed_from"] = job.reclaimed_from
            events.append(_event("delivery.in_flight", GATEWAY_ACTOR, job, job, details))
        # One INSERT for the batch: the ledger head is locked from it to the commit.
        await ledger.append_many(self.session, events)
        return jobs

    async def delivered(self, job: Job, received_at: datetime, http_status: int, duration: float,
                        arrival: bytes | None, key: GatewayKey) -> bool:
        [recorded] = await self.record([delivered(job, received_at, http_status, duration, arrival,
                                                  key.certificate)])
        return recorded

    async def retry(self, job: Job, decision: Decision, error: str, http_status: int | None) -> bool:
        [recorded] = await self.record([retry(job, decision, error, http_status)])
        return recorded

    async def dead(self, job: Job, reason: str, error: str, http_status: int | None) -> bool:
        [recorded] = await self.record([dead(job, reason, error, http_status)])
        return recorded

    async def record(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Record attempts' outcomes together: the rows whose lease is still their attempt's move on (two
        statements for all of them), then the ledger: one INSERT for every entry that needs no automatic 01,
        and each delivered document's 01 accepted right after its ``delivery.delivered``
        (:func:`gateway.delivery.arrival.record_delivered_many`). Per outcome: False when its lease was taken
        over (nothing recorded for it)."""
        moved = await self.repo.finish_many([(o.job, o.values) for o in outcomes], _now())
        recorded = [(o.job.delivery_id, o.job.attempt) in moved for o in outcomes]
        done = [o for o, ok in zip(outcomes, recorded, strict=True) if ok]
        arrived = [o for o in done if o.arrived is not None]
        certificate = next((o.certificate for o in arrived if o.certificate is not None), None)
        plain = [o.event for o in done if o.arrived is None]
        if arrived and certificate is not None:
            await record_delivered_many(self.session, [o.arrived for o in arrived if o.arrived is not None],
                                        certificate, before=plain)
        else:
            await ledger.append_many(self.session, plain)
        return recorded

    async def renew(self, job: Job, until: datetime) -> bool:
        return await self.repo.renew(job, until)

    async def forwarded(self, jobs: Sequence[Job], result: ForwardResult, upstream: str,
                        first_check: datetime) -> bool:
        """The upstream accepted the forward of ``jobs`` (one document's upstream deliveries): each still this
        worker's becomes ``forwarded`` (asked about at ``first_check``), and one ``upstream.forwarded`` entry
        states the hand-off. False when every lease was lost (nothing recorded)."""
        assert result.upstream_doc_id is not None
        recorded = [job for job in jobs if await self.repo.finish(
            job, _now(), state="forwarded", upstream_doc_id=result.upstream_doc_id, forwarded_at=result.at,
            next_attempt_at=first_check, last_error=None)]
        if recorded:
            first = recorded[0]
            await ledger.append_many(self.session, [ledger.Event(
                "upstream.forwarded", GATEWAY_ACTOR, document=first.document, document_id=first.document_id,
                sender=first.sender, details={
                    "upstream": upstream, "upstream_doc_id": result.upstream_doc_id,
                    "forwarded_at": result.at.isoformat(), "deliveries": [j.delivery_id for j in recorded],
                    "recipients": [j.recipient for j in recorded], "attempt": first.attempt,
                    "duration_ms": round(result.duration * 1000, 1), "worker": first.owner,
                })])
        return bool(recorded)


# -- upstream: the received instants the upstream reports, asked by the upstream poller ------------------------

class UpstreamReceipts:
    """The forwarded deliveries' received instants, as the upstream reports them (each call its own
    transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def due(self, now: datetime, limit: int) -> list[Forwarded]:
        async with self.db.read() as session:
            return await DeliveryRepository(session).forwarded_due(now, limit)

    async def received(self, forwarded: Forwarded, delivery_id: str, received_at: datetime,
                       reported: dict[str, Any], actor: str) -> bool:
        """The upstream reports the recipient of ``delivery_id`` received it at ``received_at`` (its
        statement): the delivery becomes ``delivered`` (ledger ``delivery.delivered``, mode upstream). No
        automatic 01 is made: the upstream makes its own, which comes back as a status. False when the delivery
        is no longer forwarded (another poller recorded it)."""
        async with self.db.transaction() as session:
            repo = DeliveryRepository(session)
            found = await repo.with_document(delivery_id)
            if found is None:
                return False
            delivery, document, _agency = found
            if not await repo.move(delivery_id, ("forwarded",), _now(), state="delivered", received_at=received_at,
                                   next_attempt_at=None):
                return False
            await _append(session, "delivery.delivered", actor, delivery, document, {
                "mode": "upstream", "received_at": received_at.isoformat(),
                "upstream_doc_id": forwarded.upstream_doc_id, "reported_by": "upstream", **reported,
            })
        metrics.DELIVERED.labels(mode="upstream").inc()
        return True

    async def not_yet(self, forwarded: Forwarded, next_check: datetime,
                      notes: dict[str, str] | None = None) -> None:
        """Ask again about ``forwarded`` at ``next_check``; ``notes`` (delivery id → what the upstream said of a
        recipient it has not delivered to, e.g. a failure) become those deliveries' ``last_error``."""
        async with self.db.transaction() as session:
            repo = DeliveryRepository(session)
            for delivery_id in forwarded.deliveries:
                values: dict[str, Any] = {"next_attempt_at": next_check}
                if notes and delivery_id in notes:
                    values["last_error"] = _short(notes[delivery_id])
                await repo.move(delivery_id, ("forwarded",), _now(), **values)


# -- pull and operators: each method runs its own transactions ------------------------------------------------

@dataclass(frozen=True)
class InboxItem:
    delivery: Delivery
    document: Document


@dataclass(frozen=True)
class InboxPage:
    items: list[InboxItem]
    next: str | None


@dataclass(frozen=True)
class AckResult:
    delivery: Delivery
    changed: bool


def encode_cursor(delivery: Delivery) -> str:
    raw = json.dumps([delivery.priority, delivery.created_at.isoformat(), delivery.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime, str]:
    try:
        if len(cursor) > 300:
            raise ValueError("too long")
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        priority, created_at, delivery_id = raw
        at = datetime.fromisoformat(created_at)
        if not isinstance(priority, int) or not isinstance(delivery_id, str) or at.tzinfo is None:
            raise ValueError("shape")
        return priority, at, delivery_id
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InboxCursorInvalid() from exc


class DeliveryService:
    """Inbox, download, acknowledgement and re-queue (refusals are ledgered by the caller:
    :mod:`gateway.ledger.refusals`)."""

    def __init__(self, db: Database, blobs: BlobStore, key: GatewayKey) -> None:
        self.db = db
        self.blobs = blobs
        self.key = key

    async def inbox(self, agency: Principal, cursor: str | None, limit: int) -> InboxPage:
        code = agency.agency_code
        assert code is not None
        after = decode_cursor(cursor) if cursor else None
        async with self.db.transaction() as session:
            rows = await DeliveryRepository(session).inbox(code, after, limit + 1)
        items = [InboxItem(d, doc) for d, doc in rows[:limit]]
        return InboxPage(items, encode_cursor(items[-1].delivery) if len(rows) > limit else None)

    async def waiting(self, recipients: Sequence[str], kind: str, limit: int) -> list[InboxItem]:
        """What waits for any of ``recipients`` (pull, not yet acknowledged), of one kind: the national-axis
        face's list for every agency a system serves."""
        async with self.db.read() as session:
            rows = await DeliveryRepository(session).waiting(recipients, kind, limit)
        return [InboxItem(d, doc) for d, doc in rows]

    async def count_waiting(self, recipients: Sequence[str], kind: str) -> int:
        async with self.db.read() as session:
            return await DeliveryRepository(session).count_waiting(recipients, kind)

    async def located(self, delivery_id: str) -> tuple[Delivery, Document] | None:
        """A delivery and its document by id, whoever it is for (the caller decides who may act on it)."""
        async with self.db.read() as session:
            found = await DeliveryRepository(session).with_document(delivery_id)
        return (found[0], found[1]) if found is not None else None

    async def fetch(self, agency: Principal, delivery_id: str) -> tuple[Delivery, Document]:
        """The recipient downloads: ``pending`` → ``fetched`` (ledgered) the first time."""
        async with self.db.transaction() as session:
            delivery, document = await self._own(session, agency, delivery_id)
            repo = DeliveryRepository(session)
            if delivery.state == "pending" and await repo.move(delivery.id, ("pending",), _now(), state="fetched"):
                await _append(session, "delivery.fetched", agency.actor, delivery, document, {"mode": "pull"})
                fresh = await repo.get(delivery.id)
                assert fresh is not None
                delivery = fresh
        return delivery, document

    async def ack(self, agency: Principal, delivery_id: str, result: str, reason: str | None) -> AckResult:
        received_at = _now()  # the instant the acknowledgement arrived: the received instant (Điều 11.2)
        async with self.db.transaction() as session:
            delivery, document = await self._own(session, agency, delivery_id)
            answer = self._settled(delivery, result)
            if answer is not None:
                return answer
            recipient_name = (await AgencyRepository(session).get_many([delivery.recipient]))[delivery.recipient].name
        arrival: bytes | None = None
        if result == "done" and document.kind == "document":
            arrival = await asyncio.to_thread(build_arrival, original_of(document), delivery.recipient,
                                              recipient_name, received_at, self.key.private_key,
                                              self.key.certificate)
            await asyncio.to_thread(self.blobs.put, arrival)
        async with self.db.transaction() as session:
            repo = DeliveryRepository(session)
            if result == "done":
                moved = await repo.move(delivery.id, ("fetched",), received_at, state="delivered",
                                        received_at=received_at)
            else:
                moved = await repo.move(delivery.id, ("fetched",), received_at, state="failed",
                                        last_error=_short(reason or ""))
            if not moved:  # a concurrent acknowledgement won: answer as the second of the two
                fresh, _ = await self._own(session, agency, delivery_id)
                answer = self._settled(fresh, result)
                if answer is None:
                    raise AckConflict()
                return answer
            if result == "done":
                await record_delivered(session, _event("delivery.delivered", agency.actor, delivery, document,
                                                       {"mode": "pull", "received_at": received_at.isoformat()}),
                                       original_of(document), delivery.recipient, received_at, arrival,
                                       self.key.certificate, delivery_id=delivery.id)
            else:
                await _append(session, "delivery.failed", agency.actor, delivery, document,
                              {"mode": "pull", "reason": _short(reason or "", 500)})
            updated = await repo.get(delivery.id)
            assert updated is not None
        if result == "done":
            metrics.DELIVERED.labels(mode="pull").inc()
        return AckResult(updated, True)

    @staticmethod
    def _settled(delivery: Delivery, result: str) -> AckResult | None:
        """The answer when no transition is needed (idempotent repeat), or a refusal; None: go on."""
        wanted = "delivered" if result == "done" else "failed"
        if delivery.state == wanted:
            return AckResult(delivery, False)
        if delivery.state in ("delivered", "failed"):
            raise AckConflict(f"the delivery is already {delivery.state}")
        if delivery.state != "fetched":
            raise DeliveryNotFetched()
        return None

    async def requeue(self, operator: Principal, delivery_id: str, reason: str | None) -> Delivery:
        now = _now()
        async with self.db.transaction() as session:
            repo = DeliveryRepository(session)
            found = await repo.with_document(delivery_id)
            if found is None:
                raise DeliveryNotFound()
            delivery, document, agency = found
            if delivery.state not in ("dead", "failed"):
                raise DeliveryNotRetryable(f"the delivery is {delivery.state}")
            # The register may have changed since (e.g. a broken endpoint replaced by pull): follow it.
            mode = agency.delivery_mode
            if not await repo.move(delivery.id, (delivery.state,), now, state="pending", mode=mode, attempts=0,
                                   next_attempt_at=now if mode in ("push", "upstream") else None, requeued_at=now,
                                   lease_owner=None, lease_until=None):
                raise DeliveryNotRetryable("the delivery changed meanwhile")
            details: dict[str, Any] = {"from_state": delivery.state, "mode": mode}
            if reason:
                details["reason"] = _short(reason, 500)
            await _append(session, "delivery.requeued", operator.actor, delivery, document, details)
            fresh = await repo.get(delivery.id)
            assert fresh is not None
            return fresh

    async def _own(self, session: AsyncSession, agency: Principal, delivery_id: str) -> tuple[Delivery, Document]:
        found = await DeliveryRepository(session).with_document(delivery_id)
        # Another agency's delivery answers exactly like a missing one.
        if found is None or found[0].recipient != agency.agency_code or found[0].mode != "pull":
            raise DeliveryNotFound()
        return found[0], found[1]
