"""The monthly report (Điều 15.11): exact figures for a month of documents placed on Vietnam's month
boundaries, over the API and from the console, on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.agency.models import Agency
from gateway.auth.service import AuthService
from gateway.config import Settings
from gateway.db import Database
from gateway.documents.models import Attachment, Delivery, Document

A, B, C, D = "000.00.00.H41", "001.00.00.H41", "002.00.00.H41", "003.00.00.H41"
NOVEMBER_STARTS = datetime(2026, 10, 31, 17, 0, tzinfo=UTC)  # 2026-11-01 00:00 in Hà Nội
DECEMBER_STARTS = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


class Month:
    """November 2026, with documents on both sides of each boundary."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def agency(self, code: str, name: str) -> None:
        self.rows.append(Agency(code=code, name=name, delivery_mode="pull", signature_policy="required",
                                active=True, created_at=NOVEMBER_STARTS, updated_at=NOVEMBER_STARTS))

    def document(self, sender: str, sent_at: datetime, *, signed: bool = True, kind: str = "document",
                 status_code: str | None = None, refers_to: Document | None = None,
                 pdfs: tuple[str | None, ...] = ()) -> Document:
        doc = Document(id=str(uuid.uuid4()), kind=kind, sender=sender, document_id=f"{len(self.rows)}/VB",
                       envelope_sha256="0" * 64, envelope_size=1, multipart=False, signed=signed, priority=0,
                       business_doc_type=0, status_code=status_code, refers_to=refers_to.id if refers_to else None,
                       sent_at=sent_at, ledger_seq=0, ledger_hash="0" * 64)
        self.rows.append(doc)
        for i, pdf in enumerate(pdfs):
            self.rows.append(Attachment(document=doc.id, ordinal=i, content_id=f"a{i}", name=f"{i}.pdf",
                                        content_type="application/pdf", sha256="1" * 64, size=1, pdf_signature=pdf))
        return doc

    def delivery(self, doc: Document, recipient: str, state: str, after: timedelta | None = None) -> None:
        self.rows.append(Delivery(
            id=str(uuid.uuid4()), document=doc.id, recipient=recipient, mode="pull", state=state, priority=0,
            created_at=doc.sent_at, updated_at=doc.sent_at, attempts=1,
            received_at=doc.sent_at + after if after is not None else None,
        ))

    async def store(self, db: Database) -> None:
        async with db.transaction() as session:
            for row in self.rows:  # in order: foreign keys point backwards
                session.add(row)
                await session.flush()


@pytest.fixture
async def november(app: FastAPI) -> None:
    m = Month()
    m.agency(A, "UBND tỉnh Nghệ An")
    m.agency(B, "Sở Nội vụ")
    m.agency(C, "Sở Tài chính")
    m.agency(D, "Sở Y tế")  # idle all month
    # A, first instant of November: signed, one valid PDF signature; delivered to B after 60 s, dead for C.
    a1 = m.document(A, NOVEMBER_STARTS, pdfs=("valid",))
    m.delivery(a1, B, "delivered", s(60))
    m.delivery(a1, C, "dead")
    # A, last microsecond of October: not November's; but B received it in November, 30.000001 s later.
    a2 = m.document(A, NOVEMBER_STARTS - US)
    m.delivery(a2, B, "delivered", s(30) + US)
    # A, mid-month: not XML-signed, PDF signatures invalid and absent; B finished it (status 06).
    a3 = m.document(A, datetime(2026, 11, 15, 3, 0, tzinfo=UTC), signed=False, pdfs=("invalid", "none", None))
    m.delivery(a3, B, "delivered", s(120))
    m.delivery(a3, C, "pending")
    m.document(C, datetime(2026, 11, 16, tzinfo=UTC), kind="status", status_code="03", refers_to=a3)
    status_06 = m.document(B, datetime(2026, 11, 17, tzinfo=UTC), kind="status", status_code="06", refers_to=a3)
    m.delivery(status_06, A, "delivered", s(5))  # a status is not a document: A's `received` ignores it
    # A, last second of November: two valid PDF signatures (one document); C received it in December.
    a4 = m.document(A, DECEMBER_STARTS - s(1), pdfs=("valid", "valid"))
    m.delivery(a4, C, "delivered", s(2))
    # C: signed, no PDF; A after 10 s, B after 1000 s.
    c1 = m.document(C, datetime(2026, 11, 10, tzinfo=UTC))
    m.delivery(c1, A, "delivered", s(10))
    m.delivery(c1, B, "delivered", s(1000))
    await m.store(app.state.db)


