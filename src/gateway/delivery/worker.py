"""The push worker: claims due deliveries, posts them outside any transaction, records each answer.

Runs inside ``gateway serve`` (the lifespan starts one when ``run_workers`` is on) and as ``gateway
worker`` processes; any number of them can share one PostgreSQL (claims use ``FOR UPDATE SKIP LOCKED``)
or one SQLite file (one writer at a time). Each worker keeps up to ``worker_concurrency`` attempts in
flight, claims as many as it has free slots, most urgent first, and sleeps ``worker_poll_seconds`` when
there is nothing due. While attempts are in flight it claims again once a quarter of its slots are free
(or a poll has gone by), not at each slot freed: every claim is a transaction that takes the ledger head,
and on a fan-out a stream of one-row claims queued behind the outcomes for it (issue 17's profile).

One attempt:

1. claim (a short transaction): the row becomes ``in_flight`` with a lease (``lease_owner`` = this worker,
   ``lease_until`` = now + ``lease_seconds``), ``attempts`` + 1, ledger ``delivery.in_flight``;
2. read the original bytes from the blob store (checked against their digest; once for all the recipients
   of a document, :class:`_Envelopes`) and POST them (no transaction open); while the request runs, the
   lease is renewed every third of ``lease_seconds``;
3. for a 2xx, build and sign the automatic status 01 (still no transaction), store it as a blob;
4. record the outcome (a short transaction, shared with the other outcomes that finish at the same moment:
   :mod:`gateway.db.group_commit`) only if the lease is still this worker's: ``delivered`` (+ the 01
   routed to the sender), ``retry_wait`` or ``dead``, each with its ledger entry. The outcomes of one
   transaction are written together (:func:`gateway.delivery.service.record_outcomes`): two statements
   for all their rows, one query for the 01s already reported, one ledger INSERT for the entries that need
   no 01, then each 01 accepted right after its ``delivery.delivered``.

A worker killed anywhere in between leaves at most a row ``in_flight`` whose lease then expires; the
next claim takes it again (the ledger names the worker it was taken from). The recipient may so get the
same delivery twice (at least once; the delivery id and gateway document id are the idempotency keys),
but only one outcome is ever recorded: exactly one ``delivery.delivered`` per document and recipient.
An unexpected error inside an attempt counts as a transient failure of that attempt, so it is bounded
by the same attempts and age as a recipient's failures.

With a forwarder (an upstream axis is configured), the worker also claims upstream deliveries, a document's
together, and carries each document there with one call (:mod:`gateway.delivery.forward`) in place of step 2;
step 3 does not apply (the upstream writes its own 01).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import httpx

from gateway.blobs import BlobStore
from gateway.config import Settings
from gateway.db import Database
from gateway.db.group_commit import GroupCommit
from gateway.logs import get_logger
from gateway.signing import GatewayKey

from . import metrics
from .arrival import build_arrival, original_of_job
from .backoff import Policy, decide_failure
from .body import delivery_body
from .forward import Forwarder, ForwardResult
from .push import PushResult, push
from .repository import Job
from .service import PushTransitions, dead, delivered, record_outcomes, retry

_log = get_logger("gateway.delivery")


def worker_id() -> str:
    """``host:pid:random``: unique per worker, readable in the ledger."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryWorker:
    def __init__(self, db: Database, blobs: BlobStore, key: GatewayKey, settings: Settings,
                 *, owner: str | None = None, client: httpx.AsyncClient | None = None,
                 forwarder: Forwarder | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.key = key
        self.settings = settings
        self.owner = owner or worker_id()
        self.concurrency = max(1, settings.worker_concurrency)
        self._claim_batch = max(1, self.concurrency // 4)
        self.lease = timedelta(seconds=max(settings.lease_seconds, 1.0))
        self.policy = Policy(
            max_attempts=max(1, settings.delivery_max_attempts),
            max_age=timedelta(seconds=settings.delivery_max_age_seconds),
            base=settings.delivery_backoff_base_seconds,
            cap=settings.delivery_backoff_cap_seconds,
        )
        self._client = client
        self._own_client = client is None
        self.forwarder = forwarder
        self.modes: tuple[str, ...] = ("push", "upstream") if forwarder is not None else ("push",)
        self._active: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Outcomes finishing together are recorded in one transaction (gateway.db.group_commit), written
        # together: two statements for their rows, one ledger INSERT (service.record_outcomes).
        self._outcomes: GroupCommit[bool] = GroupCommit(db, max_batch=self.concurrency * 2, apply=record_outcomes)
        self._envelopes = _Envelopes(blobs)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=self.concurrency * 2, max_keepalive_connections=self.concurrency),
                trust_env=False,
            )
        self._task = asyncio.create_task(self.run(), name=f"delivery-worker {self.owner}")
        _log.info("delivery worker started", worker=self.owner, concurrency=self.concurrency)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let attempts in flight finish for up to ``grace`` seconds, then cancel the rest
        (their leases expire and another worker takes them)."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._active:
            _done, pending = await asyncio.wait(set(self._active), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        await self._outcomes.close()
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        _log.info("delivery worker stopped", worker=self.owner)

    def notify(self) -> None:
        """Claim now rather than at the next poll (e.g. just after intake)."""
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        last_claim = -math.inf
        poll = self.settings.worker_poll_seconds
        while not self._stopping.is_set():
            free = self.concurrency - len(self._active)
            claimed = 0
            # While attempts are in flight, claim once a quarter of the slots are free rather than one slot at
            # a time (each claim is a transaction that takes the ledger head), or once a poll has gone by.
            gated = 0 < free < self._claim_batch and bool(self._active)
            if free > 0 and (not gated or time.monotonic() - last_claim >= poll):
                last_claim = time.monotonic()
                try:
                    jobs = await self.claim(free)
                    failures = 0
                except Exception as exc:  # the database is down or locked too long: wait, then try again
                    failures += 1
                    _log.error("delivery claim failed", worker=self.owner, error_type=type(exc).__name__,
                               error=str(exc)[:300])
                    jobs = []
                for unit in _units(jobs):
                    task = asyncio.create_task(self._carry(unit), name=f"delivery {unit[0].delivery_id}")
                    self._active.add(task)
                    task.add_done_callback(self._finished)
                claimed = len(jobs)
            if claimed and claimed == free:
                continue  # a full batch: there may be more due right now
            self._wake.clear()
            timeout = poll * (min(2**failures, 60) if failures else 1)
            if gated:
                timeout = min(timeout, max(0.0, last_claim + poll - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        self._wake.set()

    async def claim(self, limit: int) -> list[Job]:
        async with self.db.transaction() as session:
            return await PushTransitions(session).claim(self.owner, datetime.now(UTC), self.lease, limit, self.modes)

    async def run_once(self, limit: int | None = None) -> int:
        """Claim what is due and finish every attempt before returning (tests, and one-shot tools)."""
        temporary = self._client is None
        if temporary:
            self._client = httpx.AsyncClient(trust_env=False)
        try:
            jobs = await self.claim(limit or self.concurrency)
            await asyncio.gather(*(self._carry(unit) for unit in _units(jobs)))
        finally:
            if temporary and self._client is not None:
                await self._client.aclose()
                self._client = None
        return len(jobs)

    # -- one attempt -----------------------------------------------------------------------------------------

    async def _carry(self, unit: list[Job]) -> None:
        """A push job alone, or one document's upstream jobs together."""
        if unit[0].mode == "upstream":
            await self.forward(unit)
        else:
            await self.attempt(unit[0])

    async def attempt(self, job: Job) -> None:
        try:
            await self._attempt(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the lease expires and the delivery is claimed again
            _log.error("delivery attempt could not be recorded", worker=self.owner, delivery=job.delivery_id,
                       error_type=type(exc).__name__, error=str(exc)[:300])

    async def _attempt(self, job: Job) -> None:
        if job.endpoint is None:
            await self._record_dead(job, "no-endpoint", "the recipient has no push endpoint in the register", None)
            return
        keeper = asyncio.create_task(self._keep_lease(job))
        try:
            result = await self._post(job)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        metrics.LATENCY.labels(recipient=job.recipient).observe(result.duration)
        if result.outcome == "delivered":
            arrival: bytes | None = None
            if job.kind == "document":
                arrival = await asyncio.to_thread(self._store_arrival, job, result.received_at)
            recorded = await self._outcomes.run(delivered(
                job, result.received_at, result.http_status or 0, result.duration, arrival, self.key.certificate))
            self._count(recorded, "delivered", job.recipient)
            if recorded:
                metrics.DELIVERED.labels(mode="push").inc()
        elif result.outcome == "retry":
            decision = decide_failure(attempt=job.attempt, window_start=job.window_start, now=datetime.now(UTC),
                                      policy=self.policy, retry_after=result.retry_after)
            if decision.dead:
                await self._record_dead(job, decision.reason or "attempts-exhausted", result.error,
                                        result.http_status)
            else:
                recorded = await self._outcomes.run(retry(job, decision, result.error, result.http_status))
                self._count(recorded, "retry", job.recipient)
        else:
            await self._record_dead(job, "refused", result.error, result.http_status)
        _log.info("delivery attempt", worker=self.owner, delivery=job.delivery_id, attempt=job.attempt,
                  outcome=result.outcome, http_status=result.http_status, error=result.error)

    # -- one forward (a document's upstream deliveries) ----------------------------------------------------------

    async def forward(self, jobs: list[Job]) -> None:
        try:
            await self._forward(jobs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the leases expire and the deliveries are claimed again
            _log.error("forward could not be recorded", worker=self.owner, document=jobs[0].document,
                       error_type=type(exc).__name__, error=str(exc)[:300])

    async def _forward(self, jobs: list[Job]) -> None:
        first = jobs[0]
        if self.forwarder is None or first.multipart:
            reason = "no upstream is configured" if self.forwarder is None else \
                "its large attachments travel as multipart parts, which the upstream protocol cannot carry"
            for job in jobs:
                await self._record_dead(job, "not-forwardable", reason, None)
            return
        keepers = [asyncio.create_task(self._keep_lease(job)) for job in jobs]
        try:
            try:
                data = await asyncio.to_thread(self.blobs.read, first.envelope_sha256)
            except (OSError, ValueError) as exc:
                now = datetime.now(UTC)
                result = ForwardResult("retry", None, f"gateway error reading the stored bytes ({type(exc).__name__})",
                                       None, now, 0.0)
            else:
                result = await self.forwarder.forward(data, first.sender, first.kind)
        finally:
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        metrics.LATENCY.labels(recipient=metrics.UPSTREAM).observe(result.duration)
        if result.outcome == "forwarded":
            first_check = datetime.now(UTC) + timedelta(seconds=self.settings.upstream_poll_seconds)
            forwarder = self.forwarder
            recorded = await self._outcomes.run(lambda session: PushTransitions(session).forwarded(
                jobs, result, forwarder.upstream, first_check))
            self._count(recorded, "forwarded", metrics.UPSTREAM)
        elif result.outcome == "retry":
            for job in jobs:
                decision = decide_failure(attempt=job.attempt, window_start=job.window_start, now=datetime.now(UTC),
                                          policy=self.policy, retry_after=None)
                if decision.dead:
                    await self._record_dead(job, decision.reason or "attempts-exhausted", result.error,
                                            result.http_status)
                else:
                    self._count(await self._outcomes.run(retry(job, decision, result.error, result.http_status)),
                                "retry", metrics.UPSTREAM)
        else:
            for job in jobs:
                await self._record_dead(job, "refused", result.error, result.http_status)
        _log.info("forward attempt", worker=self.owner, document=first.document, deliveries=len(jobs),
                  attempt=first.attempt, outcome=result.outcome, upstream_doc_id=result.upstream_doc_id,
                  http_status=result.http_status, error=result.error)

    async def _post(self, job: Job) -> PushResult:
        assert self._client is not None
        try:
            envelope = await self._envelopes.read(job.envelope_sha256)
            if job.multipart:  # parses the envelope for its large parts
                body = await asyncio.to_thread(delivery_body, envelope, True, self.blobs, job.delivery_id)
            else:
                body = delivery_body(envelope, False, self.blobs, job.delivery_id)
        except (OSError, ValueError) as exc:
            now = datetime.now(UTC)
            return PushResult("retry", None, f"gateway error reading the stored bytes ({type(exc).__name__})",
                              None, now, 0.0)
        return await push(self._client, job, body, self.key, self.settings.delivery_timeout_seconds)

    def _store_arrival(self, job: Job, received_at: datetime) -> bytes:
        """The automatic 01 for ``job``'s document, built, signed and stored (one thread hop: all CPU and disk)."""
        arrival = build_arrival(original_of_job(job), job.recipient, job.recipient_name, received_at,
                                self.key.private_key, self.key.certificate)
        self.blobs.put(arrival)
        return arrival

    async def _record_dead(self, job: Job, reason: str, error: str, http_status: int | None) -> None:
        recorded = await self._outcomes.run(dead(job, reason, error, http_status))
        self._count(recorded, "dead", metrics.UPSTREAM if job.mode == "upstream" else job.recipient)
        if recorded:
            metrics.DEAD.labels(reason=reason).inc()
            _log.warning("delivery dead", worker=self.owner, delivery=job.delivery_id, recipient=job.recipient,
                         reason=reason, error=error)

    def _count(self, recorded: bool, outcome: str, recipient: str) -> None:
        metrics.ATTEMPTS.labels(outcome=outcome if recorded else "lease-lost", recipient=recipient).inc()
        if not recorded:
            _log.warning("delivery lease lost; outcome not recorded", worker=self.owner, outcome=outcome)

    async def _keep_lease(self, job: Job) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.transaction() as session:
                    if not await PushTransitions(session).renew(job, datetime.now(UTC) + self.lease):
                        return
            except Exception as exc:  # the attempt goes on; at worst the lease lapses and it is sent again
                _log.warning("delivery lease renewal failed", worker=self.owner, delivery=job.delivery_id,
                             error_type=type(exc).__name__)


class _Envelopes:
    """The original bytes of the documents being pushed, read from the blob store (and checked against their
    digest) once for all their recipients rather than once per attempt: a document to 500 recipients is read
    once, not 500 times. Small envelopes only (up to ``MAX_BYTES`` each, ``SIZE`` of them, most recent kept);
    a read that failed is done again by the next attempt."""

    SIZE = 8
    MAX_BYTES = 8 * 1024 * 1024

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._reads: OrderedDict[str, asyncio.Future[bytes]] = OrderedDict()

    async def read(self, sha256: str) -> bytes:
        reading = self._reads.get(sha256)
        if reading is None or (reading.done() and (reading.cancelled() or reading.exception() is not None)):
            reading = asyncio.ensure_future(asyncio.to_thread(self.blobs.read, sha256))
            self._reads[sha256] = reading
            while len(self._reads) > self.SIZE:
                self._reads.popitem(last=False)
        else:
            self._reads.move_to_end(sha256)
        data = await asyncio.shield(reading)  # an attempt cancelled while it waits leaves the read to the others
        if len(data) > self.MAX_BYTES and self._reads.get(sha256) is reading:
            del self._reads[sha256]
        return data


def _units(jobs: list[Job]) -> list[list[Job]]:
    """What one task carries: a push job alone; a document's upstream jobs together (one forward)."""
    units: list[list[Job]] = []
    forwards: dict[str, list[Job]] = {}
    for job in jobs:
        if job.mode == "upstream":
            if job.document not in forwards:
                forwards[job.document] = []
                units.append(forwards[job.document])
            forwards[job.document].append(job)
        else:
            units.append([job])
    return units


async def run_workers(settings: Settings, db: Database, blobs: BlobStore, key: GatewayKey,
                      forwarder: Forwarder | None = None,
                      alongside: Callable[[DeliveryWorker], AbstractAsyncContextManager[object]] | None = None,
                      ) -> None:
    """``gateway worker``: one worker until SIGTERM or SIGINT, then a graceful stop; ``alongside`` (the upstream
    poller, given the worker to wake) runs for as long as the worker does."""
    worker = DeliveryWorker(db, blobs, key, settings, forwarder=forwarder)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    try:
        async with alongside(worker) if alongside is not None else contextlib.nullcontext():
            await stop.wait()
    finally:
        await worker.stop()


@contextlib.asynccontextmanager
async def delivery_workers(
    settings: Settings, db: Database, blobs: BlobStore, key: GatewayKey, forwarder: Forwarder | None = None
) -> AsyncIterator[DeliveryWorker | None]:
    """The in-process worker of ``gateway serve`` (None when ``run_workers`` is off)."""
    if not settings.run_workers:
        yield None
        return
    worker = DeliveryWorker(db, blobs, key, settings, forwarder=forwarder)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()
