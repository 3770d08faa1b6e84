"""Reading the scalar values of edXML: text, dates, integers from code lists.

edXML dates carry no zone and mean Vietnam local time (+07:00). Some producers write ``dd/MM/yyyy``; it is
read leniently (a four-digit year at the end means day first: MM/dd is not a Vietnamese form) and always
written back as ``yyyy/MM/dd``. Errors name the field, never the value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import date, datetime, timedelta, timezone

from .errors import CodeListInvalid, DateInvalid, TextInvalid

VN_TZ = timezone(timedelta(hours=7), "+07:00")

_YMD = re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})")
_DMY = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_INT = re.compile(r"[0-9]{1,19}")


def _allowed_char(ch: str) -> bool:
    if ch in "\t\n\r":
        return True
    category = unicodedata.category(ch)
    # Cc: C0/C1 controls (C1 is the usual trace of legacy-encoded text decoded wrongly),
    # Cs: surrogates, Co: private use (TCVN3 fonts' glyph hacks), Cn: unassigned.
    return category not in ("Cc", "Cs", "Co", "Cn")


def clean_text(raw: str | None, field: str, *, max_chars: int, required: bool = False) -> str | None:
    """NFC-normalised, stripped text; None when absent or empty and not required."""
    if raw is None or not raw.strip():
        if required:
            raise TextInvalid(f"{field} must not be empty", field=field)
        return None
    text = unicodedata.normalize("NFC", raw.strip())
    # Each distinct character once: a paragraph of Vietnamese holds a few dozen (profiled on intake).
    if not all(_allowed_char(ch) for ch in set(text)):
        raise TextInvalid(f"{field} holds control or unassigned characters", field=field)
    if len(text) > max_chars:
        raise TextInvalid(f"{field} is longer than {max_chars} characters", field=field)
    return text


def required_text(raw: str | None, field: str, *, max_chars: int) -> str:
    text = clean_text(raw, field, max_chars=max_chars, required=True)
    assert text is not None  # required=True never returns None
    return text


def parse_date(raw: str | None, field: str) -> date:
    text = (raw or "").strip()
    m = _YMD.fullmatch(text)
    try:
        if m is not None:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        m = _DMY.fullmatch(text)
        if m is not None:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        pass
    raise DateInvalid(f"{field} is not a date in the form yyyy/MM/dd", field=field)


def parse_datetime(raw: str | None, field: str) -> datetime:
    """``yyyy/MM/dd HH:mm:ss`` (or ``dd/MM/yyyy HH:mm:ss``) in Vietnam local time, returned aware."""
    text = (raw or "").strip()
    parts = re.split(r"[ T]+", text, maxsplit=1)
    if len(parts) == 2:
        day = parse_date(parts[0], field)
        m = _TIME.fullmatch(parts[1])
        if m is not None:
            try:
                return datetime(
                    day.year,
                    day.month,
                    day.day,
                    int(m.group(1)),
                    int(m.group(2)),
                    int(m.group(3) or 0),
                    tzinfo=VN_TZ,
                )
            except ValueError:
                pass
    raise DateInvalid(f"{field} is not a date-time in the form yyyy/MM/dd HH:mm:ss", field=field)


def format_date(value: date) -> str:
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"


def format_datetime(value: datetime) -> str:
    """The edXML form: local time +07:00, no zone written."""
    if value.tzinfo is None:
        raise ValueError("format_datetime needs an aware datetime")
    return value.astimezone(VN_TZ).strftime("%Y/%m/%d %H:%M:%S")


def code(raw: str | None, field: str, allowed: Collection[int]) -> int:
    text = (raw or "").strip()
    if _INT.fullmatch(text) is None or int(text) not in allowed:
        raise CodeListInvalid(f"{field} is not in its code list", field=field)
    return int(text)


def integer(raw: str | None, field: str) -> int:
    text = (raw or "").strip()
    if _INT.fullmatch(text) is None:
        raise TextInvalid(f"{field} is not a non-negative integer", field=field)
    return int(text)
