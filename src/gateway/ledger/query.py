"""Filters, cursors and limits of ``GET /v1/ledger``, pure: raw query strings in, typed values out.

Every malformed value is refused with :class:`~gateway.ledger.errors.LedgerFilterInvalid` naming the
parameter (never echoing it). The time range is half-open: ``from`` ≤ recorded_at < ``to``; instants are
RFC 3339 with an offset (``Z`` or ``±HH:MM``; a ``+`` that arrived as a space because it was not
URL-encoded is read as ``+``). The cursor is opaque to clients: it resumes after the last entry of a page.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from gateway.envelope.document import ORGAN_ID_PATTERN
from gateway.ledger.errors import LedgerFilterInvalid
from gateway.ledger.events import EVENT_TYPES

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[Zz]|[+-]\d{2}:\d{2})")
_DOCUMENT = re.compile(r"[A-Za-z0-9-]{1,36}")
_CURSOR_PREFIX = "seq:"


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """What ``GET /v1/ledger`` narrows to; None everywhere means every entry."""

    agency: str | None = None  # as sender or recipient
    document: str | None = None  # the gateway's document id
    document_id: str | None = None  # the edXML DocumentId
    type: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class Visibility:
    """Whose view: ``agency`` None is an operator (everything); else only entries about that agency's documents."""

    agency: str | None = None


def _instant(raw: str, field: str) -> datetime:
    value = raw.strip()
    if len(value) >= 6 and value[-6] == " ":
        value = value[:-6] + "+" + value[-5:]
    if not _INSTANT.fullmatch(value):
        raise LedgerFilterInvalid(f"{field}: an RFC 3339 instant with an offset, e.g. 2026-11-01T00:00:00+07:00",
                                  field=field)
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise LedgerFilterInvalid(f"{field}: not a real instant", field=field) from exc


def parse_filter(
    *,
    agency: str | None = None,
    document: str | None = None,
    document_id: str | None = None,
    type: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> LedgerFilter:
    if agency is not None and ORGAN_ID_PATTERN.fullmatch(agency) is None:
        raise LedgerFilterInvalid("agency: an agency code like 000.00.00.H41", field="agency")
    if document is not None and not _DOCUMENT.fullmatch(document):
        raise LedgerFilterInvalid("document: a gateway document id", field="document")
    if document_id is not None and not (
        0 < len(document_id) <= 300 and document_id.isprintable()
    ):
        raise LedgerFilterInvalid("document_id: 1 to 300 printable characters", field="document_id")
    if type is not None and type not in EVENT_TYPES:
        raise LedgerFilterInvalid("type: not a ledger event type (see gateway.ledger.events)", field="type")
    start = _instant(since, "from") if since is not None else None
    end = _instant(until, "to") if until is not None else None
    if start is not None and end is not None and start >= end:
        raise LedgerFilterInvalid("from: must be before to", field="from")
    return LedgerFilter(agency=agency, document=document, document_id=document_id, type=type, since=start,
                        until=end)


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or not 1 <= int(raw) <= maximum:
        raise LedgerFilterInvalid(f"limit: an integer from 1 to {maximum}", field="limit")
    return int(raw)


def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{after}".encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(raw: str | None) -> int | None:
    """The position a cursor resumes after, or None for the start."""
    if raw is None:
        return None
    try:
        if len(raw) > 64:
            raise ValueError("too long")
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError("not a cursor")
        digits = text[len(_CURSOR_PREFIX):]
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
            raise ValueError("not a position")
        return int(digits)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise LedgerFilterInvalid("cursor: not a cursor this gateway issued; use `next` as given",
                                  field="cursor") from exc
