"""The overview (``/console``): the day's and the month's traffic, the delivery queue, the ledger and its last
checkpoint, a "verify the ledger now" action, and the latest ledger events, kept live from ``/console/events``."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from gateway.deps import DatabaseDep, GatewayKeyDep, TimestampGateDep
from gateway.health.figures import operational_figures
from gateway.ledger.models import LedgerEntry
from gateway.ledger.stamping import TimestampGate
from gateway.ledger.verify import LedgerVerifier, VerifyReport
from gateway.webconsole.render import VN, render, vntime
from gateway.webconsole.repository import ConsoleReadRepository
from gateway.webconsole.session import CheckedConsoleUser, ConsoleUser, CurrentConsoleUser

router = APIRouter()

#: ledger events listed on the overview when it is opened (newer ones arrive through the feed)
LATEST_EVENTS = 20

#: delivery states in the order the overview shows them, with their Vietnamese labels
STATE_LABELS: dict[str, str] = {
    "pending": "Chờ gửi",
    "in_flight": "Đang gửi",
    "retry_wait": "Chờ gửi lại",
    "delivered": "Đã nhận",
    "fetched": "Đã tải (chờ xác nhận)",
    "forwarded": "Đã chuyển lên trục",
    "failed": "Bên nhận báo lỗi",
    "dead": "Thất bại (ngừng gửi)",
}


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    """The start of today and of this month in Việt Nam (+07:00), as aware instants."""
    local = now.astimezone(VN)
    today = datetime.combine(local.date(), time(), VN)
    return today, today.replace(day=1)


def event_item(entry: LedgerEntry) -> dict[str, Any]:
    """A ledger entry as the overview's event list shows it (and as ``/console/events`` sends it)."""
    return {"seq": entry.seq, "type": entry.type, "actor": entry.actor, "recorded_at": entry.recorded_at.isoformat(),
            "recorded_at_vn": vntime(entry.recorded_at), "document": entry.document,
            "document_id": entry.document_id, "sender": entry.sender, "recipient": entry.recipient}


async def stamping_state(gate: TimestampGate | None) -> dict[str, Any]:
    """The RFC 3161 stamping of checkpoints as the overview shows it: off (no GATEWAY_TSA_URL), ok, or failing
    (the oldest unstamped checkpoint older than GATEWAY_TSA_MAX_FAILURE_SECONDS: /readyz says 503 too)."""
    if gate is None:
        return {"state": "off"}
    return {"state": "failing" if await gate.failing() else "ok", "unstamped_seconds": await gate.failing_for(),
            "limit_seconds": gate.max_failure, "fail_closed": gate.fail_closed}


async def _overview(request: Request, db: DatabaseDep, gate: TimestampGate | None, user: ConsoleUser, *,
                    verified: VerifyReport | None = None) -> HTMLResponse:
    now = datetime.now(UTC)
    stamping = await stamping_state(gate)
    today, month = period_starts(now)
    async with db.read() as session:
        figures = await operational_figures(session, now=now)
        reads = ConsoleReadRepository(session)
        counts_today = await reads.documents_by_kind(today)
        counts_month = await reads.documents_by_kind(month)
        latest = [event_item(e) for e in await reads.latest_ledger(LATEST_EVENTS)]
    states = [(state, STATE_LABELS.get(state, state), figures.deliveries_by_state.get(state, 0))
              for state in [*STATE_LABELS, *sorted(set(figures.deliveries_by_state) - set(STATE_LABELS))]]
    return render(request, "overview.html", {
        "figures": figures, "today": counts_today, "month": counts_month, "month_start": month, "states": states,
        "events": latest, "last_seq": latest[0]["seq"] if latest else -1, "verified": verified, "now": now,
        "stamping": stamping,
    }, user=user)


async def overview(request: Request, user: CurrentConsoleUser, db: DatabaseDep,
                   gate: TimestampGateDep) -> HTMLResponse:
    """GET ``/console`` (added by ``webconsole.router``: an included router cannot have an empty path)."""
    return await _overview(request, db, gate, user)


@router.post("/verify", response_class=HTMLResponse)
async def verify(
    request: Request,
    user: CheckedConsoleUser,
    db: DatabaseDep,
    key: GatewayKeyDep,
    gate: TimestampGateDep,
    mode: Annotated[Literal["genesis", "checkpoint"], Form()] = "genesis",
) -> HTMLResponse:
    """The verification of ``GET /v1/ledger/verify`` (hash chain, signed checkpoints, Merkle roots), shown on the
    overview. Reading is not acting: auditors may run it too."""
    report = await LedgerVerifier(db, key.certificate).run(mode)
    return await _overview(request, db, gate, user, verified=report)
