"""Shared setup of the HTTP benchmarks: a real PostgreSQL, the gateway as in production, agencies, envelopes.

Why one module: every benchmark that drives the gateway over HTTP needs the same four things, set up the
same way, so that their figures are comparable and mean what a deployment would see:

- :class:`Postgres`: a throwaway server like the tests' (``initdb`` in a temp directory, a free port on
  127.0.0.1, as the ``postgres`` user when run as root) but with the durability a deployment has
  (``fsync``, ``synchronous_commit`` and ``full_page_writes`` left on, unlike the test server);
- :class:`Gateway`: ``gateway migrate``, the gateway key made once before the workers start (each worker
  would otherwise generate its own on an empty data directory), then ``uvicorn --factory
  gateway.app:create_app --workers N`` with N = cores, delivery workers inside each process as in
  ``gateway serve``, logs at the production level (``info``, JSON) into a file, and the per-agency rate
  limit off (``GATEWAY_AGENCY_RATE_LIMIT=""``: the load comes from one agency);
- agencies: a few through the ``gateway`` CLI as an operator would, many (fan-out) through
  ``POST /v1/agencies`` with an admin token the CLI issued;
- envelopes: a realistic edXML document (Vietnamese metadata, one 100 KB PDF inline as base64 of a ZIP),
  signed with an RSA-2048 key (agencies' certificates are RSA-2048) by :func:`make_envelopes`, in one
  process per core, before any measurement starts.

The load itself comes from the benchmark process, a separate process on 127.0.0.1, through
:class:`HttpConnection`: a minimal HTTP/1.1 keep-alive client on asyncio streams (uvloop), so that the load
generator takes as little as possible of the two cores it shares with the gateway (its CPU time is
reported next to each figure: under 3 % of the run's CPU).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import platform
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))

from certs import KeyPair, make_keypair  # noqa: E402
from gateway.envelope import DocumentSpec, InlineFile, Organ, build_document, sign  # noqa: E402
from gateway.envelope.build import zip_single  # noqa: E402
from gateway.envelope.model import SignerInfo  # noqa: E402
from pg import find_bindir, free_port  # noqa: E402

SENDER = Organ("000.00.00.G22", "Văn phòng Chính phủ", organization_in_charge="Cục Kiểm soát thủ tục hành chính",
               address="16 Lê Hồng Phong, Ba Đình, Hà Nội", email="vpcp@chinhphu.vn", telephone="0804 3162")
SUBJECT = ("Về việc triển khai Kế hoạch chuyển đổi số năm 2026 và kết nối, liên thông hệ thống quản lý văn bản "
           "và điều hành tác nghiệp giữa các bộ, ngành, địa phương")
CONTENT = (
    "Thực hiện chỉ đạo của Thủ tướng Chính phủ về đẩy mạnh gửi, nhận văn bản điện tử có ký số giữa các cơ quan "
    "trong hệ thống hành chính nhà nước, Văn phòng Chính phủ đề nghị Ủy ban nhân dân các tỉnh, thành phố trực "
    "thuộc Trung ương chỉ đạo các sở, ban, ngành rà soát, cập nhật mã định danh điện tử, bảo đảm 100% văn bản "
    "đi, đến được xử lý trên môi trường mạng, trừ văn bản mật theo quy định. Đề nghị báo cáo kết quả thực hiện "
    "trước ngày 15 tháng 12 năm 2026 để tổng hợp, báo cáo Thủ tướng Chính phủ."
)


# -- the machine ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1), "cpu": cpu,
            "python": platform.python_version(), "when": datetime.now(UTC).isoformat(timespec="seconds"),
            # Others' work on the same machine shows here: the figures assume an otherwise idle machine.
            "load_average": os.getloadavg()}


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else float("nan"), "mean_ms": statistics.fmean(ms) if ms else float("nan")}


def process_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


def pid_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, its live children, and the children it has reaped (PostgreSQL's backends)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in children_of(pid):
        with contextlib.suppress(FileNotFoundError):
            total += pid_cpu_seconds(child)
    return total


def children_of(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(p) for p in text]
    return out


# -- PostgreSQL ----------------------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A throwaway PostgreSQL with production durability (fsync and synchronous commit on)."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gw-bench-pg-")))
    port: int = field(default_factory=free_port)
    user: str | None = field(default_factory=lambda: "postgres" if os.geteuid() == 0 else None)
    bindir: Path | None = field(default_factory=find_bindir)

    def _run(self, *args: str) -> None:
        kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
        subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=120, **kwargs)

    def start(self) -> Postgres:
        if self.bindir is None or not (self.bindir / "pg_ctl").exists():
            raise SystemExit("PostgreSQL server binaries not found (install `postgresql`, "
                             "or set GATEWAY_TEST_PG_BINDIR)")
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        data = str(self.root / "data")
        self._run(str(self.bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                   "-c shared_buffers=512MB")
        self._run(str(self.bindir / "pg_ctl"), "-D", data, "-o", options, "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "start")
        self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "gateway")
        return self

    def stop(self) -> None:
        if self.bindir is not None and (self.root / "data").exists():
            kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
            subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"],
                           check=False, capture_output=True, timeout=60, **kwargs)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/gateway"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


# -- the gateway ---------------------------------------------------------------------------------------------


@dataclass
class Gateway:
    """The gateway as deployed: migrated PostgreSQL, one uvicorn worker per core, delivery workers inside."""

    work: Path
    database_url: str
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    _admin: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update({
            "GATEWAY_DATA_DIR": str(self.work / "var"),
            "GATEWAY_DATABASE_URL": self.database_url,
            "GATEWAY_AGENCY_RATE_LIMIT": "",
            "GATEWAY_LOG_LEVEL": "info",
            "GATEWAY_LOG_JSON": "true",
            **self.env_extra,
        })
        return env

    def cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "gateway", *args], env=self.env, check=False,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"gateway {' '.join(args[:2])} failed: {out.stderr.strip()[-500:]}")
        return out.stdout

    def start(self) -> Gateway:
        self.work.mkdir(parents=True, exist_ok=True)
        self.cli("migrate")
        # No key made beforehand: the N workers start on an empty key directory and agree on one key
        # (gateway.signing takes a file lock), as a fresh production deployment does.
        log = (self.work / "gateway.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(self.workers), "--no-access-log", "--log-level", "warning"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited ({self.proc.returncode}); see {self.work / 'gateway.log'}")
            try:
                ready = httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and len(self.server_pids()) >= self.workers:
                # Every worker answers: warm each one's connections and imports.
                for _ in range(4 * self.workers):
                    httpx.get(f"{self.base}/readyz", timeout=5)
                return self
            time.sleep(0.2)
        raise RuntimeError("the gateway did not become ready within 90 s")

    def server_pids(self) -> list[int]:
        """uvicorn's worker processes (spawned by its supervisor), the ones that serve requests."""
        if self.proc is None:
            return []
        if self.workers == 1:  # uvicorn serves in its own process
            return [self.proc.pid]
        pids = []
        for pid in children_of(self.proc.pid):
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(pid)
            except FileNotFoundError:
                continue
        return pids

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.server_pids():
            with contextlib.suppress(FileNotFoundError):
                total += pid_cpu_seconds(pid)
        return total

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    # -- the register ------------------------------------------------------------------------------------

    def add_agency(self, code: str, name: str, *, push: str | None = None, cert_pem: str | None = None) -> None:
        args = ["agency", "add", code, "--name", name]
        args += ["--push", push] if push else ["--pull"]
        if cert_pem is not None:
            pem = self.work / f"{code}.crt.pem"
            pem.write_text(cert_pem)
            args += ["--cert", str(pem)]
        self.cli(*args)

    def token(self, agency: str) -> str:
        return self.cli("token", "create", "--agency", agency).strip().splitlines()[-1]

    def admin_token(self) -> str:
        if self._admin is None:
            out = self.cli("operator", "create", "Quản trị hiệu năng", "--role", "admin")
            self._admin = out.strip().splitlines()[-1]
        return self._admin

    def add_push_agencies(self, agencies: Iterable[tuple[str, str, str]]) -> None:
        """Many agencies at once through ``POST /v1/agencies``: (code, name, push endpoint)."""
        headers = {"Authorization": f"Bearer {self.admin_token()}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=30) as client:
            for code, name, endpoint in agencies:
                r = client.post("/v1/agencies", json={"code": code, "name": name,
                                                      "delivery": {"mode": "push", "endpoint": endpoint}})
                if r.status_code != 201:
                    raise RuntimeError(f"registering {code}: {r.status_code} {r.text[:300]}")


# -- push recipients -----------------------------------------------------------------------------------------


class RecipientServers:
    """:mod:`recipients` as a separate process; agencies are served at ``<url(port)>/r/<code>``."""

    def __init__(self, ports: Sequence[int], certificate: Path) -> None:
        self.ports = list(ports)
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "recipients.py"),
             *(a for p in self.ports for a in ("--port", str(p))), "--certificate", str(certificate)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(f"recipient servers did not start: {line!r}")

    def endpoint(self, port: int, code: str) -> str:
        return f"http://127.0.0.1:{port}/r/{code}"

    def arrivals(self) -> list[tuple[float, str, str, str, int, bool]]:
        r = httpx.get(f"http://127.0.0.1:{self.ports[0]}/_arrivals", timeout=60)
        return [tuple(a) for a in r.json()]  # type: ignore[misc]

    def count(self, document: str) -> int:
        r = httpx.get(f"http://127.0.0.1:{self.ports[0]}/_count", params={"document": document}, timeout=10)
        return int(r.json()["count"])

    def cpu_seconds(self) -> float:
        return pid_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# -- envelopes -----------------------------------------------------------------------------------------------


