"""What operators see of federated traffic (issue 15, point 6), on both databases: per document where it went
(local, forwarded upstream with the upstream's DocId and the hand-off instant, or arrived from upstream) in
``GET /v1/documents/{id}`` and ``gateway document``, and the monthly report separating local from
cross-border documents per sending agency and in the totals, over the API and from the console.

The rows are written by the one acceptance path (``acceptance.accept``) as intake and the poller write them;
what the forwarder and the poller do afterwards is played by UPDATEs of the test: a forward accepted upstream
(``forwarded``, its DocId and instant), the recipient's received instant learned from upstream
(``delivered``), the upstream's DocId of a message that arrived from there, and each message's sent instant
moved onto a fixed day of November 2026 so that the month's figures are exact whatever day the test runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from typer.testing import CliRunner

from client_support import app_server, operator_token
from gateway.acceptance import Event, Message, Target, accept
from gateway.agency.models import Agency
from gateway.cli import app as cli_app
from gateway.config import Settings
from gateway.db import Database, create_database
from gateway.documents.models import Delivery, Document

H41 = "000.00.00.H41"  # UBND tỉnh Nghệ An: local, pull
SNV = "000.01.00.H41"  # Sở Nội vụ: local, pull
G22 = "000.00.00.G22"  # Văn phòng Chính phủ: known only upstream (delivery mode upstream)
B01 = "000.00.00.B01"  # Bộ Nội vụ: known only upstream, and idle
NAMES = {H41: "UBND tỉnh Nghệ An", SNV: "Sở Nội vụ", G22: "Văn phòng Chính phủ"}
NOVEMBER_STARTS = datetime(2026, 10, 31, 17, 0, tzinfo=UTC)  # 2026-11-01 00:00 in Hà Nội
US = timedelta(microseconds=1)


def nov(day: int, hour: int = 3) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC)


@dataclass
class Traffic:
    """The gateway ids of the messages written by :func:`build`."""

    local: str  # H41 → SNV
    local_snv: str  # SNV → H41
    forwarded: str  # H41 → G22 (upstream, forwarded) and SNV (pull)
    delivered: str  # H41 → G22 (upstream, forwarded, then received there)
    waiting: str  # H41 → G22 (upstream, not yet forwarded)
    october: str  # H41 → G22, forwarded, the last microsecond of October in Hà Nội
    arrived: str  # from G22, arrived from upstream, → H41
    arrived_two: str  # from G22, arrived from upstream, → H41 and SNV
    arrived_status: str  # a status 03 from G22 about `delivered`, arrived from upstream


async def _accept(db: Database, sender: str, targets: list[tuple[str, str]], sent_at: datetime, *,
                  kind: Literal["document", "status"] = "document", refers_to: str | None = None,
                  status_code: str | None = None, upstream_doc_id: str | None = None) -> str:
    """One message through ``acceptance.accept``; then what the poller would have recorded (the upstream's
    DocId) and its sent instant pinned to ``sent_at``."""
    digest = hashlib.sha256(f"{sender}{sent_at.isoformat()}{kind}".encode()).hexdigest()
    actor = "upstream:test" if upstream_doc_id else f"agency:{sender}"
    async with db.transaction() as session:
        accepted = await accept(
            session,
            Message(kind=kind, sender=sender, document_id=f"{sender},{sent_at:%Y-%m-%dT%H:%M:%S}",
                    envelope_sha256=digest, envelope_size=1000, signed=True, signer_certificate=None, priority=0,
                    subject="Về việc thử", status_code=status_code, refers_to=refers_to),
            [Target(code, mode) for code, mode in targets],
            Event("status.accepted" if kind == "status" else "envelope.accepted", actor,
                  details={"recipients": [code for code, _ in targets]}),
        )
        await session.execute(update(Document).where(Document.id == accepted.document.id)
                              .values(sent_at=sent_at, upstream_doc_id=upstream_doc_id))
    return accepted.document.id


async def _forwarded(db: Database, document: str, doc_id: str, at: datetime, *,
                     received_at: datetime | None = None) -> None:
    """What the forwarder records when the upstream accepts the forward, and the poller when the upstream
    reports the recipient's received instant."""
    values: dict[str, Any] = {"state": "forwarded", "upstream_doc_id": doc_id, "forwarded_at": at, "attempts": 1}
    if received_at is not None:
        values.update(state="delivered", received_at=received_at)
    async with db.transaction() as session:
        await session.execute(update(Delivery).where(Delivery.document == document, Delivery.mode == "upstream")
                              .values(**values))


