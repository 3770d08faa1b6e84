"""The operational figures: deliveries by state, the oldest waiting delivery, the ledger's head and its last
checkpoint, read from the database when asked (a ``/metrics`` scrape, the console's overview page).

Read from the database rather than counted in a process: with several worker processes (``gateway serve
--workers N``) and separate ``gateway worker`` processes, only the database knows the whole queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.documents.models import DELIVERY_STATES
from gateway.health.repository import HealthRepository

#: Deliveries the gateway has yet to hand over: not yet pushed (waiting, being attempted, waiting to retry), or
#: not yet fetched by a pull recipient (``pending``). ``fetched`` and ``forwarded`` wait on the recipient or the
#: upstream, not on the gateway, and are not counted as waiting.
WAITING_STATES = ("pending", "in_flight", "retry_wait")


@dataclass(frozen=True)
class Figures:
    #: every delivery state (:data:`gateway.documents.models.DELIVERY_STATES`), 0 when none
    deliveries_by_state: dict[str, int]
    dead: int
    #: seconds the oldest delivery in :data:`WAITING_STATES` has waited (since created or re-queued); None: none
    oldest_pending_seconds: float | None
    oldest_pending_delivery: str | None
    #: the ledger's last sequence number (its size is one more); -1 for an empty ledger
    ledger_head_seq: int
    last_checkpoint_size: int | None
    last_checkpoint_at: datetime | None
    last_checkpoint_age_seconds: float | None


async def operational_figures(session: AsyncSession, *, now: datetime | None = None) -> Figures:
    """The figures as the database holds them now (reads only: give it a ``Database.read()`` session)."""
    instant = now or datetime.now(UTC)
    repo = HealthRepository(session)
    counted = await repo.deliveries_by_state()
    by_state = {state: counted.get(state, 0) for state in DELIVERY_STATES}
    # a state unknown to this version (a newer migration's) is shown rather than dropped
    by_state.update({state: count for state, count in counted.items() if state not in by_state})
    oldest = await repo.oldest_waiting(WAITING_STATES)
    head = await repo.ledger_head_seq()
    checkpoint = await repo.last_checkpoint()
    return Figures(
        deliveries_by_state=by_state,
        dead=by_state["dead"],
        oldest_pending_seconds=None if oldest is None else max(0.0, (instant - oldest[1]).total_seconds()),
        oldest_pending_delivery=None if oldest is None else oldest[0],
        ledger_head_seq=-1 if head is None else int(head),
        last_checkpoint_size=None if checkpoint is None else int(checkpoint[0]),
        last_checkpoint_at=None if checkpoint is None else checkpoint[1],
        last_checkpoint_age_seconds=None if checkpoint is None else max(0.0, (instant - checkpoint[1]).total_seconds()),
    )
