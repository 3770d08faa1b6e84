"""Listing deliveries for operators: by state, recipient, sender, mode, document and time of the last change,
newest first or (for "what is stuck") oldest first, with keyset paging.

The cursor is opaque: url-safe base64 of the order and the last item's keys (``updated_at``, id); a cursor of the
other order, or one the gateway did not give out, is :class:`DeliveryCursorInvalid`. :func:`parse_delivery_filter`
makes a filter from raw strings (query parameters, console form fields: blank means "not given").
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.delivery.repository import DeliveryRepository
from gateway.delivery.schemas import DeliverySummary
from gateway.documents.models import DELIVERY_STATES
from gateway.documents.schemas import DeliveryState
from gateway.documents.search import parse_instant
from gateway.problems import GatewayError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MODES = ("push", "pull", "upstream")
Order = Literal["newest", "oldest"]


class DeliveryFilterInvalid(GatewayError):
    """A parameter of the delivery listing is malformed; ``field`` names it."""

    status = 422
    slug = "delivery-filter-invalid"
    title = "A delivery search parameter is invalid"


class DeliveryCursorInvalid(GatewayError):
    status = 400
    slug = "delivery-cursor-invalid"
    title = "The delivery search cursor is not one the gateway gave out (for this order)"


@dataclass(frozen=True)
class DeliveryFilter:
    state: str | None = None
    recipient: str | None = None  # agency code
    sender: str | None = None  # agency code: the document's sender
    mode: str | None = None  # push | pull | upstream
    document: str | None = None  # the gateway document id
    updated_from: datetime | None = None  # inclusive, aware
    updated_to: datetime | None = None  # exclusive, aware


@dataclass(frozen=True)
class DeliveryPage:
    items: list[DeliverySummary]
    next_cursor: str | None


def _given(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


def parse_delivery_filter(
    *,
    state: str | None = None,
    recipient: str | None = None,
    sender: str | None = None,
    mode: str | None = None,
    document: str | None = None,
    updated_from: str | None = None,
    updated_to: str | None = None,
) -> DeliveryFilter:
    """The filter from raw strings; blank ones are not given. Instants as in the document search (RFC 3339 with
    an offset, or a date meaning its midnight in Vietnam)."""
    for field, raw in (("recipient", recipient), ("sender", sender), ("document", document)):
        value = _given(raw)
        if value is not None and (len(value) > 64 or not value.isprintable()):
            raise DeliveryFilterInvalid(f"{field}: an agency code" if field != "document" else
                                        "document: a gateway document id", field=field)
    raw_from, raw_to = _given(updated_from), _given(updated_to)
    flt = DeliveryFilter(
        state=_given(state), recipient=_given(recipient), sender=_given(sender), mode=_given(mode),
        document=_given(document),
        updated_from=parse_instant(raw_from, "updated_from", DeliveryFilterInvalid) if raw_from else None,
        updated_to=parse_instant(raw_to, "updated_to", DeliveryFilterInvalid) if raw_to else None,
    )
    _check(flt)
    return flt


def _check(flt: DeliveryFilter) -> None:
    if flt.state is not None and flt.state not in DELIVERY_STATES:
        raise DeliveryFilterInvalid(f"state: one of {', '.join(DELIVERY_STATES)}", field="state")
    if flt.mode is not None and flt.mode not in MODES:
        raise DeliveryFilterInvalid("mode: push, pull or upstream", field="mode")
    for field, at in (("updated_from", flt.updated_from), ("updated_to", flt.updated_to)):
        if at is not None and at.tzinfo is None:
            raise DeliveryFilterInvalid(f"{field}: an instant with an offset", field=field)
    if flt.updated_from is not None and flt.updated_to is not None and flt.updated_from >= flt.updated_to:
        raise DeliveryFilterInvalid("updated_from: must be before updated_to", field="updated_from")


def encode_cursor(order: Order, updated_at: datetime, delivery: str) -> str:
    raw = json.dumps([order, updated_at.astimezone(UTC).isoformat(), delivery], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[datetime, str]:
    try:
        if len(cursor) > 300:
            raise ValueError("too long")
        given_order, updated_at, delivery = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if given_order != order or not isinstance(updated_at, str) or not isinstance(delivery, str):
            raise ValueError("shape")
        at = datetime.fromisoformat(updated_at)
        if at.tzinfo is None or len(delivery) > 36:
            raise ValueError("naive")
        return at.astimezone(UTC), delivery
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError, binascii.Error) as exc:
        raise DeliveryCursorInvalid("cursor: pass next_cursor as given, with the same order", field="cursor") from exc


async def search_deliveries(session: AsyncSession, flt: DeliveryFilter, *, limit: int = DEFAULT_LIMIT,
                            cursor: str | None = None, order: Order = "newest") -> DeliveryPage:
    """A page of deliveries by the time of their last change, newest first (``order="oldest"``: oldest first,
    the longest-waiting at the top). For operators: the caller has checked the role."""
    _check(flt)
    if not 1 <= limit <= MAX_LIMIT:
        raise DeliveryFilterInvalid(f"limit: an integer from 1 to {MAX_LIMIT}", field="limit")
    if order not in ("newest", "oldest"):
        raise DeliveryFilterInvalid("order: newest or oldest", field="order")
    after = decode_cursor(cursor, order) if cursor else None
    rows = await DeliveryRepository(session).search(
        state=flt.state, recipient=flt.recipient, sender=flt.sender, mode=flt.mode, document=flt.document,
        updated_from=flt.updated_from, updated_to=flt.updated_to, oldest_first=order == "oldest", after=after,
        limit=limit + 1,
    )
    page = rows[:limit]
    items = [
        DeliverySummary(
            id=d.id, document=d.document, document_id=doc.document_id, sender=doc.sender, recipient=d.recipient,
            mode=cast(Literal["push", "pull", "upstream"], d.mode), state=cast(DeliveryState, d.state),
            attempts=d.attempts, last_error=d.last_error, next_attempt_at=d.next_attempt_at, created_at=d.created_at,
            updated_at=d.updated_at, received_at=d.received_at,
        )
        for d, doc in page
    ]
    last = page[-1][0] if page else None
    return DeliveryPage(items=items, next_cursor=encode_cursor(order, last.updated_at, last.id)
                        if last is not None and len(rows) > limit else None)