def make_pdf(size: int = 100 * 1024, seed: int = 2026) -> bytes:
    """A valid one-page PDF of about ``size`` bytes: text, and an embedded image stream (incompressible,
    as the fonts and scans of a real office PDF are)."""
    import random

    rng = random.Random(seed)
    page = ("BT /F1 13 Tf 72 760 Td (UBND TINH - CONG VAN SO 15/UBND-VX) Tj ET\n" * 20).encode("ascii")
    page_z = zlib.compress(page)
    image_len = max(0, size - 1400 - len(page_z))
    image = rng.randbytes(image_len)
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<</Font<</F1 5 0 R>>"
        b"/XObject<</Im1 6 0 R>>>>/Contents 4 0 R>>",
        b"<</Length %d/Filter/FlateDecode>>stream\n" % len(page_z) + page_z + b"\nendstream",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
        b"<</Type/XObject/Subtype/Image/Width 256/Height %d/ColorSpace/DeviceGray/BitsPerComponent 8"
        b"/Length %d>>stream\n" % (max(1, image_len // 256), image_len) + image + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass(frozen=True)
class EnvelopeJob:
    key_pem: bytes
    cert_pem: str
    recipients: tuple[tuple[str, str], ...]
    pdf_encoded: str
    start: int
    count: int
    run: str


_worker_keys: dict[bytes, Any] = {}


def _build_range(job: EnvelopeJob) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if job.key_pem not in _worker_keys:
        _worker_keys[job.key_pem] = (load_pem_private_key(job.key_pem, password=None),
                                     x509.load_pem_x509_certificate(job.cert_pem.encode()))
    key, cert = _worker_keys[job.key_pem]
    recipients = tuple(Organ(code, name) for code, name in job.recipients)
    out = []
    for n in range(job.start, job.start + job.count):
        spec = DocumentSpec(
            sender=SENDER, recipients=recipients, code_number=str(n), code_notation=f"VPCP-KSTT.{job.run}",
            place="Hà Nội", type_name="Công văn", subject=SUBJECT, content=CONTENT,
            signer=SignerInfo("KT. BỘ TRƯỞNG, CHỦ NHIỆM", "Phó Chủ nhiệm", "Nguyễn Sỹ Hiệp"),
            to_places=("Như trên;", "Thủ tướng, các Phó Thủ tướng Chính phủ (để b/c);", "Lưu: VT, KSTT (3b)."),
            attachments=(InlineFile("cong-van-15-VPCP-KSTT.pdf", b"", "application/pdf",
                                    description="Công văn số 15/VPCP-KSTT (bản ký số)", encoded=job.pdf_encoded),),
        )
        out.append(sign(build_document(spec), key, cert, algorithm="rsa-sha256"))
    return out


def make_envelopes(keys: KeyPair, recipients: Sequence[tuple[str, str]], count: int, *, run: str,
                   pdf: bytes | None = None) -> list[bytes]:
    """``count`` distinct signed envelopes (DocumentId differs by CodeNumber), built in one process per core."""
    pdf = pdf if pdf is not None else make_pdf()
    encoded = base64.encodebytes(zip_single("cong-van-15-VPCP-KSTT.pdf", pdf)).decode("ascii")
    procs = os.cpu_count() or 1
    chunk = max(1, -(-count // (procs * 4)))
    jobs = [EnvelopeJob(keys.key_pem, keys.cert_pem, tuple(recipients), encoded, i, min(chunk, count - i), run)
            for i in range(0, count, chunk)]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(_build_range, jobs)
    return [e for part in parts for e in part]


def sender_keys() -> KeyPair:
    return make_keypair("Văn phòng Chính phủ", kind="rsa")


# -- a minimal HTTP/1.1 client -------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: a request at a time, Content-Length or chunked answers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Response:
        for attempt in (1, 2):
            if self.writer is None:
                await self._open()
            assert self.reader is not None
            assert self.writer is not None
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            try:
                self.writer.write(head.encode("latin-1") + body)
                await self.writer.drain()
                return await self._read()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _read(self) -> Response:
        assert self.reader is not None
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                del body[-2:]
            data = bytes(body[:-2]) if body.endswith(b"\r\n") else bytes(body)
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # uvicorn[standard] brings uvloop; without it asyncio's loop does
        return asyncio.new_event_loop()
