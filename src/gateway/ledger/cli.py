"""``gateway ledger …``: the ledger's console commands, on the configured database.

``gateway ledger verify`` exits 0 when the ledger verifies and 1 when it does not (or on an error), so
that it can run from cron; ``--json`` prints the same document as ``GET /v1/ledger/verify``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from gateway.config import Settings
from gateway.console import fail, run_on_database
from gateway.db import Database
from gateway.ledger.checkpointer import CheckpointRefused, checkpoint_if_due
from gateway.ledger.errors import LedgerFilterInvalid
from gateway.ledger.query import Visibility, parse_filter
from gateway.ledger.repository import LedgerRepository
from gateway.ledger.schemas import CheckpointOut, LedgerEntryOut, VerifyOut
from gateway.ledger.verify import LedgerVerifier, VerifyMode
from gateway.problems import RequestInvalid
from gateway.signing import load_or_create

ledger_app = typer.Typer(help="The ledger: query it, verify the hash chain and its signed checkpoints.",
                         no_args_is_help=True)




def _certificate(settings: Settings, given: Path | None) -> x509.Certificate | None:
    """The certificate checkpoints are checked with: the one given, else the gateway's own (never generated)."""
    path = given or settings.signing_cert_file or settings.keys_dir / "gateway.cert.pem"
    if not path.exists():
        if given is not None:
            fail(RequestInvalid("--certificate: no such file", field="certificate"))
        return None
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        fail(RequestInvalid("certificate: not a PEM certificate", field="certificate"))
        raise


@ledger_app.command("verify")
def verify(
    start: Annotated[
        str, typer.Option("--from", help="genesis (every entry) | checkpoint (from the last good one)")
    ] = "genesis",
    certificate: Annotated[
        Path | None, typer.Option(help="PEM certificate to check checkpoints with (default: the gateway's own)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON of GET /v1/ledger/verify")] = False,
) -> None:
    """Recompute the hash chain and check every signed checkpoint; name the first bad entry."""
    if start not in ("genesis", "checkpoint"):
        fail(RequestInvalid("--from: genesis or checkpoint", field="from"))
    mode: VerifyMode = "checkpoint" if start == "checkpoint" else "genesis"

    async def run(db: Database, settings: Settings) -> VerifyOut:
        return VerifyOut.of(await LedgerVerifier(db, _certificate(settings, certificate)).run(mode))

    out = run_on_database(run)
    if as_json:
        typer.echo(json.dumps(out.model_dump(mode="json"), ensure_ascii=False, indent=2))
    elif out.ok:
        typer.echo(f"ledger OK: {out.size} entries from {out.mode}, {out.checkpoints_checked} checkpoints checked")
    else:
        where = f"entry {out.first_bad_seq}" if out.first_bad_seq is not None else f"checkpoint {out.bad_checkpoint}"
        typer.echo(f"ledger BROKEN at {where}: {out.reason} ({out.size} entries verified)")
    if not out.ok:
        raise typer.Exit(code=1)


@ledger_app.command("checkpoint")
def checkpoint() -> None:
    """Sign a checkpoint of the current head now (if the ledger grew since the last one)."""

    async def run(db: Database, settings: Settings) -> CheckpointOut | None:
        key = load_or_create(settings)
        try:
            signed = await checkpoint_if_due(db, key, every_entries=1, every_seconds=0, force=True,
                                             origin=settings.ledger_origin)
        except CheckpointRefused as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from exc
        return CheckpointOut.of(signed) if signed is not None else None

    out = run_on_database(run)
    if out is None:
        typer.echo("nothing new to sign: the last checkpoint covers the head")
        return
    typer.echo(json.dumps(out.model_dump(mode="json"), ensure_ascii=False, indent=2))


@ledger_app.command("query")
def query(
    agency: Annotated[str | None, typer.Option(help="agency code, as sender or recipient")] = None,
    document: Annotated[str | None, typer.Option(help="the gateway's document id")] = None,
    document_id: Annotated[str | None, typer.Option("--document-id", help="the edXML DocumentId")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="an event type (gateway.ledger.events)")] = None,
    since: Annotated[str | None, typer.Option("--from", help="RFC 3339 instant with offset, inclusive")] = None,
    until: Annotated[str | None, typer.Option("--to", help="RFC 3339 instant with offset, exclusive")] = None,
    after: Annotated[int | None, typer.Option(min=0, help="only entries after this seq (resume where a run "
                                                           "stopped: the seq it printed last)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="at most this many entries")] = 100,
    table: Annotated[bool, typer.Option("--table", help="a table instead of JSON lines")] = False,
) -> None:
    """Entries in seq order with the filters of GET /v1/ledger (every entry: the console is an operator), one
    JSON document per line (the items of GET /v1/ledger). When more match than --limit, standard error says
    the --after that continues."""
    try:
        flt = parse_filter(agency=agency, document=document, document_id=document_id, type=type_, since=since,
                           until=until)
    except LedgerFilterInvalid as error:
        fail(error)

    async def run(db: Database, _settings: Settings) -> list[LedgerEntryOut]:
        async with db.read() as session:
            entries = await LedgerRepository(session).page(flt, Visibility(), after=after, limit=limit + 1)
        return [LedgerEntryOut.of(e) for e in entries]

    entries = run_on_database(run)
    more = len(entries) > limit
    entries = entries[:limit]
    if table:
        from rich.console import Console
        from rich.table import Table

        out = Table("seq", "recorded_at", "type", "actor", "document_id", "sender", "recipient")
        for e in entries:
            out.add_row(str(e.seq), e.recorded_at, e.type, e.actor, e.document_id or "", e.sender or "",
                        e.recipient or "")
        Console(width=200).print(out)
    else:
        for e in entries:
            typer.echo(json.dumps(e.model_dump(mode="json"), ensure_ascii=False))
    if more and entries:
        typer.echo(f"more entries match: continue with --after {entries[-1].seq}", err=True)
