"""The agency-side commands of ``gateway``: send, inbox, fetch, ack, status send, document and keys generate.
They talk to a running gateway over HTTP through :class:`gateway.client.GatewayClient`, exactly
as an agency's system would (unlike the console commands, which work on the database directly).

Connection options come from the command line or the environment: ``--gateway``/``GATEWAY_URL``,
``--token``/``GATEWAY_TOKEN``, ``--key``/``GATEWAY_KEY``, ``--cert``/``GATEWAY_CERT``,
``--key-password``/``GATEWAY_KEY_PASSWORD``, ``--agency``/``GATEWAY_AGENCY`` and
``--gateway-cert``/``GATEWAY_PINNED_CERT`` (pin the gateway certificate instead of fetching it).
A refusal prints a line for people, then the problem document (JSON) alone on the last line of standard
error, and exits 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from gateway.envelope import Organ, ReceiptData, SignerInfo

from .client import GatewayClient
from .compose import DEFAULT_INLINE_LIMIT, Attachment, OutgoingDocument
from .errors import ClientError, ProblemResponse
from .keys import TEST_ONLY, AgencyKey, agency_code_of, generate_test_key, load_certificate
from .models import SendResult
from .transfer import Progress

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

__all__ = ["print_receipt", "register_client_commands"]

VN_OFFSET = "+07:00"
#: Asia/Ho_Chi_Minh has kept +07:00 without daylight saving since 1975
VN_TZ = timezone(timedelta(hours=7))
#: transfers at least this large show a progress bar
PROGRESS_FROM_BYTES = 1024 * 1024

status_app = typer.Typer(help="edXML status messages (Đã tiếp nhận, Phân công, …, recall answers).",
                         no_args_is_help=True)
keys_app = typer.Typer(help="Agency signing keys.", no_args_is_help=True)

GatewayOpt = Annotated[str, typer.Option("--gateway", envvar="GATEWAY_URL", help="the gateway's base URL")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="GATEWAY_TOKEN", help="the agency's API token",
                                              show_default=False)]
KeyOpt = Annotated[Path | None, typer.Option("--key", envvar="GATEWAY_KEY",
                                             help="signing key: PEM, or PKCS#12 (.p12/.pfx) holding the certificate")]
CertOpt = Annotated[Path | None, typer.Option("--cert", envvar="GATEWAY_CERT",
                                              help="the key's certificate (PEM or DER) when --key is a PEM key")]
KeyPasswordOpt = Annotated[str | None, typer.Option("--key-password", envvar="GATEWAY_KEY_PASSWORD",
                                                    help="password of the key file", show_default=False)]
AgencyOpt = Annotated[str | None, typer.Option("--agency", envvar="GATEWAY_AGENCY",
                                               help="your agency's code (default: read from the certificate)")]
AgencyNameOpt = Annotated[str | None, typer.Option("--agency-name", envvar="GATEWAY_AGENCY_NAME",
                                                   help="your agency's name for From/OrganName (default: from the "
                                                        "certificate)", show_default=False)]
PinOpt = Annotated[Path | None, typer.Option("--gateway-cert", envvar="GATEWAY_PINNED_CERT",
                                             help="pin the gateway certificate (PEM) instead of fetching it")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]
DEFAULT_GATEWAY = "http://127.0.0.1:8080"


def _fail(message: str, problem: dict[str, Any] | None = None) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    if problem is not None:
        typer.echo(json.dumps(problem, ensure_ascii=False), err=True)
    raise typer.Exit(code=1)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ProblemResponse as exc:
        _fail(str(exc), exc.problem)
    except ClientError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def _key(key: Path | None, cert: Path | None, password: str | None) -> AgencyKey | None:
    """The key from --key/--cert/--key-password, loaded apart from :func:`_client` because send tells the
    user about it (unsigned, test-only) before it connects."""
    if key is None:
        if cert is not None:
            _fail("--cert needs --key")
        return None
    return AgencyKey.load(key, cert, password=password)


def _client(gateway: str, token: str | None, *, key: AgencyKey | None = None, agency: str | None = None,
            agency_name: str | None = None, pin: Path | None = None,
            inline_limit: int = DEFAULT_INLINE_LIMIT) -> GatewayClient:
    certificate = load_certificate(pin.read_bytes()) if pin is not None else None
    if agency_name is not None and agency is None:
        agency = agency_code_of(key.certificate) if key is not None else None
        if agency is None:
            _fail("--agency-name needs --agency CODE (the certificate names no agency code)")
    sender: str | Organ | None = Organ(agency, agency_name) if agency and agency_name else agency
    return GatewayClient(gateway, token, key=key, agency=sender, gateway_certificate=certificate,
                         inline_limit=inline_limit)


def _print_json(value: Any) -> None:
    """``--json``: the answer as indented JSON, non-ASCII (Vietnamese) kept readable."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _print_sent(sent: SendResult, gateway_sha: str, *, as_json: bool) -> None:
    """What send and status send print: the verified receipt."""
    if as_json:
        _print_json(_receipt_json(sent, gateway_sha))
    else:
        print_receipt(sent.receipt, gateway_sha, created=sent.created)


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    # A pipe or a file gets wide lines: tables stay one row per line for grep and for tests.
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 200)