EXPECTED: dict[str, dict[str, Any]] = {
    A: {"sent": 3, "received": 1, "delivered": 3, "dead": 1, "signed_xml": 2, "signed_pdf": 2,
        "signed_xml_share": 2 / 3, "signed_pdf_share": 2 / 3, "delivery_seconds_median": 10.0,
        "delivery_seconds_p95": 10.0, "status_06": 1},
    B: {"sent": 0, "received": 4, "delivered": 0, "dead": 0, "signed_xml": 0, "signed_pdf": 0,
        "signed_xml_share": None, "signed_pdf_share": None, "delivery_seconds_median": 90.0,
        "delivery_seconds_p95": 120 + 880 * 0.85, "status_06": 0},
    C: {"sent": 1, "received": 0, "delivered": 2, "dead": 0, "signed_xml": 1, "signed_pdf": 0,
        "signed_xml_share": 1.0, "signed_pdf_share": 0.0, "delivery_seconds_median": None,
        "delivery_seconds_p95": None, "status_06": 0},
    D: {"sent": 0, "received": 0, "delivered": 0, "dead": 0, "signed_xml": 0, "signed_pdf": 0,
        "signed_xml_share": None, "signed_pdf_share": None, "delivery_seconds_median": None,
        "delivery_seconds_p95": None, "status_06": 0},
}
TOTALS: dict[str, Any] = {
    "sent": 4, "received": 5, "delivered": 5, "dead": 1, "signed_xml": 3, "signed_pdf": 2, "signed_xml_share": 0.75,
    "signed_pdf_share": 0.5, "delivery_seconds_median": 60.0, "delivery_seconds_p95": 120 + 880 * 0.8,
    "status_06": 1,
}


def assert_figures(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert got[key] == value, key


@pytest.mark.usefixtures("november")
async def test_monthly_figures_per_agency_are_exact(client: httpx.AsyncClient, auditor_headers: dict[str, str]) -> None:
    r = await client.get("/v1/reports/monthly", params={"month": "2026-11"}, headers=auditor_headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["month"] == "2026-11"
    assert report["timezone"] == "Asia/Ho_Chi_Minh"
    assert report["start"] == "2026-11-01T00:00:00+07:00"
    assert report["end"] == "2026-12-01T00:00:00+07:00"
    assert [a["code"] for a in report["agencies"]] == [A, B, C, D]
    for row in report["agencies"]:
        assert_figures(row, EXPECTED[row["code"]])
    assert report["agencies"][1]["delivery_seconds_p95"] == pytest.approx(868.0)
    assert_figures(report["totals"], TOTALS)


@pytest.mark.usefixtures("november")
async def test_neighbouring_months_see_only_their_own_documents(
    client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    october = (await client.get("/v1/reports/monthly", params={"month": "2026-10"}, headers=auditor_headers)).json()
    by_code = {row["code"]: row for row in october["agencies"]}
    assert by_code[A]["sent"] == 1  # a2, one microsecond before November
    assert by_code[A]["delivered"] == 1
    assert by_code[B]["received"] == 0  # a2 arrived in November
    december = (await client.get("/v1/reports/monthly", params={"month": "2026-12"}, headers=auditor_headers)).json()
    by_code = {row["code"]: row for row in december["agencies"]}
    assert by_code[C]["received"] == 1  # a4, sent the last second of November
    assert by_code[C]["delivery_seconds_median"] == pytest.approx(2.0)
    assert december["totals"]["sent"] == 0


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "2026/11", "tháng 11", "0999-01"])
async def test_bad_month_is_a_422(client: httpx.AsyncClient, auditor_headers: dict[str, str], month: str) -> None:
    r = await client.get("/v1/reports/monthly", params={"month": month}, headers=auditor_headers)
    assert r.status_code == 422
    assert r.json()["type"] == "urn:gateway:problem:report-month-invalid"


async def test_report_is_for_operators_only(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await client.post("/v1/agencies", headers=admin_headers, json={
        "code": A, "name": "UBND tỉnh Nghệ An", "delivery": {"mode": "pull"}})
    async with app.state.db.transaction() as session:
        _, token = await AuthService(session).issue_agency_token(A, actor="console:test")
    r = await client.get("/v1/reports/monthly", params={"month": "2026-11"},
                         headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


@pytest.mark.usefixtures("november")
async def test_console_report_matches_the_api(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], settings: Settings
) -> None:
    env = {**os.environ, "GATEWAY_DATABASE_URL": settings.effective_database_url,
           "GATEWAY_DATA_DIR": str(settings.data_dir)}

    def gateway(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", "report", "monthly", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    printed = gateway("--month", "2026-11", "--json")
    assert printed.returncode == 0, printed.stderr
    console = json.loads(printed.stdout)
    api = (await client.get("/v1/reports/monthly", params={"month": "2026-11"}, headers=auditor_headers)).json()
    console.pop("generated_at")
    api.pop("generated_at")
    assert console == api

    table = gateway("--month", "2026-11")
    assert table.returncode == 0, table.stderr
    assert "Sở Nội vụ" in table.stdout
    assert "66.7%" in table.stdout  # A's share of signed documents
    bad = gateway("--month", "2026-13")
    assert bad.returncode == 1
    assert json.loads(bad.stderr)["type"] == "urn:gateway:problem:report-month-invalid"
