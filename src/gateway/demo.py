"""``gateway demo``: the whole flow, in one command, for a newcomer.

In a temporary data directory it starts a real gateway (``gateway serve`` as a subprocess on a free
127.0.0.1 port, embedded SQLite, delivery workers on) and a push recipient's system it serves itself (a
small ASGI app under uvicorn on another free loopback port), registers three agencies with keys made on
the fly (the sender and one recipient by pull, one recipient by push), sends a signed document with a PDF
to both recipients through :mod:`gateway.client`, and prints what the gateway proves at each step: the
signed receipt (verified), each delivery with its received instant, the statuses flowing back (the
gateway's automatic 01 and each recipient's own 03), and the ledger verification.

Everything is bounded by ``timeout``: a watchdog stops the gateway when the time is up, the pending step
fails, and the demo exits 1 saying what it was waiting for. Nothing outside the temporary directory is
touched (the environment's ``GATEWAY_*`` settings are not passed on), and it is removed at the end unless
``keep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from gateway.client import (
    AgencyKey,
    Attachment,
    ClientError,
    DocumentState,
    GatewayClient,
    Organ,
    OutgoingDocument,
    ProblemResponse,
    SignerInfo,
    generate_test_key,
    verify_delivery,
)
from gateway.client.cli import print_receipt
from gateway.client.transfer import read_multipart

__all__ = ["demo_pdf", "run_demo"]

VN_TZ = timezone(timedelta(hours=7))
STATUS_NAMES = {"01": "Đã đến", "02": "Từ chối tiếp nhận", "03": "Đã tiếp nhận", "04": "Phân công",
                "05": "Đang xử lý", "06": "Hoàn thành", "13": "Lấy lại", "15": "Đồng ý lấy lại",
                "16": "Từ chối lấy lại"}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class DemoFailed(Exception):
    """A step did not complete; the message says which and why."""


@dataclass(frozen=True)
class Party:
    code: str
    name: str
    mode: str
    key: AgencyKey
    token: str = ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _local(value: datetime) -> str:
    return value.astimezone(VN_TZ).isoformat(timespec="microseconds")


def demo_pdf(title: str) -> bytes:
    """A small, valid one-page PDF showing ``title`` (ASCII), with a correct cross-reference table."""
    text = title.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 18 Tf 72 760 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@dataclass(frozen=True)
class Arrival:
    document: str
    delivery_id: str
    kind: str
    at: datetime
    verified: bool
    error: str | None


class PushRecipientSystem:
    """An agency's receiving system: takes the gateway's push POSTs, checks the gateway's signature on each
    (with the gateway certificate), records it, and answers 200 (the answer is the received instant)."""

    def __init__(self, code: str, gateway_certificate: Any, spool: Path) -> None:
        self.code = code
        self.gateway_certificate = gateway_certificate
        self.spool = spool
        self.port = _free_port()
        self._arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/edxml"

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def _check(self, headers: dict[str, str], body: bytes) -> tuple[bool, str | None]:
        envelope = body
        content_type = headers.get("content-type", "")
        try:
            if content_type.startswith("multipart/form-data"):
                with tempfile.TemporaryDirectory(dir=self.spool) as tmp:
                    envelope, _ = read_multipart([body], content_type, Path(tmp), max_envelope_bytes=len(body))
            verify_delivery(headers, envelope, self.gateway_certificate, recipient=self.code)
        except ClientError as exc:
            return False, str(exc)
        return True, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        at = datetime.now(UTC)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        verified, error = await asyncio.to_thread(self._check, headers, bytes(body))
        with self._lock:
            self._arrivals.append(Arrival(headers.get("x-gateway-document-id", ""),
                                          headers.get("x-gateway-delivery-id", ""),
                                          headers.get("x-gateway-kind", ""), at, verified, error))
        status = 200 if verified else 401
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body",
                    "body": b'{"received": true}' if verified else b'{"error": "signature"}'})

    def start(self, deadline: float) -> None:
        import uvicorn

        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_config=None, log_level="error",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="demo push recipient", daemon=True)
        self._thread.start()
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise DemoFailed("the push recipient's server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


class Demo:
    def __init__(self, workdir: Path, timeout: float, say: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.say = say
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.gateway: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "gateway.log"
        self.recipient: PushRecipientSystem | None = None
        self.timed_out = threading.Event()
        self.clients: list[GatewayClient] = []

    # -- plumbing --------------------------------------------------------------------------------------------

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def _watchdog(self) -> None:
        self.timed_out.set()
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.terminate()

    def client(self, base: str, token: str | None, **kwargs: Any) -> GatewayClient:
        made = GatewayClient(base, token, timeout=max(1.0, min(15.0, self.remaining())), **kwargs)
        self.clients.append(made)
        return made

    def wait(self, what: str, check: Callable[[], Any], interval: float = 0.1) -> Any:
        while True:
            value = check()
            if value:
                return value
            if self.timed_out.is_set() or self.remaining() <= 0:
                raise DemoFailed(f"timed out waiting for {what}")
            time.sleep(interval)

    def start_gateway(self) -> str:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update({
            "GATEWAY_DATA_DIR": str(self.workdir / "var"), "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port),
            "GATEWAY_RUN_WORKERS": "true", "GATEWAY_WORKER_POLL_SECONDS": "0.1", "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_CHECKPOINT_EVERY_SECONDS": "1", "GATEWAY_CHECKPOINT_POLL_SECONDS": "0.25",
        })
        log = self.log_path.open("wb")
        # The same interpreter and package as this command: no PATH lookup, fixed arguments.
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        base = f"http://127.0.0.1:{port}"
        probe = self.client(base, None)

        def ready() -> bool:
            if self.timed_out.is_set():
                raise DemoFailed("timed out waiting for the gateway to answer /readyz")
            if self.gateway is not None and self.gateway.poll() is not None:
                raise DemoFailed(f"the gateway exited with {self.gateway.returncode}:\n{self.log_tail()}")
            return probe.ready()

        self.wait("the gateway to answer /readyz", ready)
        return base

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def admin_token(self) -> str:
        from gateway.auth.service import AuthService
        from gateway.config import Settings
        from gateway.db import create_database

        url = Settings(data_dir=self.workdir / "var").effective_database_url

        async def create() -> str:
            db = create_database(url)
            try:
                async with db.transaction() as session:
                    _, _, token = await AuthService(session).create_operator("demo", "admin", actor="console:demo")
                    return token
            finally:
                await db.dispose()

        return asyncio.run(create())

    def stop(self) -> None:
        for made in self.clients:
            made.close()
        if self.recipient is not None:
            self.recipient.stop()
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.terminate()
            try:
                self.gateway.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait(timeout=5)

    # -- the story -------------------------------------------------------------------------------------------

    def run(self) -> None:
        say = self.say
        say("gateway demo: the whole flow on the embedded default (SQLite, keys and blobs in a temporary directory)")
        say(f"work directory        {self.workdir}")
        base = self.start_gateway()
        admin = self.client(base, self.admin_token())
        gateway_cert = admin.gateway_certificate()
        say("")
        say(f"[1] gateway           {base}  (gateway serve, delivery workers on, pid {self.gateway_pid})")
        say(f"    certificate       sha256 {admin.gateway_certificate_sha256}  (GET /v1/gateway/certificate)")

        self.recipient = PushRecipientSystem("000.00.00.H41", gateway_cert, self.workdir)
        self.recipient.start(self.deadline)
        say(f"[2] push recipient    {self.recipient.url}  (its own server: checks the gateway's signature on "
            "every POST)")

        parties = [
            Party("000.00.00.G22", "Văn phòng Chính phủ", "pull", generate_test_key("000.00.00.G22", "VPCP")),
            Party("000.00.00.H41", "UBND tỉnh Nghệ An", "push", generate_test_key("000.00.00.H41", "UBND Nghe An")),
            Party("000.00.00.H42", "UBND tỉnh Hà Tĩnh", "pull", generate_test_key("000.00.00.H42", "UBND Ha Tinh")),
        ]
        say("[3] agencies          registered with POST /v1/agencies, a TEST-ONLY certificate each, a token each")
        registered: list[Party] = []
        for p in parties:
            admin.register_agency(p.code, p.name, push=self.recipient.url if p.mode == "push" else None)
            admin.add_certificate(p.code, p.key.certificate)
            registered.append(Party(p.code, p.name, p.mode, p.key, admin.issue_token(p.code)))
            where = f"push → {self.recipient.url}" if p.mode == "push" else "pull (reads its inbox)"
            say(f"    {p.code}     {p.name:<22} {where}")
        sender_p, push_p, pull_p = registered
        sender = self.client(base, sender_p.token, key=sender_p.key, agency=Organ(sender_p.code, sender_p.name),
                             gateway_certificate=gateway_cert)
        push_agency = self.client(base, push_p.token, key=push_p.key, agency=Organ(push_p.code, push_p.name),
                                  gateway_certificate=gateway_cert)
        pull_agency = self.client(base, pull_p.token, key=pull_p.key, agency=Organ(pull_p.code, pull_p.name),
                                  gateway_certificate=gateway_cert)

        pdf = demo_pdf("Cong van so 15/VPCP-KSTT - thu nghiem lien thong van ban")
        sent = sender.send_document(OutgoingDocument(
            to=[push_p.code, pull_p.code], type_name="Công văn", code_number="15", code_notation="VPCP-KSTT",
            subject="Về việc thử nghiệm liên thông văn bản điện tử qua cổng trung gian",
            place="Hà Nội", signer=SignerInfo("KT.", "Phó Chủ nhiệm", "Nguyễn Văn Thành"),
            to_places=("Như trên;", "Lưu: VT, KSTT."),
            files=[Attachment.from_bytes("cong-van-15-VPCP-KSTT.pdf", pdf, content_type="application/pdf")],
        ))
        doc = sent.document
        say("")
        say(f"[4] sent              {sender_p.code} → {push_p.code}, {pull_p.code}: Công văn 15/VPCP-KSTT with a "
            f"PDF ({len(pdf)} bytes), signed ECDSA-SHA256")
        print_receipt(sent.receipt, admin.gateway_certificate_sha256, echo=lambda line: say("    " + line))

        say("")
        say("[5] deliveries")
        recipient = self.recipient
        arrival: Arrival = self.wait(
            "the push delivery to reach the recipient's server",
            lambda: next((a for a in recipient.arrivals() if a.document == doc), None))
        if not arrival.verified:
            raise DemoFailed(f"the push delivery's gateway signature did not verify: {arrival.error}")

        def push_recorded() -> DocumentState | None:
            seen = sender.document(doc)
            return seen if seen.recipient(push_p.code).received else None

        state: DocumentState = self.wait("the gateway to record the push delivery", push_recorded)
        pushed = state.recipient(push_p.code)
        assert pushed.received_at is not None
        say(f"    {push_p.code} push  POSTed to its server, gateway signature verified there; 200 answer = "
            f"received at {_local(pushed.received_at)}")

        item = self.wait("the document in the pull recipient's inbox",
                         lambda: next((i for i in pull_agency.inbox() if i.id == doc), None))
        fetched = pull_agency.fetch(item.delivery_id, self.workdir / "inbox-H42")
        if [f.sha256 for f in fetched.files] != [a.sha256 for a in sent.receipt.attachments]:
            raise DemoFailed("the pull recipient's files differ from the receipt's digests")
        acked = pull_agency.ack(item.delivery_id)
        assert acked.received_at is not None
        say(f"    {pull_p.code} pull  GET /v1/inbox → download (gateway signature verified, PDF sha256 matches the "
            f"receipt) → ack done = received at {_local(acked.received_at)}")

        say("")
        say("[6] statuses back to the sender")
        push_agency.send_status(doc, "03", "Đã vào sổ văn bản đến")
        pull_agency.send_status(doc, "03", "Đã vào sổ văn bản đến, số đến 127")
        say(f"    {push_p.code} and {pull_p.code} each sent 03 (POST /v1/statuses, signed, receipt verified)")

        def four_statuses() -> list[Any] | None:
            items = [i for i in sender.inbox() if i.kind == "status" and i.refers_to == doc]
            return items if len(items) >= 4 else None

        statuses = self.wait("four statuses in the sender's inbox", four_statuses)
        gateway_sha = admin.gateway_certificate_sha256
        for i in sorted(statuses, key=lambda s: (s.sent_at, s.status_code or "")):
            message = sender.read_message(i.delivery_id)
            sender.ack(i.delivery_id)
            by = ("automatic, signed by the gateway" if message.signer_certificate_sha256 == gateway_sha
                  else "signed by the recipient")
            code = message.status_code or "?"
            say(f"    {code} {STATUS_NAMES.get(code, ''):<13} from {i.sender}  at {_local(i.sent_at)}  ({by})"
                + (f": {message.description}" if message.description and by != "automatic, signed by the gateway"
                   else ""))

        final = sender.document(doc)
        say("")
        say("[7] where the document is (GET /v1/documents/{id}, as the sender sees it)")
        for r in final.recipients:
            received = _local(r.received_at) if r.received_at else "-"
            say(f"    {r.code}  {r.mode or '':<4}  {r.state:<9}  received at {received}  latest status {r.status}")

        say("")
        try:
            check = admin.verify_ledger()
        except ProblemResponse as exc:
            if exc.status != 404:
                raise
            say("[8] ledger            GET /v1/ledger/verify is not available on this gateway yet")
        else:
            if not check.ok:
                raise DemoFailed(f"the ledger does not verify: first bad entry {check.first_bad_seq}")
            checkpoints = check.raw.get("checkpoints_checked")
            extra = f", {checkpoints} signed checkpoint(s) checked" if isinstance(checkpoints, int) else ""
            say(f"[8] ledger            verified: ok, {check.size} entries recomputed from genesis{extra} "
                "(GET /v1/ledger/verify)")

    def failure_where(self) -> str:
        return ""

    def failure_logs(self) -> str:
        tail = self.log_tail()
        return f"  the gateway's log ({self.log_path}):\n{tail}" if tail else ""

    @property
    def gateway_pid(self) -> int:
        return self.gateway.pid if self.gateway is not None else 0


@contextlib.contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


class Story(Protocol):
    """What :func:`run_story` runs: ``gateway demo`` (:class:`Demo`) or ``gateway demo --federation``."""

    started: float
    timed_out: threading.Event

    def _watchdog(self) -> None: ...
    def run(self) -> None: ...
    def stop(self) -> None: ...
    def failure_where(self) -> str:
        """Where a failure happened, as words to put after "demo failed" (may be empty)."""
    def failure_logs(self) -> str:
        """The logs worth printing after a failure (may be empty)."""


def run_story(make: Callable[[Path, float, Callable[[str], None]], Story], *, timeout: float, keep: bool,
              say: Callable[[str], None] | None = None) -> int:
    """Run a demo in a temporary directory under a watchdog; returns the exit code (0: every step done, 1: a step
    failed or the time ran out, said on standard error with the logs)."""
    def out(line: str) -> None:
        print(line, flush=True)

    emit = say or out
    with _workdir(keep) as workdir:
        demo = make(workdir, timeout, emit)
        watchdog = threading.Timer(timeout, demo._watchdog)
        watchdog.daemon = True
        watchdog.start()
        try:
            demo.run()
        except Exception as exc:
            reason = str(exc)
            if not isinstance(exc, DemoFailed | ClientError | OSError):
                reason = f"unexpected {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            if demo.timed_out.is_set() and not isinstance(exc, DemoFailed):
                reason = f"the time ran out ({exc})"
            print(f"demo failed{demo.failure_where()} after {time.monotonic() - demo.started:.1f} s "
                  f"(limit {timeout:g} s): {reason}", file=sys.stderr, flush=True)
            logs = demo.failure_logs()
            if logs:
                print(logs, file=sys.stderr, flush=True)
            return 1
        finally:
            watchdog.cancel()
            demo.stop()
        emit("")
        emit(f"demo finished in {time.monotonic() - demo.started:.1f} s: every step verified. "
             + (f"Data kept in {workdir}." if keep else "The temporary directory is removed."))
        return 0


def run_demo(*, timeout: float = 60.0, keep: bool = False, say: Callable[[str], None] | None = None) -> int:
    """Run the demo; returns the exit code (0: every step done, 1: a step failed or the time ran out)."""
    return run_story(Demo, timeout=timeout, keep=keep, say=say)