@contextmanager
def _progress(label: str) -> Iterator[Progress]:
    """A rich progress bar on standard error, shown only once a transfer turns out to be long."""
    from rich.progress import BarColumn, DownloadColumn, TimeRemainingColumn, TransferSpeedColumn
    from rich.progress import Progress as Bar

    bar: Bar | None = None
    task: TaskID | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar, task
        if bar is None:
            if total < PROGRESS_FROM_BYTES:
                return
            bar = Bar("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=_console(stderr=True), transient=False)
            bar.start()
            task = bar.add_task(label, total=total)
        assert task is not None
        bar.update(task, completed=done)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


def _local(value: datetime) -> str:
    return value.astimezone(VN_TZ).isoformat(timespec="microseconds")


def _receipt_json(sent: SendResult, gateway_sha: str) -> dict[str, Any]:
    r = sent.receipt
    return {
        "document": r.gateway_document_id, "document_id": r.document_id, "kind": r.kind, "sender": r.sender,
        "recipients": list(r.recipients), "sent_at": r.sent_at.isoformat(), "sent_at_local": _local(r.sent_at),
        "envelope_sha256": r.envelope_sha256, "signed": r.signed,
        "signer_certificate_sha256": r.signer_certificate_sha256,
        "attachments": [{"content_id": a.content_id, "name": a.name, "sha256": a.sha256, "size": a.size}
                        for a in r.attachments],
        "ledger_sequence": r.ledger_sequence, "ledger_entry_hash": r.ledger_entry_hash, "created": sent.created,
        "receipt_verified": True, "gateway_certificate_sha256": gateway_sha,
    }


def print_receipt(receipt: ReceiptData, gateway_sha: str, *, created: bool = True,
                  echo: Callable[[str], None] = typer.echo) -> None:
    """The receipt's facts, one per line (used by send, status send and the demo)."""
    echo(f"receipt verified      signed by the gateway (certificate sha256 {gateway_sha})")
    if not created:
        echo("                      an identical resubmission: the receipt given the first time")
    echo(f"gateway document id   {receipt.gateway_document_id}")
    echo(f"DocumentId            {receipt.document_id}")
    echo(f"kind                  {receipt.kind}")
    echo(f"sender                {receipt.sender}")
    echo(f"recipients            {', '.join(receipt.recipients)}")
    echo(f"sent at               {_local(receipt.sent_at)} (UTC {receipt.sent_at.isoformat()})")
    echo(f"envelope sha256       {receipt.envelope_sha256}")
    signed = f"yes, certificate sha256 {receipt.signer_certificate_sha256}" if receipt.signed else (
        "no (accepted unsigned under the channel policy)")
    echo(f"XML signature         {signed}")
    for a in receipt.attachments:
        echo(f"attachment            {a.name}  {a.size} bytes  sha256 {a.sha256}")
    echo(f"ledger                entry #{receipt.ledger_sequence}  hash {receipt.ledger_entry_hash}")


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    _fail(f"not a date: {value!r} (YYYY-MM-DD)")


def send(
    files: Annotated[list[Path] | None, typer.Argument(help="files to attach (PDF, DOCX, …)", show_default=False,
                                                       exists=True, dir_okay=False, readable=True)] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="recipient agency code (repeat for more)",
                                                 show_default=False)] = None,
    type_name: Annotated[str, typer.Option("--type", help="loại văn bản (TypeName)")] = "Công văn",
    subject: Annotated[str, typer.Option("--subject", help="trích yếu")] = "",
    number: Annotated[str | None, typer.Option("--number", help="số (CodeNumber); default: made from the clock",
                                               show_default=False)] = None,
    notation: Annotated[str, typer.Option("--notation", help="ký hiệu (CodeNotation)")] = "GW",
    place: Annotated[str, typer.Option("--place", help="nơi ban hành")] = "Hà Nội",
    on: Annotated[str | None, typer.Option("--date", help="ngày ban hành, YYYY-MM-DD (default: today)",
                                           show_default=False)] = None,
    priority: Annotated[int, typer.Option("--priority", min=0, max=4,
                                          help="0 Thường, 1 Khẩn, 2 Thượng khẩn, 3 Hỏa tốc, 4 Hỏa tốc hẹn giờ")] = 0,
    document_type: Annotated[int, typer.Option("--document-type", min=1, max=2,
                                               help="1 administrative, 2 legal normative")] = 1,
    content: Annotated[str | None, typer.Option("--content", help="tóm tắt", show_default=False)] = None,
    signer: Annotated[str | None, typer.Option("--signer", help="người ký (FullName)", show_default=False)] = None,
    position: Annotated[str | None, typer.Option("--position", help="chức vụ người ký", show_default=False)] = None,
    competence: Annotated[str | None, typer.Option("--competence", help='thẩm quyền ký, e.g. "KT."',
                                                   show_default=False)] = None,
    due: Annotated[str | None, typer.Option("--due", help="hạn xử lý, YYYY-MM-DD", show_default=False)] = None,
    inline_limit: Annotated[int, typer.Option("--inline-limit",
                                              help="files above this many bytes travel as multipart parts")]
    = DEFAULT_INLINE_LIMIT,
    receipt_out: Annotated[Path | None, typer.Option("--receipt", help="also save the signed receipt XML here",
                                                     show_default=False)] = None,
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    token: TokenOpt = None,
    key: KeyOpt = None,
    cert: CertOpt = None,
    key_password: KeyPasswordOpt = None,
    agency: AgencyOpt = None,
    agency_name: AgencyNameOpt = None,
    gateway_cert: PinOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign and send a document with its files; print the verified receipt."""
    if not to:
        _fail("at least one --to CODE is required")
    if not subject.strip():
        _fail("--subject is required (trích yếu)")
    if number is None:
        number = datetime.now(VN_TZ).strftime("%H%M%S%f")[:9]
        typer.echo(f"note: no --number given; using {number}/{notation} (give --number and --notation for a "
                   "real document)", err=True)
    with _errors():
        signing_key = _key(key, cert, key_password)
        if signing_key is None:
            typer.echo("note: no --key: sending unsigned (accepted only under the channel signature policy)",
                       err=True)
        elif signing_key.is_test_only:
            typer.echo(f"note: signing with a {TEST_ONLY} certificate", err=True)
        signer_info = SignerInfo(competence, position, signer) if (signer or position or competence) else None
        document = OutgoingDocument(
            to=list(to), subject=subject, code_number=number, code_notation=notation, type_name=type_name,
            files=[Attachment.from_path(f) for f in files or []], document_type=document_type, place=place,
            promulgation_date=_parse_date(on), priority=priority, content=content, signer=signer_info,
            due_date=_parse_date(due),
        )
        with _client(gateway, token, key=signing_key, agency=agency, agency_name=agency_name, pin=gateway_cert,
                     inline_limit=inline_limit) as client, _progress("sending") as progress:
            sent = client.send_document(document, progress=progress)
            gateway_sha = client.gateway_certificate_sha256
    if receipt_out is not None:
        receipt_out.write_bytes(sent.receipt_xml)
    _print_sent(sent, gateway_sha, as_json=as_json)


def inbox(
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    token: TokenOpt = None,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=1000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List what waits in your pull inbox, most urgent then oldest first."""
    with _errors(), _client(gateway, token) as client:
        items = client.inbox(page_size)
    if as_json:
        _print_json([dict(i.raw) for i in items])
        return
    from rich.table import Table

    table = Table("delivery id", "kind", "code", "from", "DocumentId", "sent at (+07:00)", "priority", "state",
                  title=f"inbox: {len(items)} waiting", title_justify="left")
    for i in items:
        table.add_row(i.delivery_id, i.kind, i.status_code or "", i.sender, i.document_id,
                      _local(i.sent_at).replace(VN_OFFSET, ""), str(i.priority), i.state or "")
    _console().print(table)


