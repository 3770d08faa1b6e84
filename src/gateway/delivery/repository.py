"""Every SQL statement of delivery: claims, lease-checked updates, the inbox, status lookups.

Claims (push): candidates are selected most urgent first (``priority`` descending, then the due instant),
on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so that concurrent workers take disjoint rows without
waiting for each other; then one conditional ``UPDATE … WHERE id IN (…) AND <still claimable> RETURNING``
takes them. The condition makes the claim safe even without the row locks (SQLite has none; there every
transaction holds the single writer lock from ``BEGIN IMMEDIATE`` anyway): a row another worker claimed in
between no longer matches, so it is never claimed twice. A claimable row is ``pending`` or ``retry_wait``
and due, or ``in_flight`` with an expired lease (its worker died or hung).

Every later change of a claimed row is an ``UPDATE … WHERE state = 'in_flight' AND lease_owner = :me AND
attempts = :attempt``: a worker whose lease was taken over records nothing. The worker's outcomes, many at
a time (:meth:`DeliveryRepository.finish_many`), are one ``SELECT … FOR UPDATE`` of the rows that are still
each attempt's (locked until the commit, so no claim can take them in between; SQLite's writer lock does the
same) and one executemany ``UPDATE`` by primary key of those.

Upstream deliveries (mode ``upstream``) are claimed by a worker that has a forwarder, and always all of one
document's together: a claim that takes one takes every other claimable upstream delivery of its document in
the same statement, so that the document is forwarded once (the upstream fans out) and its deliveries move on
together. A forwarded delivery waits for the upstream to report the recipient's received instant;
``next_attempt_at`` is then when to ask next (:meth:`DeliveryRepository.forwarded_due`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.models import Agency
from gateway.documents.models import Delivery, Document

CLAIMABLE_WAITING = ("pending", "retry_wait")


@dataclass(frozen=True)
class Job:
    """A claimed push or upstream delivery and everything the worker needs to send it, read in the claim
    transaction."""

    delivery_id: str
    attempt: int
    owner: str
    lease_until: datetime
    recipient: str
    recipient_name: str
    endpoint: str | None
    window_start: datetime
    document: str
    kind: str
    sender: str
    document_id: str
    sent_at: datetime
    envelope_sha256: str
    multipart: bool
    code: str | None
    promulgation_date: date | None
    priority: int
    refers_to: str | None
    reclaimed_from: str | None
    mode: str = "push"


@dataclass(frozen=True)
class Forwarded:
    """A document's deliveries forwarded upstream under one DocId, waiting for their received instants."""

    upstream_doc_id: str
    kind: str
    #: delivery id → recipient code
    deliveries: dict[str, str]
    #: when the upstream accepted the forward (it is asked less often the longer the recipient takes)
    forwarded_at: datetime


