"""``/console/events``: the overview's live list, the ledger feed (:func:`gateway.ledger.feed.follow`, as
``GET /v1/events``) authenticated by the console's session cookie instead of a bearer token.

An operator sees every entry. The stream counts against the process's cap of open streams
(``GATEWAY_EVENTS_MAX_STREAMS``), sends a keep-alive comment every ``GATEWAY_EVENTS_PING_SECONDS``, and checks
the session again every ``GATEWAY_EVENTS_RECHECK_SECONDS`` without counting as activity: an open overview does not
keep a session from idling out, and a signed-out, expired or revoked session's stream ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from gateway.db import Database
from gateway.deps import DatabaseDep, SettingsDep, StreamSlotsDep
from gateway.ledger.feed import LastEventIdInvalid, StreamSlots, follow, head_seq
from gateway.ledger.query import Visibility
from gateway.logs import get_logger
from gateway.webconsole.overview_pages import event_item
from gateway.webconsole.session import SESSION_COOKIE, ConsoleSessions, ConsoleSessionsDep, CurrentConsoleUser

router = APIRouter()

#: a browser that takes no bytes for this long is dropped and its stream slot comes free
SEND_TIMEOUT_SECONDS = 60.0
#: the last event of a stream the console ended (signed out, expired): the script stops reconnecting
CLOSED = "console.closed"

_log = get_logger("gateway.webconsole.events")


def _seq(raw: str | None) -> int | None:
    value = (raw or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise LastEventIdInvalid("the position to resume after is a ledger seq (a decimal integer)")
    return int(value)


async def _stream(db: Database, sessions: ConsoleSessions, secret: str, after: int | None, poll_seconds: float,
                  recheck_seconds: float) -> AsyncIterator[ServerSentEvent]:
    stop = asyncio.Event()
    ended: list[str] = []

    async def recheck() -> None:
        while True:
            await asyncio.sleep(recheck_seconds)
            try:
                still = await sessions.resolve(secret, touch=False)
            except Exception as exc:  # the database, say: no verdict on the session; the feed meets it too
                _log.warning("console stream session check failed", error_type=type(exc).__name__)
                continue
            if still is None:
                ended.append("the console session ended")
                stop.set()
                return

    checker = asyncio.create_task(recheck(), name="console stream session check")
    try:
        async for entry in follow(db, Visibility(), after=after, poll_seconds=poll_seconds, stop=stop):
            yield ServerSentEvent(data=json.dumps(event_item(entry), ensure_ascii=False), id=str(entry.seq))
    except (PoolTimeout, DBAPIError) as exc:
        _log.warning("console stream ended: database", error_type=type(exc).__name__)
    finally:
        checker.cancel()  # not awaited: this may run inside a cancelled scope (browser gone, shutdown)
    for reason in ended[:1]:
        yield ServerSentEvent(data=json.dumps({"reason": reason}), event=CLOSED)


class _ConsoleFeed(EventSourceResponse):
    """Gives its stream slot back however the stream ends."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], slots: StreamSlots, ping: float) -> None:
        super().__init__(content, ping=ping, send_timeout=SEND_TIMEOUT_SECONDS,
                         headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            _log.info("console stream dropped: the browser stopped reading")
        finally:
            self._slots.give_back()


@router.get("/events", response_class=EventSourceResponse)
async def events(
    request: Request,
    user: CurrentConsoleUser,
    db: DatabaseDep,
    settings: SettingsDep,
    sessions: ConsoleSessionsDep,
    slots: StreamSlotsDep,
    after: Annotated[str | None, Query(max_length=20)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> EventSourceResponse:
    """Ledger entries from after ``Last-Event-ID`` (a browser's reconnection) or ``after`` (the last entry the
    overview showed), or from now on."""
    resume = _seq(last_event_id)
    if resume is None:
        resume = _seq(after)
    if resume is not None and resume > await head_seq(db):
        raise LastEventIdInvalid("the position to resume after is beyond the ledger's head")
    slots.take()
    return _ConsoleFeed(_stream(db, sessions, request.cookies.get(SESSION_COOKIE, ""), resume,
                                settings.events_poll_seconds, settings.events_recheck_seconds),
                        slots, ping=settings.events_ping_seconds)
