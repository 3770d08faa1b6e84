"""``GET /v1/events``: the ledger as Server-Sent Events, each event's ``id`` its seq, so that a client that
reconnects with ``Last-Event-ID`` resumes exactly where it stopped (README, "Event feed").

The stream follows :func:`gateway.ledger.feed.follow` with the caller's ``GET /v1/ledger`` visibility. Around it:
the caller's credential is checked again every ``GATEWAY_EVENTS_RECHECK_SECONDS`` (a revoked or expired token, a
suspended agency end the stream with a ``feed.closed`` event carrying the problem); a process serves at most
``GATEWAY_EVENTS_MAX_STREAMS`` streams (then 503 with Retry-After); a stream gives its admission slot back once it
has started (``gateway.admission``), so open streams never starve the API; and sse-starlette ends every stream
when the server is asked to stop, so a shutdown never waits on a client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.security import HTTPBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from gateway.config import Settings
from gateway.db import Database
from gateway.deps import CurrentPrincipal, DatabaseDep, SettingsDep, StreamSlotsDep, current_principal
from gateway.ledger.endpoints import _visibility  # the very visibility of GET /v1/ledger
from gateway.ledger.errors import LedgerFilterInvalid
from gateway.ledger.events import EVENT_TYPES
from gateway.ledger.feed import (
    EventStreamsExhausted,
    LastEventIdInvalid,
    StreamSlots,
    follow,
    head_seq,
)
from gateway.ledger.query import Visibility
from gateway.ledger.schemas import LedgerEntryOut
from gateway.logs import get_logger
from gateway.problem_handlers import problems
from gateway.problems import DatabaseUnavailable, GatewayError, TooManyRequests, Unauthenticated

router = APIRouter(tags=["ledger"])

#: the one event that is not a ledger entry: the stream's last, when the gateway ends it (no ``id``, so a client's
#: Last-Event-ID stays its last entry's)
FEED_CLOSED = "feed.closed"
#: a client that takes no bytes for this long is dropped (its TCP window full): its stream slot comes free
SEND_TIMEOUT_SECONDS = 60.0

_log = get_logger("gateway.ledger.events")
_bearer = HTTPBearer(auto_error=False)




def _seq(raw: str) -> int | None:
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    return int(value)


def parse_types(raw: list[str] | None) -> frozenset[str] | None:
    """The repeatable ``type``: each a ledger event type (``gateway.ledger.events``); none given is every type."""
    if not raw:
        return None
    if any(t not in EVENT_TYPES for t in raw):
        raise LedgerFilterInvalid("type: not a ledger event type (see gateway.ledger.events)", field="type")
    return frozenset(raw)


async def _resume_point(db: Database, after: str | None, last_event_id: str | None) -> int | None:
    """The seq to resume after: ``Last-Event-ID`` over ``after``; None (the head) when neither is given."""
    if last_event_id is not None and last_event_id.strip():
        seq = _seq(last_event_id)
        if seq is None:
            raise LastEventIdInvalid("Last-Event-ID: a ledger seq (a decimal integer) as sent in an event's id")
        if seq > await head_seq(db):
            raise LastEventIdInvalid("Last-Event-ID: beyond this gateway's ledger (was the ledger restored?)")
        return seq
    if after is None:
        return None
    seq = _seq(after)
    if seq is None:
        raise LedgerFilterInvalid("after: a ledger seq (a decimal integer; 0 replays the whole ledger)",
                                  field="after")
    if seq > await head_seq(db):
        raise LedgerFilterInvalid("after: beyond the ledger's head", field="after")
    return seq


async def _credential_refused(request: Request, db: Database) -> GatewayError | None:
    """Authentication again with the request's credential, as ``deps.current_principal`` did at the start (a token
    revoked or expired since, a suspended agency, a revoked certificate); None while it still holds. The rate limit
    is not a verdict on the credential (it costs one of the agency's requests per check)."""
    try:
        await current_principal(request, db, await _bearer(request))
    except TooManyRequests:
        return None
    except GatewayError as error:
        return error
    return None


def _closed(error: GatewayError) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(error.to_problem(instance="/v1/events"), ensure_ascii=False),
                           event=FEED_CLOSED)


