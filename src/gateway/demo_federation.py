"""``gateway demo --federation``: a cross-border document and its statuses, in one command.

In one temporary directory it starts two real gateways (``gateway serve`` as subprocesses on free 127.0.0.1
ports, each on its own data directory and embedded SQLite, delivery workers on):

- the UPSTREAM, standing in for the national axis: the Government Office (``000.00.00.G22``) and the province's
  department (``000.00.01.H41``, with its TEST-ONLY certificate) are registered there, both pull, and a VXP
  system serves ``000.00.01.H41``'s subtree: the credentials the province hub calls it with;
- the PROVINCE hub, configured with the upstream's ``/vxp`` face as its upstream (``GATEWAY_UPSTREAM_*``), with
  ``000.00.01.H41`` registered (the same certificate) and the upstream's register imported by
  ``gateway upstream agencies sync`` (``000.00.00.G22`` becomes an agency of delivery mode ``upstream``).

Then, through :mod:`gateway.client` as agencies' software would: ``000.00.01.H41`` sends a signed Công văn with
a PDF to ``000.00.00.G22`` on the province hub, which forwards it upstream (sendEdoc: the upstream's DocId and
the hand-off instant); ``000.00.00.G22`` pulls it upstream and acknowledges it, and the province hub learns the
received instant from the upstream (getSentEdocList); the upstream's automatic 01 and ``000.00.00.G22``'s own
03 come back to the sender on the province hub (the poller); the reverse way, a document from
``000.00.00.G22`` reaches ``000.00.01.H41`` on the province hub, with its received instants on both sides and
``000.00.01.H41``'s 03 forwarded back; finally both ledgers verify.

The plumbing is :mod:`gateway.demo`'s (each gateway is a :class:`gateway.demo.Demo` of its own directory, with
its client, waits, operator token and log). Everything is bounded by ``timeout``: a watchdog stops both
gateways when the time is up, the pending step fails, and the demo exits 1 naming the step and what it was
waiting for, with both gateways' log tails. Nothing outside the temporary directory is touched (the
environment's ``GATEWAY_*`` settings are not passed on), and it is removed at the end unless ``keep``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization

from gateway.client import (
    AgencyKey,
    Attachment,
    DocumentState,
    GatewayClient,
    InboxEntry,
    Organ,
    OutgoingDocument,
    SignerInfo,
    generate_test_key,
)
from gateway.client.cli import print_receipt
from gateway.demo import STATUS_NAMES, Demo, DemoFailed, _free_port, _local, demo_pdf, run_story

__all__ = ["run_federation_demo"]

G22, G22_NAME = "000.00.00.G22", "Văn phòng Chính phủ"
H41, H41_NAME = "000.00.01.H41", "Sở Nội vụ tỉnh"
POLL_SECONDS = "0.3"

#: what both gateways run with, on top of their directory and port (as gateway.demo, plus short backoffs)
_COMMON = {
    "GATEWAY_HOST": "127.0.0.1", "GATEWAY_RUN_WORKERS": "true", "GATEWAY_WORKER_POLL_SECONDS": "0.1",
    "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_CHECKPOINT_EVERY_SECONDS": "1",
    "GATEWAY_CHECKPOINT_POLL_SECONDS": "0.25", "GATEWAY_DELIVERY_BACKOFF_BASE_SECONDS": "0.2",
    "GATEWAY_DELIVERY_BACKOFF_CAP_SECONDS": "2",
}


def _sha256_of(key: AgencyKey) -> str:
    return hashlib.sha256(key.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


class Node(Demo):
    """One of the two gateways: :class:`gateway.demo.Demo`'s plumbing (client, waits, operator token, log tail,
    stop) on its own directory, sharing the story's deadline and time-out event, with extra settings."""

    def __init__(self, label: str, workdir: Path, deadline: float, timed_out: threading.Event,
                 say: Callable[[str], None], settings: dict[str, str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, max(0.0, deadline - time.monotonic()), say)
        self.label = label
        self.deadline = deadline
        self.timed_out = timed_out
        self.settings = dict(settings or {})
        self.env: dict[str, str] = {}
        self.base = ""

    def start_gateway(self) -> str:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update({**_COMMON, "GATEWAY_DATA_DIR": str(self.workdir / "var"), "GATEWAY_PORT": str(port),
                    **self.settings})
        self.env = env
        log = self.log_path.open("wb")
        # The same interpreter and package as this command: no PATH lookup, fixed arguments.
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        self.base = f"http://127.0.0.1:{port}"
        probe = self.client(self.base, None)

        def ready() -> bool:
            if self.timed_out.is_set():
                raise DemoFailed(f"timed out waiting for the {self.label} gateway to answer /readyz")
            if self.gateway is not None and self.gateway.poll() is not None:
                raise DemoFailed(f"the {self.label} gateway exited with {self.gateway.returncode}")
            return probe.ready()

        self.wait(f"the {self.label} gateway to answer /readyz", ready)
        return self.base

    def cli(self, *args: str) -> str:
        """``gateway <args>`` on this gateway's environment (a process of its own, bounded by the deadline);
        its standard output."""
        command = " ".join(("gateway", *args))
        try:
            done = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "gateway", *args], env=self.env, cwd=self.workdir, capture_output=True,
                text=True, timeout=max(1.0, self.remaining()), check=False,
            )
        except subprocess.TimeoutExpired:
            raise DemoFailed(f"timed out waiting for `{command}`") from None
        if done.returncode != 0:
            tail = "\n".join("    " + line for line in done.stderr.strip().splitlines()[-10:])
            raise DemoFailed(f"`{command}` exited with {done.returncode}:\n{tail}")
        return done.stdout

    def operator_call(self, token: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """An operator call the agency client has no method for (``/v1/vxp/systems``, ``/v1/agencies/{code}``)."""
        try:
            response = httpx.request(method, self.base + path, json=body, timeout=max(1.0, min(15.0, self.remaining())),
                                     headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError as exc:
            raise DemoFailed(f"{method} {path} on the {self.label} gateway: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise DemoFailed(f"{method} {path} on the {self.label} gateway answered {response.status_code}: "
                             f"{response.text[:300]}")
        data: dict[str, Any] = response.json()
        return data


class FederationDemo:
    def __init__(self, workdir: Path, timeout: float, say: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.say = say
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.timed_out = threading.Event()
        self.step = "[0] setting up"
        self.upstream = Node("upstream", workdir / "upstream", self.deadline, self.timed_out, say)
        self.province: Node | None = None

    def nodes(self) -> list[Node]:
        return [n for n in (self.upstream, self.province) if n is not None]

    def _watchdog(self) -> None:
        self.timed_out.set()
        for node in self.nodes():
            node._watchdog()

    def stop(self) -> None:
        for node in reversed(self.nodes()):
            node.stop()

    def log_tails(self) -> str:
        parts = []
        for node in self.nodes():
            tail = node.log_tail() or f"    (nothing logged at level {_COMMON['GATEWAY_LOG_LEVEL']})"
            parts.append(f"  the {node.label} gateway's log ({node.log_path}):\n{tail}")
        return "\n".join(parts)

    def begin(self, step: str) -> None:
        self.step = step

    def failure_where(self) -> str:
        return f" at step {self.step}"

    def failure_logs(self) -> str:
        return self.log_tails()

    # -- the story -------------------------------------------------------------------------------------------

    def run(self) -> None:
        say = self.say
        up = self.upstream
        say("gateway demo --federation: a province hub and its upstream axis, two gateways (SQLite each) in a "
            "temporary directory")
        say(f"work directory        {self.workdir}")

        # [1] the upstream, its agencies and the VXP system the province calls it with
        self.begin("[1] upstream gateway")
        up_base = up.start_gateway()
        up_token = up.admin_token()
        up_admin = up.client(up_base, up_token)
        up_cert = up_admin.gateway_certificate()
        up_sha = up_admin.gateway_certificate_sha256
        g22_key = generate_test_key(G22, "VPCP")
        h41_key = generate_test_key(H41, "So Noi vu tinh")
        up_admin.register_agency(G22, G22_NAME)
        up_admin.add_certificate(G22, g22_key.certificate)
        g22_token = up_admin.issue_token(G22)
        up_admin.register_agency(H41, H41_NAME)
        up_admin.add_certificate(H41, h41_key.certificate)
        system = up.operator_call(up_token, "POST", "/v1/vxp/systems", {"agency": H41, "serves": "subtree"})
        system_id, secret = str(system["system_id"]), str(system["secret"])
        say("")
        say(f"[1] upstream gateway  {up_base}  trục quốc gia (mô phỏng): gateway serve, pid {up.gateway_pid}")
        say(f"    certificate       sha256 {up_sha}")
        say(f"    {G22}     {G22_NAME:<22} pull (reads its inbox on the upstream)")
        say(f"    {H41}     {H41_NAME:<22} pull, TEST-ONLY certificate sha256 {_sha256_of(h41_key)[:16]}…")
        say(f"    VXP system        {system_id} for {H41} (serves its subtree; POST /v1/vxp/systems): the "
            "province hub's credentials")

        # [2] the province hub, configured with the upstream, and the upstream's register imported
        self.begin("[2] province gateway")
        upstream_url = f"{up_base}/vxp"
        province = self.province = Node("province", self.workdir / "province", self.deadline, self.timed_out, say, {
            "GATEWAY_UPSTREAM_URL": upstream_url, "GATEWAY_UPSTREAM_SYSTEM_ID": system_id,
            "GATEWAY_UPSTREAM_SECRET": secret, "GATEWAY_UPSTREAM_POLL_SECONDS": POLL_SECONDS,
            "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_SECONDS": "2", "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "15",
        })
        pr_base = province.start_gateway()
        pr_token = province.admin_token()
        pr_admin = province.client(pr_base, pr_token)
        pr_cert = pr_admin.gateway_certificate()
        pr_sha = pr_admin.gateway_certificate_sha256
        pr_admin.register_agency(H41, H41_NAME)
        pr_admin.add_certificate(H41, h41_key.certificate)
        h41_pr_token = pr_admin.issue_token(H41)
        say("")
        say(f"[2] province gateway  {pr_base}  the province hub: gateway serve, pid {province.gateway_pid}, "
            f"upstream {upstream_url} (polled every {POLL_SECONDS} s)")
        say(f"    certificate       sha256 {pr_sha}")
        say(f"    {H41}     {H41_NAME:<22} pull, the same certificate")
        out = province.cli("upstream", "agencies", "sync").strip().splitlines()
        summary = json.loads(out[-1]) if out else {}
        say(f"    gateway upstream agencies sync: {out[0] if out else ''}")
        added = summary.get("codes", {}).get("added", []) if isinstance(summary, dict) else []
        if G22 not in added:
            raise DemoFailed(f"the sync did not import {G22}: {summary}")
        for code in added:
            seen = province.operator_call(pr_token, "GET", f"/v1/agencies/{code}")
            mode = seen.get("delivery", {}).get("mode")
            say(f"    imported          {code}  {seen.get('name', '')}  delivery mode {mode}")
            if code == G22 and mode != "upstream":
                raise DemoFailed(f"{G22} was imported with delivery mode {mode}, not upstream")

        h41 = province.client(pr_base, h41_pr_token, key=h41_key, agency=Organ(H41, H41_NAME),
                              gateway_certificate=pr_cert)
        g22 = up.client(up_base, g22_token, key=g22_key, agency=Organ(G22, G22_NAME), gateway_certificate=up_cert)

        # [3] a document across the border: sent on the province hub, forwarded upstream
        self.begin("[3] sent on the province")
        pdf = demo_pdf("Cong van so 27/SNV-VP - lien thong qua truc quoc gia")
        sent = h41.send_document(OutgoingDocument(
            to=[G22], type_name="Công văn", code_number="27", code_notation="SNV-VP",
            subject="Về việc báo cáo kết quả thử nghiệm liên thông văn bản qua trục quốc gia",
            place="Nghệ An", signer=SignerInfo("KT.", "Phó Giám đốc", "Trần Thị Hoa"),
            to_places=("Như trên;", "Lưu: VT, VP."),
            files=[Attachment.from_bytes("cong-van-27-SNV-VP.pdf", pdf, content_type="application/pdf")],
        ))
        doc = sent.document
        say("")
        say(f"[3] sent              {H41} → {G22} on the province hub: Công văn 27/SNV-VP with a PDF "
            f"({len(pdf)} bytes), signed ECDSA-SHA256")
        print_receipt(sent.receipt, pr_sha, echo=lambda line: say("    " + line))

        def forwarded() -> dict[str, Any] | None:
            row = _recipient_raw(h41.document(doc), G22)
            return row if row.get("state") in ("forwarded", "delivered") and row.get("upstream_doc_id") else None

        row = province.wait("the province hub to forward the document upstream (state forwarded)", forwarded)
        upstream_doc = str(row["upstream_doc_id"])
        say(f"    {G22}     mode {row.get('mode')}, state {row.get('state')}: upstream DocId {upstream_doc}, "
            f"handed off at {_local_text(row.get('forwarded_at'))} (sendEdoc)")

        # [4] the recipient upstream pulls and acknowledges; the province learns the received instant
        self.begin("[4] received upstream")
        item: InboxEntry = up.wait(f"the document in {G22}'s inbox on the upstream",
                                   lambda: next((i for i in g22.inbox() if i.id == upstream_doc), None))
        fetched = g22.fetch(item.delivery_id, self.workdir / "inbox-G22")
        if [f.sha256 for f in fetched.files] != [a.sha256 for a in sent.receipt.attachments]:
            raise DemoFailed(f"{G22}'s files upstream differ from the digests of the province hub's receipt")
        if fetched.envelope != sent.envelope:
            raise DemoFailed(f"{G22} did not get upstream the bytes {H41} signed")
        acked = g22.ack(item.delivery_id)
        assert acked.received_at is not None
        say("")
        say(f"[4] received upstream {G22} pull on the upstream: GET /v1/inbox → download (upstream's signature "
            f"verified, the bytes {H41} signed, PDF sha256 matches the receipt) → ack done = received at "
            f"{_local(acked.received_at)}")

        def delivered() -> DocumentState | None:
            seen = h41.document(doc)
            return seen if seen.recipient(G22).state == "delivered" else None

        state: DocumentState = province.wait("the province hub to learn the received instant (state delivered)",
                                             delivered)
        learned = state.recipient(G22)
        assert learned.received_at is not None
        say(f"    {G22}     on the province hub: delivered, received at {_local(learned.received_at)} as the "
            "upstream reported it (getSentEdocList, to the millisecond)")

        # [5] the statuses back to the sender on the province hub
        self.begin("[5] statuses back to the province")
        say("")
        say(f"[5] statuses back     to {H41} on the province hub (its inbox; fetched upstream by the poller)")
        self._statuses(province, h41, doc, {"01"}, up_sha, g22_key,
                       f"the upstream's automatic 01 in {H41}'s inbox on the province hub")
        g22.send_status(upstream_doc, "03", "Đã vào sổ văn bản đến, số đến 1024")
        self._statuses(province, h41, doc, {"03"}, up_sha, g22_key, f"{G22}'s 03 in {H41}'s inbox on the province hub")
        self._where(h41.document(doc), G22, f"{H41}'s view on the province hub")

        # [6] the reverse: from the upstream to the province
        self.begin("[6] the reverse way")
        pdf2 = demo_pdf("Cong van so 88/VPCP-TCCV - tra loi So Noi vu")
        back = g22.send_document(OutgoingDocument(
            to=[H41], type_name="Công văn", code_number="88", code_notation="VPCP-TCCV",
            subject="Về việc phúc đáp báo cáo thử nghiệm liên thông văn bản",
            place="Hà Nội", signer=SignerInfo("TL.", "Vụ trưởng", "Lê Minh Quân"),
            to_places=("Như trên;", "Lưu: VT, TCCV."),
            files=[Attachment.from_bytes("cong-van-88-VPCP-TCCV.pdf", pdf2, content_type="application/pdf")],
        ))
        back_up = back.document
        say("")
        say(f"[6] the reverse       {G22} → {H41} on the upstream: Công văn 88/VPCP-TCCV with a PDF "
            f"({len(pdf2)} bytes), gateway document id there {back_up}")
        arrived: InboxEntry = province.wait(
            f"the province hub's poller to bring it to {H41}'s inbox",
            lambda: next((i for i in h41.inbox() if i.kind == "document" and i.document_id ==
                          back.receipt.document_id), None))
        view = h41.document(arrived.id)
        say(f"    province hub      fetched and accepted as {arrived.id} (upstream DocId "
            f"{view.raw.get('upstream_doc_id')}), then acknowledged upstream")

        def handed_over() -> DocumentState | None:
            seen = g22.document(back_up)
            return seen if seen.recipient(H41).received else None

        there: DocumentState = up.wait(f"the upstream to record {H41}'s received instant", handed_over)
        there_at = there.recipient(H41).received_at
        assert there_at is not None
        say(f"    upstream          {H41} received at {_local(there_at)} there: the province hub's "
            "acknowledgement (updateStatus done)")
        fetched2 = h41.fetch(arrived.delivery_id, self.workdir / "inbox-H41")
        if [f.sha256 for f in fetched2.files] != [a.sha256 for a in back.receipt.attachments]:
            raise DemoFailed(f"{H41}'s files on the province hub differ from the digests of the upstream's receipt")
        if fetched2.envelope != back.envelope:
            raise DemoFailed(f"{H41} did not get on the province hub the bytes {G22} signed")
        acked2 = h41.ack(arrived.delivery_id)
        assert acked2.received_at is not None
        say(f"    {H41}     pull on the province hub: download (province's signature verified, the bytes {G22} "
            f"signed, PDF sha256 matches the upstream's receipt) → ack done = received at "
            f"{_local(acked2.received_at)}")
        h41.send_status(arrived.id, "03", "Đã vào sổ văn bản đến, số đến 356")
        say(f"    {H41} sent 03 on the province hub; forwarded upstream, {G22} reads there:")
        self._statuses(up, g22, back_up, {"01", "03"}, up_sha, h41_key,
                       f"the 01 and {H41}'s 03 in {G22}'s inbox on the upstream")
        self._where(g22.document(back_up), H41, f"{G22}'s view on the upstream")

        # [7] both ledgers
        self.begin("[7] ledgers")
        say("")
        for node, admin in ((up, up_admin), (province, pr_admin)):
            check = admin.verify_ledger()
            if not check.ok:
                raise DemoFailed(f"the {node.label} ledger does not verify: first bad entry {check.first_bad_seq}")
            checkpoints = check.raw.get("checkpoints_checked")
            extra = f", {checkpoints} signed checkpoint(s) checked" if isinstance(checkpoints, int) else ""
            label = "[7] ledgers" if node is up else ""
            say(f"{label:<22}{node.label + ':':<10} verified ok, {check.size} entries recomputed from genesis"
                f"{extra} (GET /v1/ledger/verify)")

    def _statuses(self, node: Node, reader: GatewayClient, refers_to: str, codes: set[str], gateway_sha: str,
                  sender_key: AgencyKey, what: str) -> None:
        """Wait for statuses ``codes`` about ``refers_to`` in ``reader``'s inbox on ``node``; print each (who
        signed it: the upstream gateway, or the agency of ``sender_key``) and acknowledge it."""

        def waiting() -> list[InboxEntry] | None:
            items = [i for i in reader.inbox() if i.kind == "status" and i.refers_to == refers_to
                     and i.status_code in codes]
            return items if {i.status_code for i in items} >= codes else None

        items: list[InboxEntry] = node.wait(what, waiting)
        agency_sha = _sha256_of(sender_key)
        for i in sorted(items, key=lambda s: (s.sent_at, s.status_code or "")):
            message = reader.read_message(i.delivery_id)
            reader.ack(i.delivery_id)
            if message.signer_certificate_sha256 == gateway_sha:
                by = "automatic, signed by the upstream gateway"
            elif message.signer_certificate_sha256 == agency_sha:
                by = f"signed by {i.sender}"
            else:
                by = f"signed by certificate sha256 {message.signer_certificate_sha256}"
            code = message.status_code or "?"
            said = f": {message.description}" if message.description and not by.startswith("automatic") else ""
            self.say(f"    {code} {STATUS_NAMES.get(code, ''):<13} from {i.sender}  at {_local(i.sent_at)}  "
                     f"({by}){said}")


    def _where(self, state: DocumentState, code: str, whose: str) -> None:
        r = state.recipient(code)
        received = _local(r.received_at) if r.received_at else "-"
        self.say(f"    where it is       {code}  {r.mode or ''}  {r.state}  received at {received}  latest status "
                 f"{r.status}  ({whose}, GET /v1/documents/{{id}})")


def _recipient_raw(state: DocumentState, code: str) -> dict[str, Any]:
    """The recipient's row of ``GET /v1/documents/{id}`` as the gateway wrote it (with the upstream fields)."""
    rows = state.raw.get("recipients")
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("code") == code:
            return row
    raise DemoFailed(f"{code} is not among the document's recipients")


def _local_text(value: Any) -> str:
    if not isinstance(value, str):
        return "-"
    return _local(datetime.fromisoformat(value))


def run_federation_demo(*, timeout: float = 90.0, keep: bool = False, say: Callable[[str], None] | None = None) -> int:
    """Run the federation demo; returns the exit code (0: every step done, 1: a step failed or the time ran out)."""
    return run_story(FederationDemo, timeout=timeout, keep=keep, say=say)
