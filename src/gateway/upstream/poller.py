"""The upstream poller: what waits for this gateway upstream is fetched, accepted, and only then acknowledged.

Runs in ``gateway serve`` (with the delivery workers) and in every ``gateway worker`` when an upstream is
configured, one at a time across all the processes sharing the database: each round starts by taking (or
extending) the lease ``upstream-poller`` (:mod:`gateway.db.leases`); a process that does not hold it sleeps.
Every ``upstream_poll_seconds`` a round does, in order:

1. documents, then statuses: getReceivedEdocList (``messagetype`` edoc, then status) and for each item, oldest
   first as the upstream lists them:

   a. getEdoc: the bytes (an item the upstream will not hand out is left there, logged, and asked again next
      round);
   b. the one acceptance path (:class:`gateway.intake.service.IntakeService`, ``via`` :class:`FromUpstream`):
      the sender is the item's ``from`` (an alias is resolved), which the edXML ``From`` must name; the ledger
      actor is ``upstream:<system id>``, the entry and the document carry the upstream's DocId;
   c. only after the acceptance has committed: updateStatus ``done`` (ledger ``upstream.acknowledged``). A
      refusal (a 4xx problem) is ledgered like any refusal (``envelope.refused`` / ``status.refused``, actor
      the upstream system) and acknowledged ``fail`` with ``<slug>: <detail>`` as description. A 5xx problem
      (the database unavailable, say) is not the message's fault: nothing is acknowledged, the round ends,
      and the item is taken again later;
   d. a STATUS whose reporter is a LOCAL agency is the upstream's echo of this gateway's own traffic (the 01
      the upstream writes when this gateway acknowledges a document for a local agency there): this gateway
      holds that agency's own statuses, so it is acknowledged ``done`` and not stored, the ledger entry
      saying so (``kept: false``, ``reason: reporter-is-local``);

2. the received instants: for the forwards due to be asked about (:meth:`UpstreamReceipts.due`),
   getSentEdocList of each upstream DocId; a recipient with a ``receivedTime`` becomes ``delivered`` at that
   instant (the upstream's statement); the others are asked again later, less often the longer they take
   (a quarter of the time since the forward, between ``upstream_poll_seconds`` and 10 minutes).

Idempotent on the upstream's DocId, and safe against a crash anywhere: acceptance is idempotent on the bytes
(an identical message from the same sender returns the document already accepted), so a message accepted
whose acknowledgement was lost (the process killed between the two, the upstream down) is fetched again,
found, and acknowledged — never a second document. Nothing is acknowledged that has not been stored. An
unreachable upstream ends the round (logged); the next one tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gateway.agency.codes import is_valid_code
from gateway.agency.repository import AgencyRepository
from gateway.config import Settings
from gateway.db import Database
from gateway.db.leases import LeaseRepository
from gateway.delivery.repository import Forwarded
from gateway.delivery.service import UpstreamReceipts
from gateway.envelope import envelope_sha256
from gateway.intake.service import FromUpstream, IntakeService
from gateway.ledger import service as ledger
from gateway.ledger.refusals import RefusalLog
from gateway.logs import get_logger
from gateway.problems import GatewayError
from gateway.upstream.client import MessageType, ReceivedItem, SentItem, UpstreamClient
from gateway.upstream.errors import UpstreamError, UpstreamUnavailable
from gateway.upstream.times import parse_upstream_time

_log = get_logger("gateway.upstream")

LEASE = "upstream-poller"
#: the most items taken from one list in one round, and the most forwards asked about
BATCH = 200
#: the longest wait between two questions about a forward whose recipient has not received it yet
MAX_CHECK_INTERVAL = timedelta(minutes=10)


@dataclass
class Round:
    """What one round did (tests, logs)."""

    accepted: int = 0
    already_here: int = 0
    #: statuses about local agencies the upstream wrote itself (d.), acknowledged and not kept
    echoes: int = 0
    refused: int = 0
    delivered: int = 0
    errors: list[str] = field(default_factory=list)


def poller_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class UpstreamPoller:
    def __init__(self, db: Database, intake: IntakeService, client: UpstreamClient, settings: Settings, *,
                 owner: str | None = None, wake: Callable[[], None] | None = None) -> None:
        self.db = db
        self.intake = intake
        self.client = client
        self.settings = settings
        self.owner = owner or poller_id()
        self.wake = wake
        self.interval = settings.upstream_poll_seconds
        # The delivery workers' lease length (GATEWAY_LEASE_SECONDS), and at least three polls: a process killed
        # while holding it delays the next round by at most that. Renewed before each item, so a long round
        # keeps it; should it lapse during one slow call anyway, a second poller taking the same item is
        # harmless (acceptance is idempotent on the bytes).
        self.lease = timedelta(seconds=max(settings.lease_seconds, 3 * self.interval))
        self.receipts = UpstreamReceipts(db)
        self.refusals = RefusalLog(db)
        self.via_system = client.system_id
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"upstream poller {self.owner}")
        _log.info("upstream poller started", poller=self.owner, upstream=self.client.base_url)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with self.db.transaction() as session:
                await LeaseRepository(session).release(LEASE, self.owner)
        _log.info("upstream poller stopped", poller=self.owner)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                if await self.hold():
                    done = await self.round()
                    if done.accepted or done.already_here or done.echoes or done.refused or done.delivered \
                            or done.errors:
                        _log.info("upstream round", poller=self.owner, accepted=done.accepted,
                                  already_here=done.already_here, echoes=done.echoes, refused=done.refused,
                                  delivered=done.delivered, errors=done.errors[:5])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the upstream failed: the next round tries again
                _log.error("upstream round failed", poller=self.owner, error_type=type(exc).__name__,
                           error=str(exc)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)

    async def hold(self) -> bool:
        """Take or extend the poller's lease; False when another process holds it."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            return await LeaseRepository(session).acquire(LEASE, self.owner, now, now + self.lease)

    # -- one round -------------------------------------------------------------------------------------------

    async def round(self) -> Round:
        done = Round()
        try:
            for messagetype in ("edoc", "status"):
                items = await self.client.received(messagetype)
                for item in items[:BATCH]:
                    if not await self.hold():  # another process took over (this one stalled past the lease)
                        return done
                    await self.take(item, messagetype, done)
            await self.learn_received(done)
        except UpstreamUnavailable as error:
            done.errors.append(f"{error.operation}: {error.detail}")
        return done

    async def take(self, item: ReceivedItem, messagetype: MessageType, done: Round) -> None:
        try:
            data = await self.client.get_edoc(item.doc_id)
        except UpstreamUnavailable:
            raise
        except UpstreamError as error:  # left upstream, asked again next round
            done.errors.append(f"getEdoc {item.doc_id}: {error.slug} {error.detail}")
            return
        via = FromUpstream(self.via_system, item.doc_id)
        sender, local = await self._sender(item.from_code.strip())
        if messagetype == "status" and local:
            await self.client.update_status(item.doc_id, "done")
            async with self.db.transaction() as session:
                await ledger.append(session, type="upstream.acknowledged", actor=via.actor, sender=sender,
                                    details={"upstream_doc_id": item.doc_id, "messagetype": messagetype,
                                             "status": "done", "kept": False, "reason": "reporter-is-local",
                                             "envelope_sha256": envelope_sha256(data)})
            done.echoes += 1
            return
        try:
            if messagetype == "status":
                result = await self.intake.submit_status(sender, data, via=via)
            else:
                result = await self.intake.submit(sender, data, via=via)
        except GatewayError as refusal:
            if refusal.status >= 500:  # not the message's fault: nothing acknowledged, the round ends
                raise
            await self._refused(item, messagetype, data, refusal)
            done.refused += 1
            return
        await self.client.update_status(item.doc_id, "done")
        async with self.db.transaction() as session:
            await ledger.append(session, type="upstream.acknowledged", actor=via.actor, document=result.document,
                                details={"upstream_doc_id": item.doc_id, "messagetype": messagetype,
                                         "status": "done", "kept": True, "document": result.document,
                                         "already_here": not result.created})
        if result.created:
            done.accepted += 1
        else:
            done.already_here += 1
        if result.push and self.wake is not None:
            self.wake()

    async def _refused(self, item: ReceivedItem, messagetype: MessageType, data: bytes,
                       refusal: GatewayError) -> None:
        via = FromUpstream(self.via_system, item.doc_id)
        await self.refusals.record(
            event="status.refused" if messagetype == "status" else "envelope.refused", actor=via.actor, sender=None,
            error=refusal, details={"upstream_doc_id": item.doc_id, "from": item.from_code[:64],
                                    "envelope_sha256": envelope_sha256(data), "envelope_size": len(data)})
        description = f"{refusal.slug}: {refusal.detail or refusal.title}"
        await self.client.update_status(item.doc_id, "fail", description)
        async with self.db.transaction() as session:
            await ledger.append(session, type="upstream.acknowledged", actor=via.actor,
                                details={"upstream_doc_id": item.doc_id, "messagetype": messagetype,
                                         "status": "fail", "rule": refusal.slug})

    async def _sender(self, written: str) -> tuple[str, bool]:
        """The item's ``from`` as a register code (itself, or the agency an alias names; an unknown one is left
        as written, and intake refuses it: upstream-sender-unknown), and whether it is a local agency."""
        async with self.db.read() as session:
            agencies = AgencyRepository(session)
            code = written if is_valid_code(written) else (await agencies.alias_map()).get(written, written)
            agency = await agencies.get(code)
        return code, agency is not None and agency.delivery_mode != "upstream"

    # -- received instants -----------------------------------------------------------------------------------

    async def learn_received(self, done: Round) -> None:
        now = datetime.now(UTC)
        for forwarded in await self.receipts.due(now, BATCH):
            try:
                rows = await self.client.sent(forwarded.upstream_doc_id,
                                              "status" if forwarded.kind == "status" else "edoc")
            except UpstreamUnavailable:
                raise
            except UpstreamError as error:
                done.errors.append(f"getSentEdocList {forwarded.upstream_doc_id}: {error.slug}")
                await self.receipts.not_yet(forwarded, self._next_check(forwarded, now))
                continue
            done.delivered += await self._apply(forwarded, rows, now)

    async def _apply(self, forwarded: Forwarded, rows: list[SentItem], now: datetime) -> int:
        by_recipient = {row.to_code.strip(): row for row in rows}
        delivered = 0
        notes: dict[str, str] = {}
        for delivery_id, recipient in forwarded.deliveries.items():
            row = by_recipient.get(recipient)
            received_at = parse_upstream_time(row.received_time) if row is not None else None
            if row is not None and received_at is not None:
                reported = {"receive_status": row.receive_status[:40], "received_time": row.received_time[:40]}
                if await self.receipts.received(forwarded, delivery_id, received_at, reported,
                                                f"upstream:{self.via_system}"):
                    delivered += 1
            elif row is not None and row.receive_status.strip().lower() in ("fail", "failed", "dead", "error"):
                notes[delivery_id] = f"upstream reports {row.receive_status}: {row.receive_status_desc}"[:500]
        if delivered < len(forwarded.deliveries):
            await self.receipts.not_yet(forwarded, self._next_check(forwarded, now), notes)
        return delivered

    def _next_check(self, forwarded: Forwarded, now: datetime) -> datetime:
        waited = max(now - forwarded.forwarded_at, timedelta(0))
        interval = min(max(waited / 4, timedelta(seconds=self.interval)), MAX_CHECK_INTERVAL)
        return now + interval


@contextlib.asynccontextmanager
async def upstream_poller(settings: Settings, db: Database, intake: IntakeService, client: UpstreamClient | None,
                          wake: Callable[[], None] | None = None) -> AsyncIterator[UpstreamPoller | None]:
    """The poller of ``gateway serve`` (when it runs the workers) and ``gateway worker``; None without an
    upstream client."""
    if client is None:
        yield None
        return
    poller = UpstreamPoller(db, intake, client, settings, wake=wake)
    await poller.start()
    try:
        yield poller
    finally:
        await poller.stop()
