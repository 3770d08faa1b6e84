"""The event feed in this process, both databases: ``gateway.ledger.feed.follow`` (order, exactly once, resuming,
visibility, types, gaps, no connection held between polls) and ``GET /v1/events`` read as it streams (its event
format, its refusals, and a stream giving its admission slot back). The same over real sockets, with resuming
after a disconnect, the stream cap, revocation and shutdown: ``test_event_feed_server.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gateway.app import create_app
from gateway.config import Settings
from gateway.db import Database
from gateway.ledger import service as ledger
from gateway.ledger.feed import EventStreamsExhausted, StreamSlots, follow
from gateway.ledger.models import LedgerEntry
from gateway.ledger.query import Visibility
from gw import Agency, register, submit

G22, H41, H47 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H47"
POLL = 0.05
#: every wait of these tests is bounded by this (seconds)
BOUND = 10.0


# -- helpers ---------------------------------------------------------------------------------------------------


async def _all_entries(db: Database, after: int = 0) -> list[LedgerEntry]:
    async with db.read() as session:
        rows = await session.execute(select(LedgerEntry).where(LedgerEntry.seq > after).order_by(LedgerEntry.seq))
        return list(rows.scalars())


async def _ledger_items(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    """Every item of GET /v1/ledger for this caller, page after page."""
    items: list[dict[str, Any]] = []
    query: dict[str, str] = {"limit": "1000", **params}
    while True:
        r = await client.get("/v1/ledger", params=query, headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        if r.json()["next"] is None:
            return items
        query["cursor"] = r.json()["next"]


@dataclass
class Following:
    """``follow(...)`` running in a task, collecting what it yields."""

    seen: list[LedgerEntry] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def until(self, predicate: Callable[[list[LedgerEntry]], bool]) -> None:
        async with asyncio.timeout(BOUND):
            while True:
                self.arrived.clear()
                if predicate(self.seen):
                    return
                await self.arrived.wait()

    async def finish(self) -> None:
        self.stop.set()
        assert self.task is not None
        async with asyncio.timeout(BOUND):
            await self.task


@contextlib.asynccontextmanager
async def following(db: Database, visibility: Visibility = Visibility(), **kwargs: Any) -> AsyncIterator[Following]:
    state = Following()

    async def run() -> None:
        async for entry in follow(db, visibility, poll_seconds=POLL, stop=state.stop, **kwargs):
            state.seen.append(entry)
            state.arrived.set()

    state.task = asyncio.create_task(run())
    try:
        yield state
    finally:
        await state.finish()


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: str


class AsgiStream:
    """One GET to the app in this process, its answer read as it comes: httpx's ASGITransport waits for the end of
    an answer, which an event stream never reaches. Leaving the block disconnects, as a client closing its socket."""

    def __init__(self, app: FastAPI, path: str, headers: dict[str, str], **params: str | list[str]) -> None:
        self.app = app
        self.path = path
        self.query = urlencode(params, doseq=True).encode("ascii")
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.status = 0
        self.response_headers: dict[str, str] = {}
        self.ended = False
        self._buffer = b""
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsgiStream:
        sent_request = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            await self.messages.put(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": self.path, "raw_path": self.path.encode("ascii"), "root_path": "",
                 "query_string": self.query, "headers": self.headers, "client": ("127.0.0.1", 50000),
                 "server": ("gateway.test", 80)}
        self._task = asyncio.create_task(self.app(scope, receive, send))
        async with asyncio.timeout(BOUND):
            start = await self.messages.get()
        assert start["type"] == "http.response.start"
        self.status = start["status"]
        self.response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gone.set()
        assert self._task is not None
        async with asyncio.timeout(BOUND):
            await self._task

    async def body(self) -> bytes:
        """The whole answer of a request that is not a stream (a refusal)."""
        chunks = []
        while not self.ended:
            message = await self._next()
            chunks.append(message.get("body", b""))
        return b"".join(chunks)

    async def _next(self) -> dict[str, Any]:
        async with asyncio.timeout(BOUND):
            message = await self.messages.get()
        assert message["type"] == "http.response.body"
        if not message.get("more_body", False):
            self.ended = True
        return message

    async def event(self) -> SseEvent | None:
        """The next event (comments skipped); None when the stream ended."""
        while True:
            while b"\r\n\r\n" not in self._buffer:
                if self.ended:
                    return None
                self._buffer += (await self._next()).get("body", b"")
            block, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            fields: dict[str, list[str]] = {}
            for line in block.decode("utf-8").split("\r\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value.removeprefix(" "))
            if "data" in fields:
                return SseEvent(id=fields.get("id", [None])[-1], event=fields.get("event", [None])[-1],
                                data="\n".join(fields["data"]))

    async def events_until(self, last_seq: int) -> list[SseEvent]:
        """Events until the one whose id is ``last_seq`` (the test knows it is coming)."""
        got: list[SseEvent] = []
        while not got or got[-1].id != str(last_seq):
            event = await self.event()
            assert event is not None, "the stream ended early"
            got.append(event)
        return got


@pytest.fixture
async def quick_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with a short poll and, to show that streams give their admission slot back, one request at a time."""
    quick = settings.model_copy(update={"events_poll_seconds": POLL, "events_max_streams": 2,
                                        "max_concurrent_requests": 1, "admission_wait_seconds": 1.0,
                                        "events_recheck_seconds": 0.2})
    application = create_app(quick)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def quick_client(quick_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=quick_app), base_url="http://gateway.test") as c:
        yield c


