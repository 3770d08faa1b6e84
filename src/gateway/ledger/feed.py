"""The ledger as a live feed: every entry a caller may see, in seq order, as it is committed.

``GET /v1/events`` (``gateway.ledger.events_endpoint``) serves it as Server-Sent Events, and the web
console's overview follows it through its own route; both call :func:`follow`, whose docstring is the
contract. The feed polls: one short read per ``poll_seconds`` (the primary key alone while nothing is new),
with no session or connection held between polls, so an idle stream costs the database next to nothing and
a stream never holds a pool connection while its client is slow.

Nothing missed, nothing twice: the position is the ledger's seq, and an entry is yielded only once every
seq below it has been read. Appends take seq = head + 1 under the head lock, held from the first append of a
transaction to its commit (``gateway.ledger.service``; the group commit of ``gateway.db.group_commit`` is one
such transaction), and on PostgreSQL a transaction is visible to new snapshots before its locks are released;
on SQLite writers are serialized by ``BEGIN IMMEDIATE``. So a reader that sees seq N+1 committed sees N too,
and the ledger has no gaps (seqs are never drawn from a sequence, so a rollback leaves none). The feed does not
rely on it: it reads the seqs first and advances only over the contiguous run, re-reading a gap at the next
poll; a gap still there after ``gap_wait_seconds`` cannot be a commit in flight (none takes that long to become
visible once a later seq is) and is passed, with a warning, so a damaged ledger cannot stall every stream.

Also here: the per-process cap on open streams (:class:`StreamSlots`) and the feed's refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from gateway.db import Database
from gateway.ledger.models import LedgerEntry
from gateway.ledger.query import LedgerFilter, Visibility
from gateway.ledger.repository import LedgerRepository
from gateway.logs import get_logger
from gateway.problems import GatewayError, ServiceUnavailable

#: entries read per poll at most; a backlog is read batch after batch without sleeping
BATCH = 500
#: how long a gap below a committed seq is waited for before it is passed (see the module docstring)
GAP_WAIT_SECONDS = 5.0

_log = get_logger("gateway.ledger.feed")


class LastEventIdInvalid(GatewayError):
    """``Last-Event-ID`` is not an event id this gateway issued: a ledger seq, a decimal integer from 0 to the
    ledger's head."""

    status = 400
    slug = "last-event-id-invalid"
    title = "Last-Event-ID is not an event id of this gateway"


class EventStreamsExhausted(ServiceUnavailable):
    """This process serves as many event streams as ``GATEWAY_EVENTS_MAX_STREAMS``; answered with Retry-After."""

    slug = "event-streams-exhausted"
    title = "Too many event streams are open; retry later"


class StreamSlots:
    """At most ``limit`` open streams per process: :meth:`take` before a stream starts, :meth:`give_back` after
    it ends, whatever ends it."""

    def __init__(self, limit: int, retry_after: int = 5) -> None:
        if limit < 1:
            raise ValueError("the stream limit must be at least 1")
        self.limit = limit
        self.retry_after = retry_after
        self.open = 0

    def take(self) -> None:
        """A slot, or :class:`EventStreamsExhausted` (with ``retry_after``) when none is free."""
        if self.open >= self.limit:
            raise EventStreamsExhausted(
                f"this gateway process serves {self.limit} event streams at once; retry after {self.retry_after} s",
                retry_after=self.retry_after)
        self.open += 1

    def give_back(self) -> None:
        self.open = max(0, self.open - 1)


async def head_seq(db: Database) -> int:
    """The committed head's seq; -1 for an empty ledger."""
    async with db.read() as session:
        return await LedgerRepository(session).size() - 1


def _contiguous_end(position: int, seqs: Sequence[int]) -> int:
    """The last seq of the run ``position + 1, position + 2, …`` at the start of ``seqs``; ``position`` if none."""
    end = position
    for seq in seqs:
        if seq != end + 1:
            break
        end = seq
    return end


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def follow(
    db: Database,
    visibility: Visibility,
    *,
    after: int | None,
    types: frozenset[str] | None = None,
    poll_seconds: float = 0.5,
    stop: asyncio.Event | None = None,
    batch: int = BATCH,
    gap_wait_seconds: float = GAP_WAIT_SECONDS,
) -> AsyncIterator[LedgerEntry]:
    """The ledger entries ``visibility`` may see, with seq above ``after``, in seq order, for ever.

    - ``visibility``: exactly ``GET /v1/ledger``'s (:class:`~gateway.ledger.query.Visibility`: an operator sees
      everything; an agency the entries naming it and those about documents it sent or received, as the
      database stands when the entry is read).
    - ``after``: resume after this seq (a client's last event id; 0 replays the whole ledger after its genesis
      entry). None starts at the head as it is now: only entries committed from then on.
    - ``types``: only entries of these types (validate them against ``gateway.ledger.events.EVENT_TYPES``
      first); None is every type.
    - Each entry is yielded once, none is skipped (see the module docstring), and every seq below it has been
      passed: a consumer that remembers the last seq it handled and calls again with ``after=`` that seq
      misses nothing and gets nothing twice.
    - Each poll is one short read (:meth:`Database.read`); no session or connection is held between polls or
      while the consumer handles an entry. While nothing is new it sleeps ``poll_seconds``.
    - It ends only when ``stop`` is set (checked before every entry and during every sleep) or when the
      consumer closes it (``aclose()``, or a cancelled task: nothing to clean up but the generator).
    """
    position = await head_seq(db) if after is None else after
    gap: tuple[int, float] | None = None  # the missing seq waited for, since when
    while stop is None or not stop.is_set():
        async with db.read() as session:
            repo = LedgerRepository(session)
            seqs = await repo.seqs_after(position, batch)
            end = _contiguous_end(position, seqs)
            beyond = [seq for seq in seqs if seq > end]
            if not beyond:
                gap = None
            elif gap is None or gap[0] != end + 1:
                gap = (end + 1, time.monotonic())
            elif time.monotonic() - gap[1] >= gap_wait_seconds:
                _log.warning("ledger gap passed by the event feed", missing_seq=gap[0], waited_seconds=gap_wait_seconds)
                end, gap = _contiguous_end(beyond[0] - 1, beyond), None
            entries: Sequence[LedgerEntry] = ()
            if end > position:
                entries = await repo.page(LedgerFilter(), visibility, after=position, limit=end - position,
                                          upto=end, types=types)
        for entry in entries:
            if stop is not None and stop.is_set():
                return
            yield entry
        progressed, position = end > position, end
        if len(seqs) < batch or not progressed:
            await _pause(poll_seconds, stop)