async def _stream(request: Request, db: Database, settings: Settings, visibility: Visibility, after: int | None,
                  types: frozenset[str] | None) -> AsyncIterator[ServerSentEvent]:
    stop = asyncio.Event()
    verdict: list[GatewayError] = []

    async def recheck() -> None:
        while True:
            await asyncio.sleep(settings.events_recheck_seconds)
            try:
                error = await _credential_refused(request, db)
            except Exception as exc:  # the database, say: no verdict on the credential; the feed meets it too
                _log.warning("event stream credential check failed", error_type=type(exc).__name__)
                continue
            if error is not None:
                verdict.append(error)
                stop.set()
                return

    checker = asyncio.create_task(recheck(), name="event stream credential check")
    try:
        async for entry in follow(db, visibility, after=after, types=types,
                                  poll_seconds=settings.events_poll_seconds, stop=stop):
            yield ServerSentEvent(data=LedgerEntryOut.of(entry).model_dump_json(), event=entry.type,
                                  id=str(entry.seq))
    except (PoolTimeout, DBAPIError) as exc:
        _log.warning("event stream ended: database", error_type=type(exc).__name__)
        verdict.append(DatabaseUnavailable("the database is unavailable; reconnect with Last-Event-ID",
                                           retry_after=2))
    finally:
        checker.cancel()  # not awaited: this may run inside a cancelled scope (client gone, shutdown)
    for error in verdict[:1]:
        yield _closed(error)


class _FeedResponse(EventSourceResponse):
    """Gives its stream slot back however the stream ends (client gone, shutdown, credential, or never started,
    as for HEAD), and drops a client that stopped reading without an error in the log."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], slots: StreamSlots, ping: float) -> None:
        super().__init__(content, ping=ping, send_timeout=SEND_TIMEOUT_SECONDS)
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            _log.info("event stream dropped: the client stopped reading")
        finally:
            self._slots.give_back()


_STREAM_DESCRIPTION = """\
`text/event-stream` (Server-Sent Events), open until the client leaves or the gateway ends it. One event per
ledger entry the caller may see (the visibility of `GET /v1/ledger`), in seq order, each exactly once:

```
id: <seq>
event: <ledger event type, e.g. envelope.accepted>
data: <the entry as one item of GET /v1/ledger's `items`, one line of JSON>
```

A comment line (`: ping - …`) every 15 s keeps proxies from closing an idle stream. When the gateway ends a
stream for a reason the client should know (the credential was revoked, expired or its agency suspended; the
database went away), the last event is `event: feed.closed` with a problem document as `data` and no `id`.
Reconnect with `Last-Event-ID: <the last id received>` (browsers' `EventSource` do it themselves) to resume."""

_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": _STREAM_DESCRIPTION,
        "content": {"text/event-stream": {
            "schema": {"type": "string"},
            "example": 'id: 42\nevent: envelope.accepted\ndata: {"seq":42,"type":"envelope.accepted",…}\n\n',
        }},
    }
}


@router.get(
    "/v1/events",
    response_class=EventSourceResponse,
    responses={**_STREAM_RESPONSE,
               **problems(Unauthenticated, LedgerFilterInvalid, LastEventIdInvalid, EventStreamsExhausted)},
)
async def events(
    request: Request,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    settings: SettingsDep,
    slots: StreamSlotsDep,
    type_: Annotated[list[str] | None, Query(alias="type", description="an event type (repeatable: any of them); "
                                                                       "none: every type")] = None,
    after: Annotated[str | None, Query(description="resume after this seq (0: the whole ledger); default: only "
                                                   "entries committed from now on")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description="the id of the last event "
                                                "received: resume after it (takes precedence over `after`)")] = None,
) -> EventSourceResponse:
    """The ledger as a live feed of Server-Sent Events: every entry the caller may see, from where it stopped.

    Operators see every entry; an agency the entries that name it and those about documents it sent or received,
    exactly as `GET /v1/ledger`. Resuming with `Last-Event-ID` (or `after`) misses nothing and repeats nothing.
    """
    types = parse_types(type_)
    resume = await _resume_point(db, after, last_event_id)
    slots.take()
    return _FeedResponse(_stream(request, db, settings, _visibility(principal), resume, types), slots,
                         ping=settings.events_ping_seconds)