@dataclass
class World:
    admin: dict[str, str]
    a: Agency
    b: Agency
    c: Agency


async def _world(client: httpx.AsyncClient, admin: dict[str, str]) -> World:
    a = await register(client, admin, G22, "Văn phòng Chính phủ")
    b = await register(client, admin, H41, "UBND tỉnh Nghệ An")
    c = await register(client, admin, H47, "UBND tỉnh Quảng Ninh")
    return World(admin, a, b, c)


async def _send(client: httpx.AsyncClient, sender: Agency, *to: Agency, number: str = "15") -> str:
    r = await submit(client, sender, sender.envelope(*to, code_number=number, subject="Về việc họp giao ban tháng 11"))
    assert r.status_code == 201, r.text
    return r.headers["X-Gateway-Document-Id"]


# -- follow() --------------------------------------------------------------------------------------------------


async def test_follow_yields_every_entry_after_the_given_seq_once_in_order_then_each_new_one(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    w = await _world(client, admin_headers)
    async with following(db, after=0) as feed:
        await _send(client, w.a, w.b)
        await _send(client, w.c, w.b, number="16")
        expected = [e.seq for e in await _all_entries(db)]
        await feed.until(lambda seen: len(seen) >= len(expected))
        await asyncio.sleep(5 * POLL)  # and nothing more comes
    assert [e.seq for e in feed.seen] == expected
    assert expected == list(range(1, expected[-1] + 1))


async def test_follow_without_after_starts_at_the_head_and_resumes_exactly_after_a_given_seq(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    w = await _world(client, admin_headers)
    head = (await _all_entries(db))[-1].seq
    async with following(db, after=None) as feed:
        await asyncio.sleep(3 * POLL)
        assert feed.seen == []  # the past is not replayed
        await _send(client, w.a, w.b)
        new = await _all_entries(db, after=head)
        await feed.until(lambda seen: len(seen) >= len(new))
    assert [e.seq for e in feed.seen] == [e.seq for e in new]
    middle = new[0].seq
    async with following(db, after=middle) as resumed:
        await resumed.until(lambda seen: len(seen) >= len(new) - 1)
    assert [e.seq for e in resumed.seen] == [e.seq for e in new[1:]]


async def test_follow_shows_an_agency_what_get_ledger_shows_it_and_filters_by_type(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    w = await _world(client, admin_headers)
    async with (following(db, Visibility(agency=G22), after=0) as of_a,
                following(db, after=0, types=frozenset({"envelope.accepted", "agency.registered"})) as typed):
        await _send(client, w.a, w.b)
        await _send(client, w.c, w.b, number="16")  # nothing of G22's
        head = (await _all_entries(db))[-1].seq
        mine = [item["seq"] for item in await _ledger_items(client, w.a.headers) if item["seq"] > 0]
        typed_expected = [e.seq for e in await _all_entries(db)
                          if e.type in ("envelope.accepted", "agency.registered")]
        await of_a.until(lambda seen: len(seen) >= len(mine))
        await typed.until(lambda seen: len(seen) >= len(typed_expected))
        await asyncio.sleep(5 * POLL)
    assert [e.seq for e in of_a.seen] == mine
    assert all(e.sender == G22 or e.recipient == G22 or e.type.startswith("envelope.") for e in of_a.seen)
    assert head not in mine  # C's document to B is not G22's
    assert [e.seq for e in typed.seen] == typed_expected
    assert {e.type for e in typed.seen} == {"envelope.accepted", "agency.registered"}


async def test_follow_holds_no_database_connection_between_polls(app: FastAPI) -> None:
    db: Database = app.state.db
    async with db.transaction() as session:
        await ledger.append(session, type="operator.created", actor="console:test", details={"operator": "x"})
    async with following(db, after=0) as feed:
        await feed.until(lambda seen: len(seen) == 1)
        for _ in range(10):
            await asyncio.sleep(POLL / 3)
            # a poll is a few milliseconds out of fifty: a connection still out at most of these looks is held
            if db.engine.pool.checkedout() == 0:
                break
        else:
            pytest.fail("the feed holds a database connection while it sleeps")


async def _insert_raw(db: Database, seq: int) -> None:
    """An entry with this seq, written past the service (which always writes head + 1): what a commit that became
    visible out of order would look like."""
    async with db.transaction() as session:
        session.add(LedgerEntry(seq=seq, recorded_at=ledger._now(), type="operator.created", actor="console:test",
                                document=None, document_id=None, sender=None, recipient=None, details="{}",
                                prev_hash=f"{seq:064x}", hash=f"{seq + 10**6:064x}"))


async def test_follow_waits_at_a_gap_and_never_skips_the_entry_that_fills_it(app: FastAPI) -> None:
    db: Database = app.state.db
    async with db.transaction() as session:
        await ledger.append(session, type="operator.created", actor="console:test", details={"operator": "x"})
    async with following(db, after=0, gap_wait_seconds=BOUND * 2) as feed:
        await feed.until(lambda seen: len(seen) == 1)
        await _insert_raw(db, 3)  # seq 2 is not (yet) visible
        await asyncio.sleep(6 * POLL)
        assert [e.seq for e in feed.seen] == [1]
        await _insert_raw(db, 2)
        await feed.until(lambda seen: len(seen) == 3)
    assert [e.seq for e in feed.seen] == [1, 2, 3]


async def test_follow_passes_a_gap_that_never_fills_after_the_bounded_wait(app: FastAPI) -> None:
    db: Database = app.state.db
    async with db.transaction() as session:
        await ledger.append(session, type="operator.created", actor="console:test", details={"operator": "x"})
    await _insert_raw(db, 3)
    await _insert_raw(db, 4)
    async with following(db, after=0, gap_wait_seconds=10 * POLL) as feed:
        await feed.until(lambda seen: len(seen) == 1)
        await asyncio.sleep(4 * POLL)
        assert [e.seq for e in feed.seen] == [1]
        await feed.until(lambda seen: len(seen) == 3)
    assert [e.seq for e in feed.seen] == [1, 3, 4]


def test_stream_slots_refuse_past_the_limit_with_retry_after() -> None:
    slots = StreamSlots(2, retry_after=7)
    slots.take()
    slots.take()
    with pytest.raises(EventStreamsExhausted) as refused:
        slots.take()
    assert refused.value.extensions["retry_after"] == 7
    slots.give_back()
    slots.take()
    assert slots.open == 2
    with pytest.raises(ValueError, match="at least 1"):
        StreamSlots(0)


# -- GET /v1/events ----------------------------------------------------------------------------------------------


async def test_each_event_is_the_ledger_item_with_its_seq_as_id_and_its_type_as_event(
    quick_app: FastAPI, quick_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    w = await _world(quick_client, admin_headers)
    async with AsgiStream(quick_app, "/v1/events", admin_headers, after="0") as stream:
        assert stream.status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        # One request at a time in this app: the open stream gave its admission slot back.
        await _send(quick_client, w.a, w.b)
        items = [i for i in await _ledger_items(quick_client, admin_headers) if i["seq"] > 0]
        events = await stream.events_until(items[-1]["seq"])
    assert [e.id for e in events] == [str(i["seq"]) for i in items]
    assert [e.event for e in events] == [i["type"] for i in items]
    assert [json.loads(e.data) for e in events] == items
    accepted = next(json.loads(e.data) for e in events if e.event == "envelope.accepted")
    assert accepted["sender"] == G22


async def test_an_agency_stream_never_carries_another_agencys_events(
    quick_app: FastAPI, quick_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    w = await _world(quick_client, admin_headers)
    async with AsgiStream(quick_app, "/v1/events", w.a.headers, after="0") as of_a:
        await _send(quick_client, w.c, w.b)  # not G22's
        await _send(quick_client, w.a, w.b, number="16")
        mine = [i for i in await _ledger_items(quick_client, w.a.headers) if i["seq"] > 0]
        events = await of_a.events_until(mine[-1]["seq"])
    assert [json.loads(e.data) for e in events] == mine
    assert all(H47 not in (item["sender"], item["recipient"]) for item in mine)


async def test_last_event_id_takes_precedence_over_after_and_types_filter(
    quick_app: FastAPI, quick_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    w = await _world(quick_client, admin_headers)
    await _send(quick_client, w.a, w.b)
    registered = [i for i in await _ledger_items(quick_client, admin_headers, type="agency.registered")]
    accepted = [i for i in await _ledger_items(quick_client, admin_headers, type="envelope.accepted")]
    resume = registered[0]["seq"]
    async with AsgiStream(quick_app, "/v1/events", {**admin_headers, "Last-Event-ID": str(resume)}, after="0",
                          type=["agency.registered", "envelope.accepted"]) as stream:
        events = await stream.events_until(accepted[-1]["seq"])
    assert [int(e.id or -1) for e in events] == [i["seq"] for i in registered[1:] + accepted]


BAD_REQUESTS: list[tuple[dict[str, Any], dict[str, str], int, str]] = [
    ({"type": "envelope.sent"}, {}, 422, "ledger-filter-invalid"),
    ({"type": ["agency.registered", "no.such"]}, {}, 422, "ledger-filter-invalid"),
    ({"after": "-1"}, {}, 422, "ledger-filter-invalid"),
    ({"after": "1e3"}, {}, 422, "ledger-filter-invalid"),
    ({"after": "999999"}, {}, 422, "ledger-filter-invalid"),
    ({}, {"Last-Event-ID": "abc"}, 400, "last-event-id-invalid"),
    ({}, {"Last-Event-ID": "12345678901234567890123"}, 400, "last-event-id-invalid"),
    ({"after": "0"}, {"Last-Event-ID": "999999"}, 400, "last-event-id-invalid"),
]


async def test_bad_parameters_are_refused_with_a_problem_before_the_stream_starts(
    quick_app: FastAPI, admin_headers: dict[str, str]
) -> None:
    for params, headers, status, slug in BAD_REQUESTS:
        async with AsgiStream(quick_app, "/v1/events", {**admin_headers, **headers}, **params) as stream:
            body = await stream.body()
        assert stream.status == status, (params, headers, body)
        assert stream.response_headers["content-type"] == "application/problem+json"
        assert json.loads(body)["type"] == f"urn:gateway:problem:{slug}"
        assert b"no.such" not in body  # hostile input is not echoed
        assert b"abc" not in body
    assert quick_app.state.event_streams.open == 0  # a refusal takes no stream slot


async def test_no_credential_no_stream(quick_client: httpx.AsyncClient) -> None:
    r = await quick_client.get("/v1/events")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


async def test_past_the_stream_cap_a_503_with_retry_after_and_a_closed_stream_frees_its_slot(
    quick_app: FastAPI, quick_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    slots: StreamSlots = quick_app.state.event_streams
    async with (AsgiStream(quick_app, "/v1/events", admin_headers) as one,
                AsgiStream(quick_app, "/v1/events", admin_headers) as two):
        assert (one.status, two.status) == (200, 200)
        assert slots.open == 2
        r = await quick_client.get("/v1/events", headers=admin_headers)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.json()["type"] == "urn:gateway:problem:event-streams-exhausted"
    assert slots.open == 0
    async with AsgiStream(quick_app, "/v1/events", admin_headers) as three:
        assert three.status == 200



async def test_a_revoked_token_ends_its_stream_with_a_feed_closed_problem(
    quick_app: FastAPI, quick_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    w = await _world(quick_client, admin_headers)
    issued = (await quick_client.post(f"/v1/agencies/{G22}/tokens", headers=admin_headers)).json()
    async with AsgiStream(quick_app, "/v1/events", {"Authorization": f"Bearer {issued['token']}"}) as stream:
        assert stream.status == 200
        r = await quick_client.delete(f"/v1/agencies/{G22}/tokens/{issued['id']}", headers=admin_headers)
        assert r.status_code in (200, 204), r.text
        closed = await _closing_event(stream)  # the revocation itself may come first: it is about G22
    assert json.loads(closed.data)["type"] == "urn:gateway:problem:unauthenticated"
    # G22's other token is untouched: past authentication (the 422 of an unknown type).
    assert (await quick_client.get("/v1/events", headers=w.a.headers, params={"type": "no"})).status_code == 422


async def _closing_event(stream: AsgiStream) -> SseEvent:
    """The stream's feed.closed event (ledger events before it skipped), and the stream ended after it."""
    while (event := await stream.event()) is not None and event.event != "feed.closed":
        assert event.id is not None
    assert event is not None, "the stream ended without saying why"
    assert event.id is None
    assert await stream.event() is None
    return event


async def test_a_suspended_agencys_stream_ends(
    quick_app: FastAPI, quick_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    w = await _world(quick_client, admin_headers)
    async with AsgiStream(quick_app, "/v1/events", w.a.headers) as stream:
        r = await quick_client.patch(f"/v1/agencies/{G22}", json={"active": False}, headers=admin_headers)
        assert r.status_code == 200, r.text
        closed = await _closing_event(stream)
    assert json.loads(closed.data)["type"] == "urn:gateway:problem:agency-suspended"


async def test_a_token_that_expires_ends_its_stream(
    quick_app: FastAPI, quick_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _world(quick_client, admin_headers)
    expires = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    issued = await quick_client.post(f"/v1/agencies/{G22}/tokens", json={"expires_at": expires}, headers=admin_headers)
    assert issued.status_code == 201, issued.text
    async with AsgiStream(quick_app, "/v1/events", {"Authorization": f"Bearer {issued.json()['token']}"}) as stream:
        assert stream.status == 200
        closed = await _closing_event(stream)
    assert json.loads(closed.data)["type"] == "urn:gateway:problem:unauthenticated"