async def build(db: Database) -> Traffic:
    async with db.transaction() as session:
        now = datetime.now(UTC)
        for code in (H41, SNV):
            session.add(Agency(code=code, alt_code=None, name=NAMES[code], parent_code=None, delivery_mode="pull",
                               endpoint=None, signature_policy="required", active=True, created_at=now,
                               updated_at=now, source="local", synced_at=None))
        for code in (G22, B01):  # B01: imported from the upstream's register, never any traffic
            session.add(Agency(code=code, alt_code=None, name=NAMES.get(code, "Bộ Nội vụ"), parent_code=None,
                               delivery_mode="upstream", endpoint=None, signature_policy="required", active=True,
                               created_at=now, updated_at=now, source="upstream", synced_at=now))
    local = await _accept(db, H41, [(SNV, "pull")], nov(2))
    local_snv = await _accept(db, SNV, [(H41, "pull")], nov(3))
    forwarded = await _accept(db, H41, [(G22, "upstream"), (SNV, "pull")], nov(4))
    await _forwarded(db, forwarded, "U-1001", nov(4) + timedelta(seconds=2))
    delivered = await _accept(db, H41, [(G22, "upstream")], nov(5))
    await _forwarded(db, delivered, "U-1002", nov(5) + timedelta(seconds=3), received_at=nov(5) + timedelta(seconds=90))
    waiting = await _accept(db, H41, [(G22, "upstream")], nov(6))
    october = await _accept(db, H41, [(G22, "upstream")], NOVEMBER_STARTS - US)
    await _forwarded(db, october, "U-0999", NOVEMBER_STARTS + timedelta(seconds=1))
    arrived = await _accept(db, G22, [(H41, "pull")], nov(7), upstream_doc_id="U-2001")
    arrived_two = await _accept(db, G22, [(H41, "pull"), (SNV, "pull")], nov(8), upstream_doc_id="U-2002")
    arrived_status = await _accept(db, G22, [(H41, "pull")], nov(9), kind="status", refers_to=delivered,
                                   status_code="03", upstream_doc_id="U-2003")
    return Traffic(local, local_snv, forwarded, delivered, waiting, october, arrived, arrived_two, arrived_status)


@pytest.fixture
async def traffic(app: FastAPI) -> Traffic:
    return await build(app.state.db)


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _recipients(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["code"]: r for r in view["recipients"]}


# ------------------------------------------------------------------------------------------ the document view