def _claimable(now: datetime, modes: Sequence[str] = ("push",)) -> Any:
    return and_(
        Delivery.mode.in_(list(modes)),
        or_(
            and_(Delivery.state.in_(CLAIMABLE_WAITING), Delivery.next_attempt_at <= now),
            and_(Delivery.state == "in_flight", Delivery.lease_until < now),
        ),
    )


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # -- push ---------------------------------------------------------------------------------------------

    async def claim(self, owner: str, now: datetime, lease_until: datetime, limit: int,
                    modes: Sequence[str] = ("push",)) -> list[Job]:
        candidates = (
            select(Delivery.id, Delivery.state, Delivery.lease_owner, Delivery.mode, Delivery.document)
            .where(_claimable(now, modes))
            .order_by(Delivery.priority.desc(), Delivery.next_attempt_at, Delivery.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        rows = list((await self.session.execute(candidates)).all())
        if not rows:
            return []
        forwarded_documents = {r.document for r in rows if r.mode == "upstream"}
        if forwarded_documents:  # the other upstream deliveries of the same documents go with them
            siblings = (
                select(Delivery.id, Delivery.state, Delivery.lease_owner, Delivery.mode, Delivery.document)
                .where(_claimable(now, ("upstream",)), Delivery.document.in_(sorted(forwarded_documents)))
            )
            if self.dialect == "postgresql":
                siblings = siblings.with_for_update(skip_locked=True)
            known = {r.id for r in rows}
            rows += [r for r in (await self.session.execute(siblings)).all() if r.id not in known]
        previous = {r.id: (r.lease_owner if r.state == "in_flight" else None) for r in rows}
        claimed = await self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(previous)), _claimable(now, modes))
            .values(state="in_flight", lease_owner=owner, lease_until=lease_until, attempts=Delivery.attempts + 1,
                    updated_at=now)
            .returning(Delivery.id, Delivery.attempts)
            .execution_options(synchronize_session=False)
        )
        attempts = {r.id: r.attempts for r in claimed.all()}
        if not attempts:
            return []
        # Columns, not entities: a claim of many rows should not build three ORM objects per row.
        joined = await self.session.execute(
            select(Delivery.id, Delivery.recipient, Delivery.mode, Delivery.priority, Delivery.requeued_at,
                   Delivery.created_at, Document.id.label("doc"), Document.kind, Document.sender,
                   Document.document_id, Document.sent_at, Document.envelope_sha256, Document.multipart,
                   Document.code, Document.promulgation_date, Document.refers_to, Agency.name,
                   Agency.endpoint, Agency.delivery_mode)
            .join(Document, Document.id == Delivery.document)
            .join(Agency, Agency.code == Delivery.recipient)
            .where(Delivery.id.in_(list(attempts)))
            .order_by(Delivery.priority.desc(), Delivery.next_attempt_at, Delivery.id)
        )
        return [
            Job(delivery_id=r.id, attempt=attempts[r.id], owner=owner, lease_until=lease_until, recipient=r.recipient,
                recipient_name=r.name,
                endpoint=r.endpoint if r.delivery_mode == "push" and r.mode == "push" else None,
                window_start=r.requeued_at or r.created_at, document=r.doc, kind=r.kind, sender=r.sender,
                document_id=r.document_id, sent_at=r.sent_at, envelope_sha256=r.envelope_sha256,
                multipart=r.multipart, code=r.code, promulgation_date=r.promulgation_date, priority=r.priority,
                refers_to=r.refers_to, reclaimed_from=previous.get(r.id), mode=r.mode)
            for r in joined.all()
        ]

    async def finish(self, job: Job, now: datetime, **values: Any) -> bool:
        """Move a claimed row on, only if the lease is still ``job``'s; False if it was taken over."""
        result = await self.session.execute(
            update(Delivery)
            .where(Delivery.id == job.delivery_id, Delivery.state == "in_flight", Delivery.lease_owner == job.owner,
                   Delivery.attempts == job.attempt)
            .values(updated_at=now, lease_owner=None, lease_until=None, **values)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def finish_many(self, changes: Sequence[tuple[Job, Mapping[str, Any]]], now: datetime
                          ) -> set[tuple[str, int]]:
        """:meth:`finish` for many attempts in two statements: each row moves on with its own ``values`` only if
        its lease is still that attempt's. The (delivery id, attempt) of the rows moved; the others were taken
        over and record nothing."""
        if not changes:
            return set()
        wanted = {(job.delivery_id, job.attempt): job for job, _ in changes}
        held = select(Delivery.id, Delivery.lease_owner, Delivery.attempts).where(
            Delivery.id.in_(sorted({job.delivery_id for job, _ in changes})), Delivery.state == "in_flight")
        if self.dialect == "postgresql":
            held = held.with_for_update()  # until the commit: no claim can take them over in between
        moved = set()
        for row in (await self.session.execute(held)).all():
            job = wanted.get((row.id, row.attempts))
            if job is not None and row.lease_owner == job.owner:
                moved.add((row.id, row.attempts))
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for job, values in changes:
            if (job.delivery_id, job.attempt) in moved:
                params = {"updated_at": now, "lease_owner": None, "lease_until": None, **values}
                by_columns.setdefault(tuple(sorted(params)), []).append({"row_id": job.delivery_id, **params})
        table = cast("Table", Delivery.__table__)  # Core executemany: no ORM bookkeeping per row
        for rows in by_columns.values():  # executemany: one statement, a parameter set per row
            await self.session.execute(update(table).where(table.c.id == bindparam("row_id")), rows)
        return moved

    async def statuses_reported(self, code: str, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (agency, document) of ``pairs`` already have a status ``code`` from that agency about that
        document (its own, or one the gateway wrote in its name): one query for a batch of deliveries."""
        if not pairs:
            return set()
        result = await self.session.execute(
            select(Document.sender, Document.refers_to).where(
                Document.kind == "status", Document.status_code == code,
                Document.refers_to.in_(sorted({d for _, d in pairs})),
                Document.sender.in_(sorted({a for a, _ in pairs})),
            )
        )
        wanted = set(pairs)
        return {(r.sender, r.refers_to) for r in result.all() if (r.sender, r.refers_to) in wanted}

    async def renew(self, job: Job, until: datetime) -> bool:
        result = await self.session.execute(
            update(Delivery)
            .where(Delivery.id == job.delivery_id, Delivery.state == "in_flight", Delivery.lease_owner == job.owner,
                   Delivery.attempts == job.attempt)
            .values(lease_until=until)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def forwarded_due(self, now: datetime, limit: int) -> list[Forwarded]:
        """Up to ``limit`` upstream DocIds whose forwarded deliveries are due to be asked about (oldest due
        first), each with every forwarded delivery under it."""
        due = await self.session.execute(
            select(Delivery.upstream_doc_id, func.min(Delivery.next_attempt_at).label("due"))
            .where(Delivery.mode == "upstream", Delivery.state == "forwarded", Delivery.next_attempt_at <= now,
                   Delivery.upstream_doc_id.is_not(None))
            .group_by(Delivery.upstream_doc_id)
            .order_by("due")
            .limit(limit)
        )
        doc_ids = [r.upstream_doc_id for r in due.all()]
        if not doc_ids:
            return []
        rows = await self.session.execute(
            select(Delivery.id, Delivery.recipient, Delivery.upstream_doc_id, Delivery.forwarded_at, Document.kind)
            .join(Document, Document.id == Delivery.document)
            .where(Delivery.mode == "upstream", Delivery.state == "forwarded",
                   Delivery.upstream_doc_id.in_(doc_ids))
            .order_by(Delivery.id)
        )
        found: dict[str, Forwarded] = {}
        for row in rows.all():
            entry = found.setdefault(row.upstream_doc_id,
                                     Forwarded(row.upstream_doc_id, row.kind, {}, row.forwarded_at or now))
            entry.deliveries[row.id] = row.recipient
        return [found[d] for d in doc_ids if d in found]

    async def next_due(self) -> datetime | None:
        """The earliest instant a push delivery becomes claimable (lets an idle worker sleep less)."""
        result = await self.session.execute(
            select(func.min(Delivery.next_attempt_at)).where(
                Delivery.mode == "push", Delivery.state.in_(CLAIMABLE_WAITING)
            )
        )
        value: datetime | None = result.scalar_one_or_none()
        return value

    # -- any delivery --------------------------------------------------------------------------------------

    async def get(self, delivery_id: str) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id, populate_existing=True)

    async def with_document(self, delivery_id: str) -> tuple[Delivery, Document, Agency] | None:
        result = await self.session.execute(
            select(Delivery, Document, Agency)
            .join(Document, Document.id == Delivery.document)
            .join(Agency, Agency.code == Delivery.recipient)
            .where(Delivery.id == delivery_id)
            .execution_options(populate_existing=True)
        )
        row = result.first()
        return (row[0], row[1], row[2]) if row is not None else None

    async def move(self, delivery_id: str, from_states: Sequence[str], now: datetime, **values: Any) -> bool:
        """A conditional state change: applied only if the row is still in one of ``from_states``."""
        result = await self.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state.in_(list(from_states)))
            .values(updated_at=now, **values)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    def add(self, rows: Sequence[Delivery]) -> None:
        self.session.add_all(rows)

    # -- pull ----------------------------------------------------------------------------------------------

    async def waiting(self, recipients: Sequence[str], kind: str, limit: int) -> Sequence[tuple[Delivery, Document]]:
        """Pull deliveries of ``kind`` (document | status) not yet acknowledged, for any of ``recipients``, most
        urgent then oldest first (the national-axis face lists them for every agency a system serves)."""
        if not recipients:
            return []
        result = await self.session.execute(
            select(Delivery, Document)
            .join(Document, Document.id == Delivery.document)
            .where(Delivery.recipient.in_(list(recipients)), Delivery.mode == "pull",
                   Delivery.state.in_(("pending", "fetched")), Document.kind == kind)
            .order_by(Delivery.priority.desc(), Delivery.created_at, Delivery.id)
            .limit(limit)
        )
        return [(d, doc) for d, doc in result.all()]

    async def count_waiting(self, recipients: Sequence[str], kind: str) -> int:
        if not recipients:
            return 0
        result = await self.session.execute(
            select(func.count()).select_from(Delivery)
            .join(Document, Document.id == Delivery.document)
            .where(Delivery.recipient.in_(list(recipients)), Delivery.mode == "pull",
                   Delivery.state.in_(("pending", "fetched")), Document.kind == kind)
        )
        return int(result.scalar_one())

    async def search(
        self, *, state: str | None = None, recipient: str | None = None, sender: str | None = None,
        mode: str | None = None, document: str | None = None, updated_from: datetime | None = None,
        updated_to: datetime | None = None, oldest_first: bool = False, after: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> Sequence[tuple[Delivery, Document]]:
        """Deliveries with their document, by ``updated_at`` then ``id`` (newest first, or oldest first), after
        the keyset ``after`` (index ``ix_deliveries_state_updated`` when a state is given)."""
        query = select(Delivery, Document).join(Document, Document.id == Delivery.document)
        if state is not None:
            query = query.where(Delivery.state == state)
        if recipient is not None:
            query = query.where(Delivery.recipient == recipient)
        if sender is not None:
            query = query.where(Document.sender == sender)
        if mode is not None:
            query = query.where(Delivery.mode == mode)
        if document is not None:
            query = query.where(Delivery.document == document)
        if updated_from is not None:
            query = query.where(Delivery.updated_at >= updated_from)
        if updated_to is not None:
            query = query.where(Delivery.updated_at < updated_to)
        if after is not None:
            at, last_id = after
            if oldest_first:
                beyond = or_(Delivery.updated_at > at, and_(Delivery.updated_at == at, Delivery.id > last_id))
            else:
                beyond = or_(Delivery.updated_at < at, and_(Delivery.updated_at == at, Delivery.id < last_id))
            query = query.where(beyond)
        order = ((Delivery.updated_at, Delivery.id) if oldest_first
                 else (Delivery.updated_at.desc(), Delivery.id.desc()))
        result = await self.session.execute(query.order_by(*order).limit(limit))
        return [(d, doc) for d, doc in result.all()]

    async def inbox(
        self, recipient: str, after: tuple[int, datetime, str] | None, limit: int
    ) -> Sequence[tuple[Delivery, Document]]:
        query = (
            select(Delivery, Document)
            .join(Document, Document.id == Delivery.document)
            .where(Delivery.recipient == recipient, Delivery.mode == "pull",
                   Delivery.state.in_(("pending", "fetched")))
            .order_by(Delivery.priority.desc(), Delivery.created_at, Delivery.id)
            .limit(limit)
        )
        if after is not None:
            priority, created_at, last_id = after
            query = query.where(or_(
                Delivery.priority < priority,
                and_(Delivery.priority == priority, Delivery.created_at > created_at),
                and_(Delivery.priority == priority, Delivery.created_at == created_at, Delivery.id > last_id),
            ))
        result = await self.session.execute(query)
        return [(d, doc) for d, doc in result.all()]
