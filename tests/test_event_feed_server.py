"""``GET /v1/events`` against a real ``gateway serve`` on 127.0.0.1, read with httpx's streaming client, both
databases: a client that disconnects and resumes with ``Last-Event-ID`` gets every event exactly once and in order;
an agency never sees another agency's events; ``type=`` filters; a bad ``Last-Event-ID`` is refused; past the
stream cap a 503; a revoked token's stream ends; open streams neither starve the API nor hold up a shutdown.
Every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gw import Agency, register, submit
from pg import free_port
from real_processes import serving

G22, H41, H47, H48 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H47", "000.00.00.H48"
#: every wait of these tests is bounded by this (seconds)
BOUND = 15.0


@dataclass
class Served:
    base: str
    proc: subprocess.Popen[bytes]


def _serve(settings: Settings, tmp_path: Path, gateway_key_files: tuple[Path, Path], **extra: str
           ) -> Iterator[Served]:
    port = free_port()
    key_file, cert_file = gateway_key_files
    env = {**os.environ, "GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_PORT": str(port),
           "GATEWAY_DATABASE_URL": settings.effective_database_url, "GATEWAY_RUN_WORKERS": "false",
           "GATEWAY_SIGNING_KEY_FILE": str(key_file), "GATEWAY_SIGNING_CERT_FILE": str(cert_file),
           "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_EVENTS_POLL_SECONDS": "0.1",
           # one process: the stream cap is per process
           "GATEWAY_WORKERS": "1", **extra}
    with serving(env, port, tmp_path, tmp_path / "serve.log") as proc:
        yield Served(f"http://127.0.0.1:{port}", proc)


@pytest.fixture
def served(settings: Settings, tmp_path: Path, gateway_key_files: tuple[Path, Path]) -> Iterator[Served]:
    """Three streams at most, one request at a time, credentials checked again every half second."""
    yield from _serve(settings, tmp_path, gateway_key_files, GATEWAY_EVENTS_MAX_STREAMS="3",
                      GATEWAY_MAX_CONCURRENT_REQUESTS="1", GATEWAY_ADMISSION_WAIT_SECONDS="2",
                      GATEWAY_EVENTS_RECHECK_SECONDS="0.5")


@dataclass
class Event:
    id: str | None
    event: str | None
    data: str

    @property
    def item(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


class Stream:
    """An open ``GET /v1/events`` read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def event(self) -> Event | None:
        """The next event (comments skipped), or None when the server ended the stream."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(BOUND):
            async for line in self._lines:
                if not line:
                    if "data" in fields:
                        return Event(fields.get("id"), fields.get("event"), fields["data"])
                    fields = {}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        return None

    async def events(self, count: int) -> list[Event]:
        got = []
        for _ in range(count):
            event = await self.event()
            assert event is not None, "the stream ended early"
            got.append(event)
        return got

    async def until(self, seq: int) -> list[Event]:
        """Events up to and including the one with id ``seq``."""
        got: list[Event] = []
        while not got or got[-1].id != str(seq):
            event = await self.event()
            assert event is not None, "the stream ended early"
            got.append(event)
        return got


@asynccontextmanager
async def stream(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> AsyncIterator[Stream]:
    async with client.stream("GET", "/v1/events", headers=headers, params=params) as response:
        assert response.status_code == 200, (await response.aread())[:300]
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


async def _ledger(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    """GET /v1/ledger's items after genesis, every page."""
    items: list[dict[str, Any]] = []
    query: dict[str, str] = {"limit": "1000", **params}
    while True:
        r = await client.get("/v1/ledger", params=query, headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        if r.json()["next"] is None:
            return [i for i in items if i["seq"] > 0]
        query["cursor"] = r.json()["next"]


async def _send(client: httpx.AsyncClient, sender: Agency, *to: Agency, number: str) -> None:
    r = await submit(client, sender, sender.envelope(*to, code_number=number, subject="Về việc báo cáo quý IV"))
    assert r.status_code == 201, r.text


async def test_the_event_feed_over_a_real_socket(served: Served, admin_headers: dict[str, str]) -> None:
    """One server per database (each start costs seconds): the scenarios in turn, shutdown last."""
    async with httpx.AsyncClient(base_url=served.base, timeout=BOUND) as client:
        await _a_client_that_disconnects_and_resumes_with_last_event_id_gets_every_event_once_in_order(
            client, admin_headers)
        await _refusals_the_stream_cap_and_revocation_then_a_shutdown_with_streams_open(
            client, admin_headers, served.proc)


async def _a_client_that_disconnects_and_resumes_with_last_event_id_gets_every_event_once_in_order(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    a = await register(client, admin_headers, G22, "Văn phòng Chính phủ")
    b = await register(client, admin_headers, H41, "UBND tỉnh Nghệ An")
    c = await register(client, admin_headers, H47, "UBND tỉnh Quảng Ninh")
    async with (stream(client, admin_headers, after=0) as everything,
                stream(client, a.headers, after=0) as of_a,
                stream(client, c.headers, after=0) as of_c):
        await _send(client, a, b, number="15")
        await _send(client, c, b, number="16")
        first = await everything.events(4)  # then the client goes away
        seen_by_a = await of_a.until((await _ledger(client, a.headers))[-1]["seq"])
        seen_by_c = await of_c.until((await _ledger(client, c.headers))[-1]["seq"])
    # More happens while the client is away.
    await _send(client, a, c, number="17")
    await register(client, admin_headers, H48, "UBND tỉnh Hà Tĩnh")
    items = await _ledger(client, admin_headers)
    async with stream(client, {**admin_headers, "Last-Event-ID": first[-1].id or ""}, after=0) as resumed:
        rest = await resumed.until(items[-1]["seq"])
    # Exactly once, in order, the same JSON as GET /v1/ledger.
    assert [e.item for e in first + rest] == items
    assert [e.id for e in first + rest] == [str(i["seq"]) for i in items]
    assert [e.event for e in first + rest] == [i["type"] for i in items]
    # Each agency: what GET /v1/ledger shows it, nothing of the other's document.
    of_a_items = [i for i in await _ledger(client, a.headers) if i["seq"] <= int(seen_by_a[-1].id or 0)]
    assert [e.item for e in seen_by_a] == of_a_items
    assert [e.item for e in seen_by_c] == [i for i in await _ledger(client, c.headers)
                                           if i["seq"] <= int(seen_by_c[-1].id or 0)]
    accepted_by = {e.item["sender"] for e in seen_by_a if e.event == "envelope.accepted"}
    assert accepted_by == {G22}
    assert {e.item["sender"] for e in seen_by_c if e.event == "envelope.accepted"} == {H47}
    assert {i["sender"] for i in items if i["type"] == "envelope.accepted"} == {G22, H47}
    # type= (repeatable) narrows the replay to those types.
    wanted = [i for i in items if i["type"] in ("agency.registered", "envelope.accepted")]
    async with stream(client, admin_headers, after=0, type=["agency.registered", "envelope.accepted"]) as typed:
        assert [e.item for e in await typed.until(wanted[-1]["seq"])] == wanted


async def _refusals_the_stream_cap_and_revocation_then_a_shutdown_with_streams_open(
    client: httpx.AsyncClient, admin_headers: dict[str, str], proc: subprocess.Popen[bytes]
) -> None:
    bad = await client.get("/v1/events", headers={**admin_headers, "Last-Event-ID": "-1"})
    assert bad.status_code == 400
    assert bad.json()["type"] == "urn:gateway:problem:last-event-id-invalid"
    issued = (await client.post(f"/v1/agencies/{G22}/tokens", headers=admin_headers)).json()
    agency = {"Authorization": f"Bearer {issued['token']}"}
    async with (stream(client, agency) as revocable, stream(client, admin_headers) as watching,
                stream(client, admin_headers)):
        over = await client.get("/v1/events", headers=admin_headers)  # a fourth
        assert over.status_code == 503
        assert int(over.headers["retry-after"]) > 0
        assert over.json()["type"] == "urn:gateway:problem:event-streams-exhausted"
        # One request at a time on this server, three streams open: the API still answers.
        assert (await client.get("/v1/ledger", headers=admin_headers)).status_code == 200
        revoked = await client.delete(f"/v1/agencies/{G22}/tokens/{issued['id']}", headers=admin_headers)
        assert revoked.status_code == 204
        closing = await revocable.event()
        while closing is not None and closing.event == "token.revoked":
            closing = await revocable.event()
        assert closing is not None
        assert closing.event == "feed.closed"
        assert closing.item["type"] == "urn:gateway:problem:unauthenticated"
        assert await revocable.event() is None
        noticed = await watching.event()  # the operator's stream goes on: it sees the revocation
        assert noticed is not None
        assert noticed.event == "token.revoked"
        # The revoked stream's slot is free again.
        async with stream(client, admin_headers) as another:
            # A stop with streams open: they end cleanly, the process exits, no waiting on clients.
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert await watching.event() is None
            assert await another.event() is None
            code = await asyncio.to_thread(proc.wait, BOUND)
            assert code in (0, -signal.SIGTERM)  # uvicorn raises the signal again once it has shut down
            assert time.monotonic() - started < BOUND
