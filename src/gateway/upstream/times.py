"""Instants as an upstream axis writes them in its lists (``receivedTime``, ``created_time`` ...).

Neither VXP.md nor the captured requests fix a form (the SDK keeps these fields as strings), so the forms seen
in VXP software are read: ISO 8601 with or without a zone and fraction (the gateway's own face writes
``2026-11-28T23:35:28.419+07:00``), ``yyyy-MM-dd HH:mm:ss[.fff]``, ``dd/MM/yyyy HH:mm:ss`` and
``dd-MM-yyyy HH:mm:ss``, and Unix epoch milliseconds (13 digits). A time without a zone is Vietnam time. Anything
else, or empty, is None: the caller treats the instant as not reported (it never invents one).
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.vxp.protocol import VIETNAM

_DAY_FIRST = ("%d/%m/%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S.%f", "%d-%m-%Y %H:%M:%S.%f")
#: the earliest and latest instants believed (a year 1 or 9999 is a placeholder, not a received instant)
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def parse_upstream_time(text: str) -> datetime | None:
    value = text.strip()
    if not value or len(value) > 40:
        return None
    moment: datetime | None = None
    if value.isascii() and value.isdigit() and len(value) == 13:
        moment = datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            for form in _DAY_FIRST:
                try:
                    moment = datetime.strptime(value, form)
                    break
                except ValueError:
                    continue
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=VIETNAM)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 in a zone east of UTC
        return None
    return moment if _EARLIEST <= moment < _LATEST else None