async def test_document_view_shows_a_local_document_as_local(
    traffic: Traffic, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    view = (await client.get(f"/v1/documents/{traffic.local}", headers=auditor_headers)).json()
    assert (view["arrived_from_upstream"], view["upstream_doc_id"]) == (False, None)
    [snv] = view["recipients"]
    assert {k: snv[k] for k in ("code", "mode", "state", "upstream_doc_id", "forwarded_at", "received_at")} == {
        "code": SNV, "mode": "pull", "state": "pending", "upstream_doc_id": None, "forwarded_at": None,
        "received_at": None}


async def test_document_view_shows_the_forward_per_upstream_recipient_beside_the_local_one(
    traffic: Traffic, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    r = await client.get(f"/v1/documents/{traffic.forwarded}", headers=auditor_headers)
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["sender"], view["arrived_from_upstream"], view["upstream_doc_id"]) == (H41, False, None)
    recipients = _recipients(view)
    assert list(recipients) == [G22, SNV]
    g22, snv = recipients[G22], recipients[SNV]
    assert (g22["mode"], g22["state"], g22["upstream_doc_id"], g22["received_at"]) == (
        "upstream", "forwarded", "U-1001", None)
    assert _instant(g22["forwarded_at"]) == nov(4) + timedelta(seconds=2)
    assert (snv["mode"], snv["state"], snv["upstream_doc_id"], snv["forwarded_at"]) == ("pull", "pending", None, None)


async def test_document_view_shows_the_received_instant_learned_from_upstream_and_its_status(
    traffic: Traffic, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    view = (await client.get(f"/v1/documents/{traffic.delivered}", headers=auditor_headers)).json()
    [g22] = view["recipients"]
    assert (g22["mode"], g22["state"], g22["upstream_doc_id"], g22["status"]) == ("upstream", "delivered", "U-1002",
                                                                                  "03")
    assert _instant(g22["forwarded_at"]) == nov(5) + timedelta(seconds=3)
    assert _instant(g22["received_at"]) == nov(5) + timedelta(seconds=90)
    [status] = view["statuses"]
    assert (status["id"], status["sender"], status["status_code"]) == (traffic.arrived_status, G22, "03")
    # the status itself arrived from upstream
    status_view = (await client.get(f"/v1/documents/{traffic.arrived_status}", headers=auditor_headers)).json()
    assert (status_view["kind"], status_view["arrived_from_upstream"], status_view["upstream_doc_id"]) == (
        "status", True, "U-2003")


async def test_document_view_shows_an_upstream_recipient_not_yet_forwarded_without_docid(
    traffic: Traffic, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    view = (await client.get(f"/v1/documents/{traffic.waiting}", headers=auditor_headers)).json()
    [g22] = view["recipients"]
    assert (g22["mode"], g22["state"], g22["upstream_doc_id"], g22["forwarded_at"], g22["attempts"]) == (
        "upstream", "pending", None, None, 0)


async def test_document_view_shows_a_document_that_arrived_from_upstream_with_its_upstream_docid(
    traffic: Traffic, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    view = (await client.get(f"/v1/documents/{traffic.arrived_two}", headers=auditor_headers)).json()
    assert (view["sender"], view["arrived_from_upstream"], view["upstream_doc_id"]) == (G22, True, "U-2002")
    recipients = _recipients(view)
    assert {code: (r["mode"], r["upstream_doc_id"], r["forwarded_at"]) for code, r in recipients.items()} == {
        H41: ("pull", None, None), SNV: ("pull", None, None)}


# ----------------------------------------------------------------------------------------- the monthly report


#: November 2026, each sending agency's documents by where they went (statuses are not documents)
SPLIT: dict[str, dict[str, int]] = {
    H41: {"sent": 4, "sent_local": 1, "sent_forwarded": 3, "sent_from_upstream": 0},
    SNV: {"sent": 1, "sent_local": 1, "sent_forwarded": 0, "sent_from_upstream": 0},
    G22: {"sent": 2, "sent_local": 0, "sent_forwarded": 0, "sent_from_upstream": 2},
}
SPLIT_TOTALS = {"sent": 7, "sent_local": 2, "sent_forwarded": 3, "sent_from_upstream": 2}


def _split(figures: dict[str, Any]) -> dict[str, int]:
    return {k: figures[k] for k in ("sent", "sent_local", "sent_forwarded", "sent_from_upstream")}


async def _report(client: httpx.AsyncClient, headers: dict[str, str], month: str) -> dict[str, Any]:
    r = await client.get("/v1/reports/monthly", params={"month": month}, headers=headers)
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    return report


async def test_monthly_report_separates_local_forwarded_and_arrived_documents_per_agency_and_in_totals(
    traffic: Traffic, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    report = await _report(client, auditor_headers, "2026-11")
    rows = {row["code"]: row for row in report["agencies"]}
    assert list(rows) == [G22, H41, SNV]  # B01, an idle agency of the upstream's register, is left out
    assert {code: _split(row) for code, row in rows.items()} == SPLIT
    assert _split(report["totals"]) == SPLIT_TOTALS
    # The figures that were there before keep their meaning: the forward received upstream is a delivery
    # H41 sent that is delivered, and G22's one received delivery, 90 s after it was sent.
    assert (rows[H41]["delivered"], rows[H41]["dead"], rows[H41]["received"]) == (1, 0, 0)
    assert (rows[G22]["received"], rows[G22]["delivery_seconds_median"]) == (1, pytest.approx(90.0))
    assert (report["totals"]["delivered"], report["totals"]["received"]) == (1, 1)


async def test_monthly_report_counts_a_forward_in_the_month_it_was_sent_not_forwarded(
    traffic: Traffic, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    october = await _report(client, auditor_headers, "2026-10")
    rows = {row["code"]: row for row in october["agencies"]}
    assert _split(rows[H41]) == {"sent": 1, "sent_local": 0, "sent_forwarded": 1, "sent_from_upstream": 0}
    assert _split(october["totals"]) == {"sent": 1, "sent_local": 0, "sent_forwarded": 1, "sent_from_upstream": 0}
    december = await _report(client, auditor_headers, "2026-12")
    assert _split(december["totals"]) == {"sent": 0, "sent_local": 0, "sent_forwarded": 0, "sent_from_upstream": 0}


# ---------------------------------------------------------------------------------------------- the console


@pytest.fixture
def federated(settings: Settings, db_url: str) -> Iterator[tuple[Traffic, str, str]]:
    """The same traffic on a gateway served on 127.0.0.1; the rows, its URL and an operator token."""

    async def write() -> Traffic:
        db = create_database(db_url)
        try:
            return await build(db)
        finally:
            await db.dispose()

    traffic = asyncio.run(write())
    with app_server(settings) as base:
        yield traffic, base, operator_token(db_url, "auditor")


def test_console_shows_where_each_document_went_and_the_report_columns(
    federated: tuple[Traffic, str, str], settings: Settings
) -> None:
    traffic, base, token = federated
    runner = CliRunner()
    env = {"GATEWAY_URL": base, "GATEWAY_TOKEN": token, "GATEWAY_DATABASE_URL": settings.effective_database_url,
           "GATEWAY_DATA_DIR": str(settings.data_dir)}

    def gateway(*args: str) -> str:
        result = runner.invoke(cli_app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result.stdout

    out = gateway("document", traffic.forwarded)
    assert f"{G22}: forwarded upstream (DocId U-1001) at 2026-11-04T10:00:02.000000+07:00" in out.splitlines()
    assert "arrived from upstream" not in out
    assert not any(line.startswith(f"{SNV}:") for line in out.splitlines())  # a local recipient: the table only
    out = gateway("document", traffic.waiting)
    assert f"{G22}: to be forwarded upstream (pending)" in out.splitlines()
    out = gateway("document", traffic.arrived)
    assert "arrived from upstream (DocId U-2001)" in out.splitlines()
    assert "forwarded upstream" not in out
    out = gateway("document", traffic.local)
    assert "upstream" not in out

    as_json = json.loads(gateway("report", "monthly", "--month", "2026-11", "--json"))
    assert {row["code"]: _split(row) for row in as_json["agencies"]} == SPLIT
    assert _split(as_json["totals"]) == SPLIT_TOTALS
    table = gateway("report", "monthly", "--month", "2026-11")
    rows = [[c.strip() for c in line.strip()[1:-1].split(line.strip()[0])]
            for line in table.splitlines() if line.strip()[:1] in ("┃", "│")]
    assert rows[0][:6] == ["code", "name", "sent", "local", "forwarded", "from upstream"]
    cells = {row[0] or row[1]: row[2:6] for row in rows if row[0] in (H41, SNV, G22) or row[:2] == ["", "total"]}
    assert cells == {H41: ["4", "1", "3", "0"], SNV: ["1", "1", "0", "0"], G22: ["2", "0", "0", "2"],
                     "total": ["7", "2", "3", "2"]}
