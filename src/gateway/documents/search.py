"""Searching documents: by DocumentId, sender, recipient, delivery state, kind, sent instant and subject text,
newest first, with keyset paging; an agency finds only what it sent or received, operators everything.

The filter is typed (:class:`DocumentFilter`); :func:`parse_document_filter` makes one from raw strings (query
parameters, console form fields: blank means "not given") and refuses a bad value with
:class:`DocumentFilterInvalid` naming the parameter, never echoing it. The cursor is opaque: url-safe base64 of
the last item's keys (sent instant, id); one the gateway did not give out is :class:`DocumentCursorInvalid`.

Subject text: contained, case-insensitive for ASCII and Vietnamese letters on both databases (the fold in
``documents/repository.py``: other letters match as written). The query is read as composed (NFC) and, for text
stored decomposed (NFD, as some software sends it), also as decomposed; text mixing the two forms in one word
is not matched.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Literal, cast

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.documents.models import DELIVERY_STATES, Document
from gateway.documents.repository import SUBJECT_FOLD, DocumentRepository
from gateway.documents.schemas import DeliveryState, DocumentSummary, DocumentView
from gateway.documents.service import DocumentService
from gateway.principal import Principal
from gateway.problems import GatewayError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
VN_TZ = timezone(timedelta(hours=7), "+07:00")

_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:[Zz]|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURSOR_LIMIT = 300


class DocumentFilterInvalid(GatewayError):
    """A parameter of the document search is malformed; ``field`` names it."""

    status = 422
    slug = "document-filter-invalid"
    title = "A document search parameter is invalid"


class DocumentCursorInvalid(GatewayError):
    status = 400
    slug = "document-cursor-invalid"
    title = "The document search cursor is not one the gateway gave out"


@dataclass(frozen=True)
class DocumentFilter:
    """What a document search narrows to; None everywhere means every (visible) document."""

    document_id: str | None = None  # edXML DocumentId, exact
    sender: str | None = None  # agency code
    recipient: str | None = None  # agency code (has a delivery to it)
    state: str | None = None  # a delivery state: at least one delivery (to ``recipient``, if given) is in it
    kind: str | None = None  # "document" | "status"
    sent_from: datetime | None = None  # inclusive, aware
    sent_to: datetime | None = None  # exclusive, aware
    text: str | None = None  # subject contains, case-insensitive (module docstring)


@dataclass(frozen=True)
class DocumentPage:
    items: list[DocumentSummary]
    next_cursor: str | None


# -- parsing (pure) ----------------------------------------------------------------------------------------------

def parse_instant(raw: str, field: str, error: type[GatewayError]) -> datetime:
    """An RFC 3339 instant with an offset (a ``+`` that arrived as a space is read as ``+``), or a date
    ``YYYY-MM-DD`` meaning its midnight in Vietnam (+07:00)."""
    value = raw.strip()
    if len(value) >= 6 and value[-6] == " ":
        value = value[:-6] + "+" + value[-5:]
    if not (_DATE.fullmatch(value) or _INSTANT.fullmatch(value)):
        raise error(f"{field}: an RFC 3339 instant with an offset (2026-11-01T08:00:00+07:00) or a date "
                    "(2026-11-01, midnight in Vietnam)", field=field)
    try:
        if _DATE.fullmatch(value):
            at = datetime.combine(date.fromisoformat(value), time(), VN_TZ)
        else:
            at = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        return at.astimezone(UTC)  # in range as UTC too (year 1 at +07:00 is not), as the database stores it
    except (ValueError, OverflowError) as exc:
        raise error(f"{field}: not a real instant", field=field) from exc


def _given(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()


def _code(value: str | None, field: str) -> str | None:
    code = _given(value)
    if code is not None and (len(code) > 64 or not code.isprintable()):
        raise DocumentFilterInvalid(f"{field}: an agency code", field=field)
    return code


def parse_document_filter(
    *,
    document_id: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    state: str | None = None,
    kind: str | None = None,
    sent_from: str | None = None,
    sent_to: str | None = None,
    text: str | None = None,
) -> DocumentFilter:
    """The filter from raw strings; blank ones are not given. ``kind``: document, status, or any (None)."""
    doc_id = _given(document_id)
    if doc_id is not None and (len(doc_id) > 300 or not doc_id.isprintable()):
        raise DocumentFilterInvalid("document_id: 1 to 300 printable characters", field="document_id")
    wanted_state = _given(state)
    if wanted_state is not None and wanted_state not in DELIVERY_STATES:
        raise DocumentFilterInvalid(f"state: one of {', '.join(DELIVERY_STATES)}", field="state")
    wanted_kind = _given(kind)
    if wanted_kind == "any":
        wanted_kind = None
    if wanted_kind is not None and wanted_kind not in ("document", "status"):
        raise DocumentFilterInvalid("kind: document, status or any", field="kind")
    raw_from, raw_to = _given(sent_from), _given(sent_to)
    start = parse_instant(raw_from, "sent_from", DocumentFilterInvalid) if raw_from else None
    end = parse_instant(raw_to, "sent_to", DocumentFilterInvalid) if raw_to else None
    if start is not None and end is not None and start >= end:
        raise DocumentFilterInvalid("sent_from: must be before sent_to", field="sent_from")
    words = _given(text)
    if words is not None and (len(words) > 200 or not words.isprintable()):
        raise DocumentFilterInvalid("q: 1 to 200 printable characters", field="q")
    return DocumentFilter(document_id=doc_id, sender=_code(sender, "sender"), recipient=_code(recipient, "recipient"),
                          state=wanted_state, kind=wanted_kind, sent_from=start, sent_to=end, text=words)


def subject_needles(text: str) -> list[str]:
    """The folded forms of ``text`` a subject is searched for: composed, and decomposed when that differs."""
    composed = unicodedata.normalize("NFC", text).translate(SUBJECT_FOLD)
    decomposed = unicodedata.normalize("NFD", composed)
    return [composed] if decomposed == composed else [composed, decomposed]


def encode_cursor(document: Document) -> str:
    raw = json.dumps([document.sent_at.astimezone(UTC).isoformat(), document.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        if len(cursor) > _CURSOR_LIMIT:
            raise ValueError("too long")
        sent_at, document = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(sent_at, str) or not isinstance(document, str) or len(document) > 36:
            raise ValueError("shape")
        at = datetime.fromisoformat(sent_at)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at.astimezone(UTC), document
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError, binascii.Error) as exc:
        raise DocumentCursorInvalid("cursor: pass next_cursor as given", field="cursor") from exc


def _checked_filter(flt: DocumentFilter, limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise DocumentFilterInvalid(f"limit: an integer from 1 to {MAX_LIMIT}", field="limit")
    for field, at in (("sent_from", flt.sent_from), ("sent_to", flt.sent_to)):
        if at is not None and at.tzinfo is None:
            raise DocumentFilterInvalid(f"{field}: an instant with an offset", field=field)
    if flt.state is not None and flt.state not in DELIVERY_STATES:
        raise DocumentFilterInvalid(f"state: one of {', '.join(DELIVERY_STATES)}", field="state")
    if flt.kind is not None and flt.kind not in ("document", "status"):
        raise DocumentFilterInvalid("kind: document or status", field="kind")


# -- the search ----------------------------------------------------------------------------------------------------

async def _page(session: AsyncSession, flt: DocumentFilter, principal: Principal, limit: int,
                cursor: str | None) -> tuple[list[Document], str | None]:
    _checked_filter(flt, limit)
    after = decode_cursor(cursor) if cursor else None
    if not principal.is_operator and principal.agency_code is None:
        return [], None
    rows = list(await DocumentRepository(session).search(
        document_id=flt.document_id, sender=flt.sender, recipient=flt.recipient, state=flt.state, kind=flt.kind,
        sent_from=flt.sent_from, sent_to=flt.sent_to,
        subject_contains=subject_needles(flt.text) if flt.text else (),
        visible_to=None if principal.is_operator else principal.agency_code, after=after, limit=limit + 1,
    ))
    documents = rows[:limit]
    return documents, encode_cursor(documents[-1]) if len(rows) > limit else None


async def search_documents(session: AsyncSession, flt: DocumentFilter, principal: Principal, *,
                           limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> DocumentPage:
    """A page of summaries, newest first; ``cursor`` is the previous page's ``next_cursor``."""
    documents, next_cursor = await _page(session, flt, principal, limit, cursor)
    deliveries = await DocumentRepository(session).deliveries_of([d.id for d in documents])
    states: dict[str, dict[str, DeliveryState]] = {d.id: {} for d in documents}
    for delivery in deliveries:
        states[delivery.document][delivery.recipient] = cast(DeliveryState, delivery.state)
    return DocumentPage(
        items=[
            DocumentSummary(
                id=d.id, document_id=d.document_id, kind=cast(Literal["document", "status"], d.kind),
                sender=d.sender, subject=d.subject, code=d.code, sent_at=d.sent_at,
                recipients=sorted(states[d.id]), states=states[d.id], status_code=d.status_code,
                multipart=d.multipart, deviations=len(json.loads(d.deviations or "[]")),
            )
            for d in documents
        ],
        next_cursor=next_cursor,
    )


async def search_document_views(session: AsyncSession, flt: DocumentFilter, principal: Principal, *,
                                limit: int = DEFAULT_LIMIT, cursor: str | None = None
                                ) -> tuple[list[DocumentView], str | None]:
    """The same page as full document views (``GET /v1/documents``, whose items have always been views):
    (views, next cursor)."""
    documents, next_cursor = await _page(session, flt, principal, limit, cursor)
    service = DocumentService(session)
    return [await service.view(d.id, principal) for d in documents], next_cursor
