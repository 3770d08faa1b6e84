"""``gateway report …``: the Điều 15.11 report from the console, on the configured database.

``gateway report monthly --month YYYY-MM`` prints a table; ``--json`` prints the same document as
``GET /v1/reports/monthly``. A bad month, or any other refusal, is the problem+json document on standard
error and exit code 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gateway.config import Settings
from gateway.console import fail, run_on_database
from gateway.db import Database
from gateway.problems import GatewayError
from gateway.reports.schemas import MonthlyReportOut
from gateway.reports.service import Month, monthly_report

report_app = typer.Typer(help="Reports (Điều 15.11).", no_args_is_help=True)




def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


@report_app.command("monthly")
def monthly(
    month: Annotated[str, typer.Option(help="YYYY-MM, a calendar month in Asia/Ho_Chi_Minh")],
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON of GET /v1/reports/monthly")] = False,
) -> None:
    """The Điều 15.11 figures per agency for one month.

    Each agency's sent documents are split by where they went: local (within this gateway), forwarded
    (cross-border out: at least one recipient reached through the upstream axis) and from upstream
    (cross-border in: arrived from the upstream axis).
    """
    try:
        parsed = Month.parse(month)
    except GatewayError as error:
        fail(error)
        raise

    async def run(db: Database, settings: Settings) -> MonthlyReportOut:
        async with db.sessionmaker() as session:
            return MonthlyReportOut.of(await monthly_report(session, parsed))

    out = run_on_database(run)
    if as_json:
        typer.echo(json.dumps(out.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "code", "name", "sent", "local", "forwarded", "from upstream", "received", "delivered", "dead", "signed XML",
        "signed PDF", "median s", "p95 s", "status 06", "with deviations",
        title=f"{out.month} ({out.timezone}: {out.start.isoformat()} to {out.end.isoformat()})",
    )
    rows: list[tuple[str, str, Any]] = [(a.code, a.name, a) for a in out.agencies]
    rows.append(("", "total", out.totals))
    for code, name, f in rows:
        table.add_row(
            code, name, str(f.sent), str(f.sent_local), str(f.sent_forwarded), str(f.sent_from_upstream),
            str(f.received), str(f.delivered), str(f.dead),
            f"{f.signed_xml} {_share(f.signed_xml_share)}".strip(),
            f"{f.signed_pdf} {_share(f.signed_pdf_share)}".strip(),
            _seconds(f.delivery_seconds_median), _seconds(f.delivery_seconds_p95), str(f.status_06),
            str(f.with_deviations),
        )
    Console(width=200).print(table)
    deviations = [(a.code, code, n) for a in out.agencies for code, n in a.deviations.items()]
    if deviations:
        detail = Table("code", "deviation", "messages",
                       title="deviations per sending agency (README, Interoperability)")
        for agency, code, n in deviations:
            detail.add_row(agency, code, str(n))
        Console(width=200).print(detail)