def fetch(
    delivery_id: Annotated[str, typer.Argument(help="the delivery id (from `gateway inbox`)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="directory to write into")] = Path("."),
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    token: TokenOpt = None,
    agency: AgencyOpt = None,
    gateway_cert: PinOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a delivery: the original edXML and its attachments, extracted.

    The gateway's signature on the download and the signed digests of the files are checked before
    anything is written. Then acknowledge it with `gateway ack`.
    """
    with _errors(), _client(gateway, token, agency=agency, pin=gateway_cert) as client, \
            _progress("receiving") as progress:
        got = client.fetch(delivery_id, output, progress=progress)
        gateway_sha = client.gateway_certificate_sha256
    if as_json:
        _print_json({
            "delivery_id": got.delivery_id, "document": got.document, "kind": got.kind, "sender": got.sender,
            "recipient": got.recipient, "sent_at": got.sent_at.isoformat(), "refers_to": got.refers_to,
            "envelope": str(got.envelope_path), "status_code": got.status_code, "description": got.description,
            "files": [{"name": f.name, "path": str(f.path), "sha256": f.sha256, "size": f.size, "kind": f.kind}
                      for f in got.files],
        })
        return
    typer.echo(f"delivery verified     signed by the gateway (certificate sha256 {gateway_sha})")
    typer.echo(f"{got.kind:<22}{got.document} from {got.sender}, sent at {_local(got.sent_at)}")
    if got.status_code is not None:
        typer.echo(f"status                {got.status_code} {got.description or ''}".rstrip())
    typer.echo(f"envelope              {got.envelope_path}")
    for f in got.files:
        typer.echo(f"attachment            {f.path}  {f.size} bytes  sha256 {f.sha256}")
    typer.echo(f"next                  gateway ack {got.delivery_id}")


def ack(
    delivery_id: Annotated[str, typer.Argument(help="the delivery id")],
    fail: Annotated[str | None, typer.Option("--fail", help="acknowledge a failure, with this reason",
                                             show_default=False)] = None,
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge a downloaded delivery (done, or --fail REASON).

    done fixes the received instant (Điều 11.2) and sends the sender the status 01; --fail says your
    system could not take it.
    """
    with _errors(), _client(gateway, token) as client:
        result = client.ack(delivery_id, "fail" if fail is not None else "done", fail)
    if as_json:
        _print_json(dict(result.raw))
        return
    typer.echo(f"delivery              {result.delivery_id}")
    typer.echo(f"state                 {result.state}" + ("" if result.changed else " (already acknowledged)"))
    if result.received_at is not None:
        typer.echo(f"received at           {_local(result.received_at)}")


def document(
    id: Annotated[str, typer.Argument(help="the gateway document id (or an edXML DocumentId)")],
    wait: Annotated[float, typer.Option("--wait", help="poll up to this many seconds until every recipient "
                                                       "received it")] = 0.0,
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where a document is: per recipient, state, received instant, latest status; for a recipient
    reached through the upstream axis, when the forward was handed off and the upstream's DocId of it."""
    with _errors(), _client(gateway, token) as client:
        state = client.resolve_document(id)
        if wait > 0:
            state = client.wait_until_received(state.id, timeout=wait)
    if as_json:
        _print_json(dict(state.raw))
        return
    from rich.table import Table

    typer.echo(f"{state.kind} {state.id}  DocumentId {state.document_id}")
    typer.echo(f"sender {state.sender}, sent at {_local(state.sent_at)}")
    upstream_doc_id = state.raw.get("upstream_doc_id")
    if isinstance(upstream_doc_id, str):
        typer.echo(f"arrived from upstream (DocId {upstream_doc_id})")
    table = Table("recipient", "mode", "state", "received at (+07:00)", "status")
    for r in state.recipients:
        table.add_row(r.code, r.mode or "", r.state, _local(r.received_at).replace(VN_OFFSET, "")
                      if r.received_at else "", r.status or "")
    _console().print(table)
    # Below the table, one line each, so that a long upstream DocId never wraps a row (issue 15). The fields
    # are read from the answer as sent: gateways before forwarding existed do not have them.
    raw_recipients = state.raw.get("recipients")
    for r, raw in zip(state.recipients, raw_recipients if isinstance(raw_recipients, list) else [], strict=False):
        if r.mode != "upstream" or not isinstance(raw, dict):
            continue
        doc_id, at = raw.get("upstream_doc_id"), raw.get("forwarded_at")
        if isinstance(doc_id, str) and isinstance(at, str):
            with suppress(ValueError):  # not RFC 3339: shown as the gateway wrote it
                at = _local(datetime.fromisoformat(at))
            typer.echo(f"{r.code}: forwarded upstream (DocId {doc_id}) at {at}")
        else:
            typer.echo(f"{r.code}: to be forwarded upstream ({r.state})")


@status_app.command("send")
def status_send(
    document_ref: Annotated[str, typer.Option("--document", help="the gateway document id, or its DocumentId")],
    code: Annotated[str, typer.Option("--code", help="02 refused, 03 registered, 04 assigned, 05 in progress, "
                                                     "06 done, 13 recall (sender), 15/16 recall answers")],
    description: Annotated[str | None, typer.Option("--description", help="ghi chú / lý do",
                                                    show_default=False)] = None,
    gateway: GatewayOpt = DEFAULT_GATEWAY,
    token: TokenOpt = None,
    key: KeyOpt = None,
    cert: CertOpt = None,
    key_password: KeyPasswordOpt = None,
    agency: AgencyOpt = None,
    agency_name: AgencyNameOpt = None,
    gateway_cert: PinOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a status about a document you received (or, as its sender, recall it with 13)."""
    with _errors():
        signing_key = _key(key, cert, key_password)
        with _client(gateway, token, key=signing_key, agency=agency, agency_name=agency_name,
                     pin=gateway_cert) as client:
            sent = client.send_status(document_ref, code, description)
            gateway_sha = client.gateway_certificate_sha256
    _print_sent(sent, gateway_sha, as_json=as_json)


@keys_app.command("generate")
def keys_generate(
    agency: Annotated[str, typer.Option("--agency", help="the agency code, e.g. 000.00.00.G22")],
    name: Annotated[str | None, typer.Option("--name", help="the agency's name", show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="directory to write into")] = Path("."),
    rsa: Annotated[bool, typer.Option("--rsa", help="RSA 3072 instead of EC P-256")] = False,
    p12: Annotated[bool, typer.Option("--p12", help="also write a PKCS#12 file")] = False,
    password: Annotated[str | None, typer.Option("--password", help="encrypt the key (and .p12) with this",
                                                 show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite existing files")] = False,
) -> None:
    """Make a TEST-ONLY key and self-signed certificate for an agency."""
    key_file, cert_file, p12_file = out / f"{agency}.key.pem", out / f"{agency}.cert.pem", out / f"{agency}.p12"
    existing = [f for f in (key_file, cert_file, p12_file) if f.exists() and (p12 or f != p12_file)]
    if existing and not force:
        _fail(f"{existing[0]} exists; --force to overwrite it")
    with _errors():
        made = generate_test_key(agency, name, kind="rsa" if rsa else "ec")
        out.mkdir(parents=True, exist_ok=True)
        made.write_pem(key_file, cert_file, password)
        if p12:
            p12_file.write_bytes(made.pkcs12(password, name=agency))
            p12_file.chmod(0o600)
    typer.echo(f"{TEST_ONLY}: a self-signed test certificate, not for real documents")
    typer.echo(f"subject               {made.certificate.subject.rfc4514_string()}")
    typer.echo(f"certificate sha256    {made.certificate_sha256}")
    typer.echo(f"key                   {key_file}")
    typer.echo(f"certificate           {cert_file}")
    if p12:
        typer.echo(f"PKCS#12               {p12_file}")
    typer.echo(f"register it           gateway agency cert-add {agency} {cert_file}")


def register_client_commands(app: typer.Typer) -> None:
    """Add the agency-side commands to a ``gateway`` app: the whole one (:mod:`gateway.cli`), or the
    client-only one a ``pip install .`` without the server runs (:mod:`gateway.command`)."""
    app.command("send")(send)
    app.command("inbox")(inbox)
    app.command("fetch")(fetch)
    app.command("ack")(ack)
    app.command("document")(document)
    app.add_typer(status_app, name="status")
    app.add_typer(keys_app, name="keys")
