"""Deliveries (``/console/deliveries``): the dead ones and those stuck waiting, or every delivery in one state,
and the re-queue (retry) an admin may order, through the very service ``POST /v1/deliveries/{id}/retry`` calls:
the re-queue is ledgered (``delivery.requeued``) with the operator as actor, and a refused one
(``delivery.refused``) as the API's is."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway.delivery.errors import DeliveryNotFound
from gateway.delivery.search import (
    DeliveryCursorInvalid,
    DeliveryFilter,
    DeliveryFilterInvalid,
    DeliveryPage,
    parse_delivery_filter,
    search_deliveries,
)
from gateway.deps import DeliveryDep, RefusalsDep, SessionDep, WakeWorker
from gateway.documents.models import DELIVERY_STATES
from gateway.problems import GatewayError
from gateway.webconsole.overview_pages import STATE_LABELS
from gateway.webconsole.render import SECURITY_HEADERS, render
from gateway.webconsole.session import ConsoleAdmin, CurrentConsoleUser

router = APIRouter()

PAGE_SIZE = 50
#: a pending or retry_wait delivery unchanged for this long is listed as stuck (the page's default)
STUCK_MINUTES = 15
RETRYABLE = ("dead", "failed")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries(
    request: Request,
    user: CurrentConsoleUser,
    session: SessionDep,
    state: Annotated[str, Query(max_length=20)] = "",
    recipient: Annotated[str, Query(max_length=100)] = "",
    sender: Annotated[str, Query(max_length=100)] = "",
    stuck_minutes: Annotated[int, Query(ge=1, le=100_000)] = STUCK_MINUTES,
    cursor: Annotated[str, Query(max_length=400)] = "",
    done: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    """With ``state``: every delivery in that state, newest change first, paged. Without: the dead ones, and
    the pending and retry_wait ones unchanged for ``stuck_minutes``, longest waiting first."""
    sections: list[tuple[str, str, DeliveryPage, str | None]] = []  # (key, title, page, next page url)
    flash: str | None = None
    status = 200
    try:
        if state:
            flt = parse_delivery_filter(state=state, recipient=recipient, sender=sender)
            page = await search_deliveries(session, flt, limit=PAGE_SIZE, cursor=cursor or None)
            nxt = None
            if page.next_cursor:
                nxt = "/console/deliveries?" + urlencode({k: v for k, v in (
                    ("state", state), ("recipient", recipient), ("sender", sender),
                    ("cursor", page.next_cursor)) if v})
            sections.append((state, STATE_LABELS.get(state, state), page, nxt))
        else:
            base = parse_delivery_filter(recipient=recipient, sender=sender)
            sections.append(("dead", STATE_LABELS["dead"],
                             await search_deliveries(session, _with(base, state="dead"), limit=PAGE_SIZE),
                             "/console/deliveries?state=dead"))
            cutoff = datetime.now(UTC) - timedelta(minutes=stuck_minutes)
            for waiting in ("pending", "retry_wait"):
                page = await search_deliveries(session, _with(base, state=waiting, updated_to=cutoff),
                                               limit=PAGE_SIZE, order="oldest")
                sections.append((waiting, f"{STATE_LABELS[waiting]} quá {stuck_minutes} phút", page,
                                 f"/console/deliveries?state={waiting}"))
    except (DeliveryFilterInvalid, DeliveryCursorInvalid) as refused:
        flash, status = f"{refused.detail} ({refused.slug})", refused.status
    return render(request, "deliveries.html", {
        "sections": sections, "flash": flash, "state": state, "states": DELIVERY_STATES, "state_labels": STATE_LABELS,
        "recipient": recipient, "sender": sender, "stuck_minutes": stuck_minutes, "retryable": RETRYABLE,
        "done": done if _UUID.fullmatch(done) else "",
    }, user=user, status_code=status)


def _with(flt: DeliveryFilter, *, state: str, updated_to: datetime | None = None) -> DeliveryFilter:
    return DeliveryFilter(state=state, recipient=flt.recipient, sender=flt.sender, mode=flt.mode,
                          document=flt.document, updated_from=flt.updated_from, updated_to=updated_to)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(
    delivery_id: str,
    user: ConsoleAdmin,
    service: DeliveryDep,
    refusals: RefusalsDep,
    wake_worker: WakeWorker,
    reason: Annotated[str, Form(max_length=500)] = "",
    back: Annotated[str, Form(max_length=40)] = "",
) -> RedirectResponse:
    """Re-queue a dead (push) or failed (pull) delivery as ``POST /v1/deliveries/{id}/retry`` does; a refusal is
    ledgered as the API's is (``delivery.refused``, action retry) and shown as an error page."""
    try:
        if not _UUID.fullmatch(delivery_id):
            raise DeliveryNotFound()  # never reaches SQL or the ledger, as in the API
        await service.requeue(user.principal, delivery_id, reason.strip() or None)
    except GatewayError as error:
        if _UUID.fullmatch(delivery_id):
            await refusals.record(event="delivery.refused", actor=user.principal.actor, sender=None, error=error,
                                  details={"action": "retry", "delivery": delivery_id})
        raise
    wake_worker()
    target = {"done": delivery_id}
    if back in DELIVERY_STATES:
        target["state"] = back
    return RedirectResponse("/console/deliveries?" + urlencode(target), status_code=303, headers=SECURITY_HEADERS)
