"""Documents: the search (``/console/documents``) and one document's trace (``/console/documents/{id}``):
every ledger entry about it and about the messages that refer to it (statuses, a recall, an update or a
replacement), its recipients' states, attachments, deviations, and its signed receipt to download."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from gateway.deps import GatewayKeyDep, SessionDep
from gateway.documents.models import DELIVERY_STATES
from gateway.documents.receipts import receipt_data_of
from gateway.documents.repository import DocumentRepository
from gateway.documents.search import (
    DocumentCursorInvalid,
    DocumentFilterInvalid,
    DocumentPage,
    parse_document_filter,
    search_documents,
)
from gateway.documents.service import DocumentService
from gateway.envelope import build_receipt
from gateway.ledger.models import LedgerEntry
from gateway.webconsole.overview_pages import STATE_LABELS
from gateway.webconsole.render import render
from gateway.webconsole.repository import ConsoleReadRepository
from gateway.webconsole.session import CurrentConsoleUser

router = APIRouter()

PAGE_SIZE = 50
#: a trace shows at most this many ledger entries (a document has a handful per recipient)
TRACE_LIMIT = 5000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

#: Vietnamese names of the ledger events a trace shows
EVENT_LABELS: dict[str, str] = {
    "envelope.accepted": "Tiếp nhận văn bản (thời điểm gửi)",
    "status.accepted": "Tiếp nhận trạng thái",
    "status.auto_arrived": "Trạng thái 01 (Đã đến) do cổng tạo",
    "delivery.in_flight": "Bắt đầu lần gửi",
    "delivery.retry_scheduled": "Gửi lỗi, hẹn gửi lại",
    "delivery.delivered": "Đã nhận (thời điểm nhận)",
    "delivery.dead": "Ngừng gửi (thất bại)",
    "delivery.fetched": "Bên nhận đã tải về",
    "delivery.failed": "Bên nhận báo lỗi",
    "delivery.requeued": "Người vận hành cho gửi lại",
    "delivery.refused": "Yêu cầu bị từ chối",
    "upstream.forwarded": "Đã chuyển lên trục",
    "upstream.acknowledged": "Đã xác nhận với trục",
}

#: the details a timeline line shows, in this order (the rest of an entry's details stay in the ledger)
SHOWN_DETAILS = ("attempt", "http_status", "error", "reason", "mode", "received_at", "next_attempt_at", "from_state",
                 "status_code", "refers_to", "routed_to", "recipients", "business_doc_type", "rule", "worker")


def _end_of_day(raw: str | None) -> str | None:
    """A date given as the search's end is the whole of that day: the next midnight (the search's end is
    exclusive)."""
    if raw is not None and _DATE.fullmatch(raw.strip()):
        try:
            return (date.fromisoformat(raw.strip()) + timedelta(days=1)).isoformat()
        except ValueError:
            return raw  # not a real date: the search says so
    return raw


@router.get("/documents", response_class=HTMLResponse)
async def documents(
    request: Request,
    user: CurrentConsoleUser,
    session: SessionDep,
    document_id: Annotated[str, Query(max_length=400)] = "",
    sender: Annotated[str, Query(max_length=100)] = "",
    recipient: Annotated[str, Query(max_length=100)] = "",
    state: Annotated[str, Query(max_length=20)] = "",
    kind: Annotated[str, Query(max_length=20)] = "",
    sent_from: Annotated[str, Query(max_length=40)] = "",
    sent_to: Annotated[str, Query(max_length=40)] = "",
    q: Annotated[str, Query(max_length=400)] = "",
    cursor: Annotated[str, Query(max_length=400)] = "",
) -> HTMLResponse:
    form = {"document_id": document_id, "sender": sender, "recipient": recipient, "state": state, "kind": kind,
            "sent_from": sent_from, "sent_to": sent_to, "q": q}
    page: DocumentPage | None = None
    flash: str | None = None
    status = 200
    try:
        flt = parse_document_filter(document_id=document_id, sender=sender, recipient=recipient, state=state,
                                    kind=kind or None, sent_from=sent_from, sent_to=_end_of_day(sent_to), text=q)
        page = await search_documents(session, flt, user.principal, limit=PAGE_SIZE, cursor=cursor or None)
    except (DocumentFilterInvalid, DocumentCursorInvalid) as refused:
        flash, status = f"{refused.detail} ({refused.slug})", refused.status
    next_url = None
    if page is not None and page.next_cursor:
        next_url = "/console/documents?" + urlencode({**{k: v for k, v in form.items() if v},
                                                      "cursor": page.next_cursor})
    return render(request, "documents.html", {
        "form": form, "page": page, "flash": flash, "next_url": next_url, "states": DELIVERY_STATES,
        "state_labels": STATE_LABELS, "paged": bool(cursor),
    }, user=user, status_code=status)


def _details(entry: LedgerEntry) -> list[tuple[str, str]]:
    try:
        details = json.loads(entry.details)
    except ValueError:
        return []
    if not isinstance(details, dict):
        return []
    shown = []
    for key in SHOWN_DETAILS:
        value = details.get(key)
        if value is None or value == "" or value == []:
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        shown.append((key, text if len(text) <= 300 else text[:300] + "…"))
    return shown


@router.get("/documents/{id}", response_class=HTMLResponse)
async def trace(request: Request, id: str, user: CurrentConsoleUser, session: SessionDep) -> HTMLResponse:
    view = await DocumentService(session).view(id, user.principal)
    reads = ConsoleReadRepository(session)
    referring = list(await reads.referring(view.id))
    names = {view.id: view.document_id, **{d.id: d.document_id for d in referring}}
    entries = await reads.ledger_about(names.keys(), TRACE_LIMIT)
    timeline: list[dict[str, Any]] = [
        {"entry": e, "label": EVENT_LABELS.get(e.type, e.type), "details": _details(e),
         "about_other": e.document != view.id, "about": names.get(e.document or "", "")}
        for e in entries
    ]
    return render(request, "trace.html", {
        "doc": view, "timeline": timeline, "referring": referring, "state_labels": STATE_LABELS,
        "truncated": len(entries) >= TRACE_LIMIT,
    }, user=user)


@router.get("/documents/{id}/receipt")
async def receipt(id: str, user: CurrentConsoleUser, session: SessionDep, key: GatewayKeyDep) -> Response:
    """The document's signed receipt: the bytes intake answered with (rebuilt from the stored rows, as the proof
    bundle does: the same rows give the same bytes)."""
    document = await DocumentService(session).visible(id, user.principal)
    repo = DocumentRepository(session)
    data = receipt_data_of(document, await repo.attachments(document.id), await repo.deliveries(document.id))
    signed = await asyncio.to_thread(build_receipt, data, key.private_key, key.certificate)  # type: ignore[arg-type]
    return Response(signed, media_type="application/xml", headers={
        "Content-Disposition": f'attachment; filename="receipt-{document.id}.xml"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
