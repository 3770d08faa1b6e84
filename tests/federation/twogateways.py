"""Two real gateways on loopback, the second the first's upstream (issue 15): the harness of the federation
tests, reusable by the demo and later tests.

- **B, the upstream** (the national axis, or another province's hub): ``gateway serve`` on PostgreSQL, with its
  own agency B1 (the Government Office) and the downstream province's agencies A0 (the province) and A1 (a
  department under it), both pull, A1's certificate registered so that its signed envelopes verify on B; and a
  VXP system for A0 (serving A0's subtree), whose id and secret the downstream gateway calls B with.
- **A, the downstream** (the province hub): ``gateway serve`` on SQLite, with A0 and A1 registered locally (pull,
  A1 with its certificate), ``GATEWAY_UPSTREAM_*`` pointing at B's ``/vxp`` (or at a proxy in front of it), and
  B's register imported with ``gateway upstream agencies sync`` before it serves (B1 arrives as an agency of
  delivery mode ``upstream``).

Everything is made as an operator makes it: with each gateway's CLI on its own environment. Both run their
workers (the push worker forwards, the poller polls) with small backoffs. Every wait is bounded and fails the
test with the tail of both gateways' logs (every run of each: a killed and restarted gateway keeps its logs).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from certs import make_keypair
from gateway.envelope import ResponseFor, StatusSpec, build_status
from gw import Agency
from pg import free_port
from real_processes import gateway_cli, serving

T = TypeVar("T")

A0 = "000.00.00.H41"  # the province (UBND tỉnh Nghệ An), registered on both gateways
A1 = "000.00.01.H41"  # a department under it, registered on both, its certificate on both
B1 = "000.00.00.G22"  # the Government Office, registered on the upstream only
A0_NAME = "UBND tỉnh Nghệ An"
A1_NAME = "Văn phòng UBND tỉnh Nghệ An"
B1_NAME = "Văn phòng Chính phủ"

#: the settings both gateways run with (on top of their directory, database and port)
COMMON_SETTINGS = {
    # one process per gateway: the tests SIGKILL a gateway, and `--workers` (one per core by default on
    # PostgreSQL) would leave its worker processes running
    "GATEWAY_WORKERS": "1",
    "GATEWAY_RUN_WORKERS": "true",
    "GATEWAY_WORKER_POLL_SECONDS": "0.1",
    "GATEWAY_DELIVERY_BACKOFF_BASE_SECONDS": "0.2",
    "GATEWAY_DELIVERY_BACKOFF_CAP_SECONDS": "2",
    # With backoffs this small the default 12 attempts last about ten seconds: an upstream restarting on a
    # loaded machine could outlast them and make a forward dead. A forward gives up by age here, as in
    # production it would after hours.
    "GATEWAY_DELIVERY_MAX_ATTEMPTS": "1000",
    # A killed gateway's push and forward attempts, and its upstream poller's lease, are taken over after this
    # (the poller's: at least 3 x GATEWAY_UPSTREAM_POLL_SECONDS, gateway.upstream.poller).
    "GATEWAY_LEASE_SECONDS": "5",
    "GATEWAY_AGENCY_RATE_LIMIT": "",
    "GATEWAY_LOG_LEVEL": "info",
    "GATEWAY_LOG_JSON": "true",
}
#: the downstream's upstream settings other than the URL and the credentials
UPSTREAM_SETTINGS = {
    "GATEWAY_UPSTREAM_POLL_SECONDS": "0.5",
    "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_SECONDS": "2",
    "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "15",
}
LOG_TAIL_LINES = 120


def _clean_environment() -> dict[str, str]:
    """Ours, without any gateway setting (the tests' own GATEWAY_TEST_* switches stay)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST_")}


_POLLED_PATHS = ("/v1/ledger", "/v1/documents", "/v1/inbox", "/readyz", "/vxp/getReceivedEdocList",
                 "/vxp/getSentEdocList")


def _routine(line: str) -> bool:
    """A log line of routine polling: a successful GET or list call that the tests and the poller repeat."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    if not isinstance(record, dict):
        return False
    if record.get("event") == "request":
        status = record.get("status")
        return (isinstance(status, int) and status < 400 and str(record.get("path", "")).startswith(_POLLED_PATHS)
                and record.get("method") in ("GET", "POST"))
    if record.get("event") == "upstream call":
        return record.get("outcome") == "ok" and record.get("operation") in ("getReceivedEdocList",
                                                                            "getSentEdocList")
    return False


def _last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


class Gateway:
    """One ``gateway serve`` with its data directory, database, port and console; killable and restartable on
    the same database and port."""

    def __init__(self, name: str, root: Path, database_url: str, **settings: str) -> None:
        self.name = name
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.env = {**_clean_environment(), **COMMON_SETTINGS, "GATEWAY_DATA_DIR": str(root),
                    "GATEWAY_DATABASE_URL": database_url, "GATEWAY_PORT": str(self.port), **settings}
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base, timeout=30)
        self.admin: dict[str, str] = {}
        self.runs: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._serving: AbstractContextManager[subprocess.Popen[bytes]] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"Gateway({self.name} on {self.base})"

    # ---------------------------------------------------------------- the console

    def cli(self, *args: str) -> str:
        """``gateway <args>`` on this gateway's environment; its standard output (non-zero exit: failure)."""
        return gateway_cli(self.env, *args)

    def cli_json(self, *args: str) -> dict[str, Any]:
        """A command that prints its JSON alone on the last line."""
        value: dict[str, Any] = json.loads(_last_line(self.cli(*args)))
        return value

    def token(self, agency: str) -> str:
        return _last_line(self.cli("token", "create", "--agency", agency))

    def make_operator(self) -> None:
        self.admin = {"Authorization": f"Bearer {_last_line(self.cli('operator', 'create', 'federation-test'))}"}

    def verify_ledger(self) -> str:
        """``gateway ledger verify`` (exit 0 or the test fails); its output."""
        return self.cli("ledger", "verify").strip()

    # ---------------------------------------------------------------- the process

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """``gateway serve``, ready (``/readyz``) within 60 s; each run logs to a file of its own."""
        assert not self.running, f"{self} is already running"
        log = self.root / f"serve-{len(self.runs) + 1}.log"
        self.runs.append(log)
        self._serving = serving(self.env, self.port, self.root, log)
        self.proc = self._serving.__enter__()

    def start_worker(self) -> None:
        """``gateway worker`` on the same database and data directory: the push worker, the forwarder and the
        upstream poller in a process of their own (serve then runs with ``GATEWAY_RUN_WORKERS=false``)."""
        log = self.root / f"worker-{len(self.runs) + 1}.log"
        self.runs.append(log)
        with log.open("wb") as out:
            self.worker = subprocess.Popen([sys.executable, "-m", "gateway", "worker"], env=dict(self.env),
                                           cwd=self.root, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye (the database keeps what was committed)."""
        assert self.proc is not None
        assert self._serving is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._serving.__exit__(None, None, None)
        self._serving = None

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it has not exited within 20 s (a test must not leave a gateway behind)."""
        try:
            if self.worker is not None and self.worker.poll() is None:
                self.worker.terminate()
                try:
                    self.worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.worker.kill()
                    self.worker.wait(timeout=10)
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            if self._serving is not None:
                self._serving.__exit__(None, None, None)
                self._serving = None
        finally:
            self.http.close()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of each run's log, without the routine polling (successful reads of the
        ledger, documents and inboxes by the test, successful list calls of the poller)."""
        parts = []
        for log in self.runs:
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            kept = [line for line in text if not _routine(line)]
            parts.append(f"----- {self.name}: {log.name} (last {min(lines, len(kept))} of {len(kept)} lines, "
                         f"{len(text) - len(kept)} routine polling lines left out)\n" + "\n".join(kept[-lines:]))
        return "\n".join(parts)

    # ---------------------------------------------------------------- reading it as an operator

    def ledger(self, **filters: str) -> list[dict[str, Any]]:
        """Every ledger entry matching ``filters`` (``type``, ``document``, ``document_id``, ``agency``), in order."""
        entries: list[dict[str, Any]] = []
        params: dict[str, str] = {**filters, "limit": "1000"}
        while True:
            r = self.http.get("/v1/ledger", params=params, headers=self.admin)
            assert r.status_code == 200, r.text
            page = r.json()
            entries.extend(page["items"])
            if not page["next"]:
                return entries
            params["cursor"] = page["next"]

    def documents(self, document_id: str) -> list[dict[str, Any]]:
        """The documents holding this edXML DocumentId (``GET /v1/documents?document_id=``)."""
        r = self.http.get("/v1/documents", params={"document_id": document_id}, headers=self.admin)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def document(self, gateway_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/documents/{gateway_id}", headers=self.admin)
        assert r.status_code == 200, r.text
        view: dict[str, Any] = r.json()
        return view

    # ---------------------------------------------------------------- an agency's native API

    def submit(self, agency: Agency, xml: bytes, path: str = "/v1/envelopes") -> httpx.Response:
        return self.http.post(path, content=xml, headers={**agency.headers, "Content-Type": "application/xml"})

    def send(self, agency: Agency, xml: bytes) -> str:
        """Submit a document; the gateway document id (201 or the test fails)."""
        r = self.submit(agency, xml)
        assert r.status_code == 201, r.text
        return r.headers["X-Gateway-Document-Id"]

    def send_status(self, agency: Agency, xml: bytes) -> str:
        r = self.submit(agency, xml, "/v1/statuses")
        assert r.status_code == 201, r.text
        return r.headers["X-Gateway-Document-Id"]

    def inbox(self, agency: Agency) -> list[dict[str, Any]]:
        """Every item waiting in the agency's pull inbox."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:
            r = self.http.get("/v1/inbox", params=params, headers=agency.headers)
            assert r.status_code == 200, r.text
            page = r.json()
            items.extend(page["items"])
            if not page["next"]:
                return items
            params["cursor"] = page["next"]

    def take(self, agency: Agency, item: dict[str, Any]) -> bytes:
        """Fetch an inbox item and acknowledge it ``done`` (the received instant); its bytes."""
        got = self.http.get(f"/v1/inbox/{item['delivery_id']}", headers=agency.headers)
        assert got.status_code == 200, got.text
        ack = self.http.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"}, headers=agency.headers)
        assert ack.status_code == 200, ack.text
        return got.content


# -------------------------------------------------------------------------------- a proxy that holds updateStatus


class HoldingProxy:
    """A reverse proxy on 127.0.0.1 in front of the upstream: every call is forwarded as it came, except
    ``updateStatus`` between :meth:`hold` and :meth:`release`, which is held (never forwarded) until the release
    and then answered ``503`` FAIL, still not forwarded."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        self._holding = False
        self._released = threading.Event()
        #: the docId header of every held updateStatus (as the caller sent it)
        self.held: list[str] = []
        #: operation → calls forwarded
        self.forwarded: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self) -> None:
        """From now on, hold every updateStatus."""
        self._released.clear()
        self._holding = True

    def release(self) -> None:
        """Stop holding; what was held is answered FAIL, never forwarded."""
        self._holding = False
        self._released.set()

    def held_count(self) -> int:
        with self._lock:
            return len(self.held)

    async def _app(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                   send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        assert scope["type"] == "http"
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        operation = path.rsplit("/", 1)[-1]
        # as bytes, exactly as they came (a value may hold UTF-8: updateStatus fail's description)
        headers: list[tuple[bytes, bytes]] = [
            (k, v) for k, v in scope["headers"]
            if k.lower() not in (b"host", b"content-length", b"transfer-encoding", b"connection", b"expect")]
        if operation == "updateStatus" and self._holding:
            lowered = {k.lower(): v for k, v in headers}
            with self._lock:
                self.held.append(lowered.get(b"xroadvnpt-docid", b"").decode("latin-1"))
            await asyncio.get_running_loop().run_in_executor(None, self._released.wait)
            answer = json.dumps({"status": "FAIL", "ErrorCode": "held-by-test-proxy",
                                 "ErrorDesc": "held by the test proxy, not forwarded"}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": answer})
            return
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.target + path + (f"?{query}" if query else "")
        async with httpx.AsyncClient(timeout=60) as client:
            try:
                upstream = await client.request(scope["method"], url, content=bytes(body), headers=headers)
            except httpx.TransportError:
                await send({"type": "http.response.start", "status": 502, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        with self._lock:
            self.forwarded[operation] = self.forwarded.get(operation, 0) + 1
        passed = [(k, v) for k, v in upstream.headers.raw
                  if k.lower() not in (b"content-length", b"transfer-encoding", b"connection", b"content-encoding")]
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": passed})
        await send({"type": "http.response.body", "body": upstream.content})

    def start(self) -> HoldingProxy:
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_config=None, log_level="error",
                                access_log=False, lifespan="off", loop="asyncio", http="h11", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="holding proxy", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the holding proxy did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)


# ---------------------------------------------------------------------------------------------- the two together


@dataclass
class Federation:
    """B (upstream, PostgreSQL) and A (downstream, SQLite), and the agencies' credentials on each."""

    a: Gateway
    b: Gateway
    #: A1 with its token on A (its own gateway)
    a1: Agency
    #: B1 with its token on B
    b1: Agency
    #: the VXP system A calls B with: system_id, secret, agency, serves
    system: dict[str, Any]
    sync: dict[str, Any]
    proxy: HoldingProxy | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def upstream_actor(self) -> str:
        return f"upstream:{self.system['system_id']}"

    def logs(self) -> str:
        notes = "".join(f"note: {n}\n" for n in self.notes)
        return notes + self.b.log_tail() + "\n" + self.a.log_tail()

    def wait(self, what: str, probe: Callable[[], T | None], within: float = 30.0, interval: float = 0.2) -> T:
        """``probe()`` until it returns something truthy (that value), at most ``within`` seconds; else fail the
        test with both gateways' logs."""
        deadline = time.monotonic() + within
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {within} s waiting for {what}\n{self.logs()}", pytrace=False)
            time.sleep(interval)

    def status_from(self, reporter: Agency, original_sender: str, document_id: str, code: str) -> bytes:
        """A signed status ``code`` from ``reporter`` about ``original_sender``'s document ``document_id``."""
        return reporter.sign(build_status(StatusSpec(
            response_for=ResponseFor(organ_id=original_sender, document_id=document_id),
            sender=reporter.organ, status_code=code, description="Đã tiếp nhận vào sổ")))


def _write_pem(root: Path, name: str, pem: str) -> str:
    path = root / name
    path.write_text(pem, encoding="utf-8")
    return str(path)


@contextmanager
def two_gateways(root: Path, upstream_database_url: str, *, through_proxy: bool = False,
                 worker_process: bool = False) -> Iterator[Federation]:
    """B serving on ``upstream_database_url`` (PostgreSQL) and A serving on SQLite under ``root``, set up as the
    module docstring says; with ``through_proxy``, A reaches B's ``/vxp`` through a :class:`HoldingProxy`; with
    ``worker_process``, A's worker, forwarder and poller run in a ``gateway worker`` of their own, not in serve.
    Both stopped afterwards.

    Each console command is a process of its own (about two seconds of imports, mostly CPU): B's commands and
    A's run as two sequences side by side, never more processes at once than that."""
    a1_keys, b1_keys = make_keypair(A1_NAME), make_keypair(B1_NAME)
    certs = root / "certs"
    certs.mkdir(parents=True)
    a1_pem, b1_pem = _write_pem(certs, "a1.pem", a1_keys.cert_pem), _write_pem(certs, "b1.pem", b1_keys.cert_pem)

    stack = ExitStack()  # stops A, then the proxy, then B, each even when stopping another failed
    b = Gateway("B (upstream, PostgreSQL)", root / "b", upstream_database_url)
    stack.callback(b.stop)
    proxy = HoldingProxy(b.base) if through_proxy else None
    if proxy is not None:
        stack.callback(proxy.stop)
        proxy.start()
    a = Gateway("A (downstream, SQLite)", root / "a", f"sqlite+aiosqlite:///{root / 'a' / 'gateway.sqlite3'}")
    stack.callback(a.stop)

    def set_up_b() -> tuple[str, dict[str, Any]]:
        """B1 with its certificate, the downstream province's A0 and A1 (A1's certificate registered too, so
        that its signed envelopes verify on B), B1's token, the VXP system for A0's subtree; then B serves."""
        b.cli("agency", "add", B1, "--name", B1_NAME, "--pull", "--policy", "required", "--cert", b1_pem)
        b.cli("agency", "add", A0, "--name", A0_NAME, "--pull", "--policy", "required")
        b.cli("agency", "add", A1, "--name", A1_NAME, "--parent", A0, "--pull", "--policy", "required")
        b.cli("agency", "cert-add", A1, a1_pem)
        token = b.token(B1)
        system = b.cli_json("vxp", "system", "create", "--agency", A0)
        b.start()
        return token, system

    def set_up_a() -> str:
        """A0 and A1 (with its certificate) on A's migrated SQLite database, A1's token, an operator on A (and
        B's operator, which is independent of the rest: this sequence is the shorter one)."""
        a.cli("migrate")
        a.cli("agency", "add", A0, "--name", A0_NAME, "--pull", "--policy", "required")
        a.cli("agency", "add", A1, "--name", A1_NAME, "--parent", A0, "--pull", "--policy", "required",
              "--cert", a1_pem)
        token = a.token(A1)
        a.make_operator()
        b.make_operator()
        return token

    with stack:
        with ThreadPoolExecutor(max_workers=2) as pool:
            b_done, a_done = pool.submit(set_up_b), pool.submit(set_up_a)
            b1_token, system = b_done.result()
            a1_token = a_done.result()
        a1 = Agency(code=A1, name=A1_NAME, keys=a1_keys, token=a1_token)
        b1 = Agency(code=B1, name=B1_NAME, keys=b1_keys, token=b1_token)
        # A's upstream: B's /vxp (or the proxy in front of it) with the system's credentials.
        a.env.update({"GATEWAY_UPSTREAM_URL": f"{proxy.base if proxy else b.base}/vxp",
                      "GATEWAY_UPSTREAM_SYSTEM_ID": system["system_id"], "GATEWAY_UPSTREAM_SECRET": system["secret"],
                      **UPSTREAM_SETTINGS})
        # B's register, imported (B1 arrives as an agency of delivery mode upstream); then A serves.
        sync = a.cli_json("upstream", "agencies", "sync")
        if worker_process:
            a.env["GATEWAY_RUN_WORKERS"] = "false"
        a.start()
        if worker_process:
            a.start_worker()
        yield Federation(a=a, b=b, a1=a1, b1=b1, system=system, sync=sync, proxy=proxy)
