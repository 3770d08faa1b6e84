"""``gateway ledger …`` and ``gateway report …``: the ledger's console commands, on the configured database.

``gateway ledger verify`` exits 0 when the ledger verifies and 1 when it does not (or on an error), so
that it can run from cron; ``--json`` prints the same document as ``GET /v1/ledger/verify``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import structlog
import typer
from cryptography import x509

from gateway import logs
from gateway.config import Settings
from gateway.db import Database, create_database
from gateway.ledger.checkpointer import CheckpointRefused, checkpoint_if_due
from gateway.ledger.report import Month, monthly_report
from gateway.ledger.schemas import CheckpointOut, MonthlyReportOut, VerifyOut
from gateway.ledger.verify import LedgerVerifier, VerifyMode
from gateway.problems import GatewayError, RequestInvalid
from gateway.signing import load_or_create

T = TypeVar("T")

ledger_app = typer.Typer(help="The ledger: verify the hash chain and its signed checkpoints.", no_args_is_help=True)
report_app = typer.Typer(help="Reports (Điều 15.11).", no_args_is_help=True)


def _fail(error: GatewayError) -> None:
    typer.echo(json.dumps(error.to_problem(), ensure_ascii=False), err=True)
    raise typer.Exit(code=1)


def _run(fn: Callable[[Database, Settings], Awaitable[T]]) -> T:
    settings = Settings()
    # Logs go to standard error: standard output carries the answer (JSON or a table).
    logs.configure(settings.log_level, json=settings.log_json)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))

    async def runner() -> T:
        db = create_database(settings.effective_database_url)
        try:
            return await fn(db, settings)
        finally:
            await db.dispose()

    try:
        return asyncio.run(runner())
    except GatewayError as error:
        _fail(error)
        raise AssertionError("unreachable") from error


def _certificate(settings: Settings, given: Path | None) -> x509.Certificate | None:
    """The certificate checkpoints are checked with: the one given, else the gateway's own (never generated)."""
    path = given or settings.signing_cert_file or settings.keys_dir / "gateway.cert.pem"
    if not path.exists():
        if given is not None:
            _fail(RequestInvalid("--certificate: no such file", field="certificate"))
        return None
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        _fail(RequestInvalid("certificate: not a PEM certificate", field="certificate"))
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
        _fail(RequestInvalid("--from: genesis or checkpoint", field="from"))
    mode: VerifyMode = "checkpoint" if start == "checkpoint" else "genesis"

    async def run(db: Database, settings: Settings) -> VerifyOut:
        return VerifyOut.of(await LedgerVerifier(db, _certificate(settings, certificate)).run(mode))

    out = _run(run)
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
            signed = await checkpoint_if_due(db, key, every_entries=1, every_seconds=0, force=True)
        except CheckpointRefused as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from exc
        return CheckpointOut.of(signed) if signed is not None else None

    out = _run(run)
    if out is None:
        typer.echo("nothing new to sign: the last checkpoint covers the head")
        return
    typer.echo(json.dumps(out.model_dump(mode="json"), ensure_ascii=False, indent=2))


def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


@report_app.command("monthly")
def monthly(
    month: Annotated[str, typer.Option(help="YYYY-MM, a calendar month in Asia/Ho_Chi_Minh")],
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON of GET /v1/reports/monthly")] = False,
) -> None:
    """The Điều 15.11 figures per agency for one month."""
    try:
        parsed = Month.parse(month)
    except GatewayError as error:
        _fail(error)
        raise

    async def run(db: Database, settings: Settings) -> MonthlyReportOut:
        async with db.sessionmaker() as session:
            return MonthlyReportOut.of(await monthly_report(session, parsed))

    out = _run(run)
    if as_json:
        typer.echo(json.dumps(out.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "code", "name", "sent", "received", "delivered", "dead", "signed XML", "signed PDF", "median s", "p95 s",
        "status 06", title=f"{out.month} ({out.timezone}: {out.start.isoformat()} to {out.end.isoformat()})",
    )
    rows: list[tuple[str, str, Any]] = [(a.code, a.name, a) for a in out.agencies]
    rows.append(("", "total", out.totals))
    for code, name, f in rows:
        table.add_row(
            code, name, str(f.sent), str(f.received), str(f.delivered), str(f.dead),
            f"{f.signed_xml} {_share(f.signed_xml_share)}".strip(),
            f"{f.signed_pdf} {_share(f.signed_pdf_share)}".strip(),
            _seconds(f.delivery_seconds_median), _seconds(f.delivery_seconds_p95), str(f.status_06),
        )
    Console(width=200).print(table)
