"""``/v1/inbox…`` (pull agencies), ``GET /v1/deliveries`` (operators) and ``POST /v1/deliveries/{id}/retry``
(admin); refusals of an acknowledgement or a re-queue are ledgered as ``delivery.refused``."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from gateway.delivery.body import delivery_body
from gateway.delivery.errors import (
    AckConflict,
    DeliveryNotFetched,
    DeliveryNotFound,
    DeliveryNotRetryable,
    InboxCursorInvalid,
)
from gateway.delivery.push import gateway_headers
from gateway.delivery.schemas import Ack, AckOut, DeliveryList, DeliveryOut, Inbox, InboxItem, Requeue
from gateway.delivery.search import DEFAULT_LIMIT as SEARCH_LIMIT
from gateway.delivery.search import MAX_LIMIT as SEARCH_MAX_LIMIT
from gateway.delivery.search import (
    DeliveryCursorInvalid,
    DeliveryFilterInvalid,
    parse_delivery_filter,
    search_deliveries,
)
from gateway.deps import (
    BlobsDep,
    CurrentAdmin,
    CurrentAgency,
    CurrentOperator,
    DeliveryDep,
    GatewayKeyDep,
    RefusalScope,
    SessionDep,
    WakeWorker,
    json_body,
    json_request_body,
    ledgered_refusals,
)
from gateway.documents.models import Delivery
from gateway.envelope.push_signature import H_REFERS_TO, H_SIGNATURE, SIGNED_HEADERS
from gateway.problem_handlers import problems
from gateway.problems import BodyTooLarge, Forbidden, Unauthenticated

router = APIRouter(tags=["delivery"])

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


AckRefusals = Annotated[RefusalScope, ledgered_refusals("delivery.refused", action="ack", delivery=None)]
RetryRefusals = Annotated[RefusalScope, ledgered_refusals("delivery.refused", action="retry", delivery=None)]


def _delivery_id(value: str) -> str:
    # Anything that is not a delivery id answers like an unknown one (and never reaches SQL or the ledger).
    if not _UUID.match(value):
        raise DeliveryNotFound()
    return value


def _out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(id=d.id, document=d.document, recipient=d.recipient,
                       mode="push" if d.mode == "push" else "upstream" if d.mode == "upstream" else "pull",
                       state=d.state,
                       attempts=d.attempts, next_attempt_at=d.next_attempt_at, received_at=d.received_at,
                       last_error=d.last_error, requeued_at=d.requeued_at)


# -- pull --------------------------------------------------------------------------------------------------------

@router.get("/v1/inbox", response_model=Inbox, responses=problems(Unauthenticated, Forbidden, InboxCursorInvalid))
async def inbox(
    agency: CurrentAgency,
    service: DeliveryDep,
    cursor: Annotated[str | None, Query(max_length=300, description="`next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Inbox:
    """Documents and statuses waiting for the caller (pull deliveries not yet acknowledged), most urgent
    first (Priority descending), then oldest first; keyset pagination with ``next``."""
    page = await service.inbox(agency, cursor, limit)
    return Inbox(
        items=[
            InboxItem(delivery_id=i.delivery.id, id=i.document.id, document_id=i.document.document_id,
                      kind="status" if i.document.kind == "status" else "document", sender=i.document.sender,
                      sent_at=i.document.sent_at, priority=i.delivery.priority,
                      state="fetched" if i.delivery.state == "fetched" else "pending",
                      status_code=i.document.status_code, refers_to=i.document.refers_to,
                      envelope_sha256=i.document.envelope_sha256, multipart=i.document.multipart)
            for i in page.items
        ],
        next=page.next,
    )


_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the original edXML bytes, or for a document whose large attachments travelled as parts, "
                       "multipart/form-data (part `envelope` + one part per large attachment); with the same "
                       "signed X-Gateway-* headers as a push delivery",
        "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            name: {"description": "as on a push delivery (the webhook `delivery`)", "required": name != H_REFERS_TO,
                   "schema": {"type": "string"}}
            for name in (*SIGNED_HEADERS, H_SIGNATURE, H_REFERS_TO)
        },
    }
}


@router.get("/v1/inbox/{delivery_id}", response_class=Response,
            responses={**_DOWNLOAD, **problems(Unauthenticated, Forbidden, DeliveryNotFound)})
async def download(delivery_id: str, agency: CurrentAgency, service: DeliveryDep, blobs: BlobsDep,
                   key: GatewayKeyDep) -> Response:
    """Download a delivery; the first download moves it from ``pending`` to ``fetched``."""
    delivery, document = await service.fetch(agency, _delivery_id(delivery_id))
    envelope = await asyncio.to_thread(blobs.read, document.envelope_sha256)
    body = await asyncio.to_thread(delivery_body, envelope, document.multipart, blobs, delivery.id)
    headers = gateway_headers(delivery_id=delivery.id, document=document.id, kind=document.kind,
                              sender=document.sender, recipient=delivery.recipient, sent_at=document.sent_at,
                              content_sha256=document.envelope_sha256, refers_to=document.refers_to,
                              key=key, now=datetime.now(UTC))
    if not body.parts:
        return Response(envelope, media_type=body.media_type, headers=headers)
    return StreamingResponse(body.chunks(), media_type=body.media_type,
                             headers={**headers, "Content-Length": str(body.length)})


@router.post("/v1/inbox/{delivery_id}/ack", response_model=AckOut,
             openapi_extra=json_request_body(Ack, required=True),
             responses=problems(Unauthenticated, Forbidden, BodyTooLarge, DeliveryNotFound, DeliveryNotFetched,
                                AckConflict))
async def acknowledge(delivery_id: str, request: Request, agency: CurrentAgency, refusals: AckRefusals,
                      service: DeliveryDep, wake_worker: WakeWorker) -> AckOut:
    """``done``: the received instant is now (Điều 11.2) and the sender gets status 01; ``fail``: the
    recipient's system could not take it (reason kept). Repeating the same acknowledgement is harmless."""
    checked = _delivery_id(delivery_id)
    refusals.note(delivery=checked)
    ack = await json_body(request, Ack, required=True)
    assert ack is not None
    result = await service.ack(agency, checked, ack.result, ack.reason)
    if result.changed:
        wake_worker()
    d = result.delivery
    return AckOut(delivery_id=d.id, state=d.state, received_at=d.received_at,
                  changed=result.changed)


# -- operators ---------------------------------------------------------------------------------------------------

@router.get("/v1/deliveries", response_model=DeliveryList,
            responses=problems(Unauthenticated, Forbidden, DeliveryFilterInvalid, DeliveryCursorInvalid))
async def list_deliveries(
    operator: CurrentOperator,
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=20, description="a delivery state")] = None,
    recipient: Annotated[str | None, Query(max_length=64, description="the recipient's agency code")] = None,
    sender: Annotated[str | None, Query(max_length=64, description="the document sender's agency code")] = None,
    mode: Annotated[str | None, Query(max_length=10, description="push, pull or upstream")] = None,
    document: Annotated[str | None, Query(max_length=64, description="the gateway document id")] = None,
    updated_from: Annotated[str | None, Query(
        max_length=40, description="last changed at or after: RFC 3339 instant with offset, or a date (midnight "
        "+07:00)")] = None,
    updated_to: Annotated[str | None, Query(max_length=40, description="last changed before (exclusive)")] = None,
    order: Annotated[Literal["newest", "oldest"], Query(
        description="newest (default) or oldest first: oldest with a state lists what waits longest")] = "newest",
    limit: Annotated[int, Query(ge=1, le=SEARCH_MAX_LIMIT, description="deliveries per page")] = SEARCH_LIMIT,
    cursor: Annotated[str | None, Query(max_length=300, description="`next_cursor` of the previous page")] = None,
) -> DeliveryList:
    """Deliveries by the time of their last change, with keyset paging (operators: admin and auditor)."""
    flt = parse_delivery_filter(state=state, recipient=recipient, sender=sender, mode=mode, document=document,
                                updated_from=updated_from, updated_to=updated_to)
    page = await search_deliveries(session, flt, limit=limit, cursor=cursor, order=order)
    return DeliveryList(items=page.items, next_cursor=page.next_cursor)


@router.post("/v1/deliveries/{delivery_id}/retry", response_model=DeliveryOut,
             openapi_extra=json_request_body(Requeue, required=False),
             responses=problems(Unauthenticated, Forbidden, BodyTooLarge, DeliveryNotFound, DeliveryNotRetryable))
async def retry(delivery_id: str, request: Request, admin: CurrentAdmin, refusals: RetryRefusals,
                service: DeliveryDep, wake_worker: WakeWorker) -> DeliveryOut:
    """Re-queue a dead push delivery (or a failed pull one): attempts start again from zero and the age
    bound counts from now; the register's current delivery mode applies. Optional body: ``{"reason"}``."""
    checked = _delivery_id(delivery_id)
    refusals.note(delivery=checked)
    body = await json_body(request, Requeue, required=False)
    requeued = await service.requeue(admin, checked, body.reason if body else None)
    wake_worker()
    return _out(requeued)
