"""``GET /v1/ledger``: filters, keyset pages, CSV export, and what an agency may see (its own documents)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from gateway.agency.models import Agency
from gateway.auth.service import AuthService
from gateway.db import Database
from gateway.documents.models import Delivery, Document
from gateway.ledger import endpoints
from gateway.ledger import service as ledger
from gateway.ledger.chain import EntryFields, canonical_json, entry_hash
from gateway.ledger.models import LedgerEntry

A, B, C = "000.00.00.H41", "001.00.00.H41", "002.00.00.H41"
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def agency(code: str) -> Agency:
    return Agency(code=code, name=f"Cơ quan {code}", delivery_mode="pull", signature_policy="required", active=True,
                  created_at=T0, updated_at=T0)


def document(sender: str, document_id: str, sent_at: datetime = T0) -> Document:
    return Document(id=str(uuid.uuid4()), kind="document", sender=sender, document_id=document_id,
                    envelope_sha256="0" * 64, envelope_size=1, multipart=False, signed=True, priority=0,
                    business_doc_type=0, sent_at=sent_at, ledger_seq=0, ledger_hash="0" * 64)


def delivery(doc: Document, recipient: str) -> Delivery:
    return Delivery(id=str(uuid.uuid4()), document=doc.id, recipient=recipient, mode="pull", state="pending",
                    priority=0, created_at=T0, updated_at=T0, attempts=0)


class World:
    """Three agencies; A sends doc1 to B; C sends doc2 to A and doc3 to B; some admin entries."""

    def __init__(self) -> None:
        self.doc1 = document(A, "12/UBND-VP")
        self.doc2 = document(C, "7/SNV-TCCB")
        self.doc3 = document(C, "=HYPERLINK(\"http://evil.example\")")
        self.seqs: dict[str, int] = {}
        self.headers: dict[str, dict[str, str]] = {}

    async def build(self, db: Database) -> None:
        async with db.transaction() as session:
            session.add_all([agency(A), agency(B), agency(C)])
            await session.flush()
            session.add_all([self.doc1, self.doc2, self.doc3])
            await session.flush()
            session.add_all([delivery(self.doc1, B), delivery(self.doc2, A), delivery(self.doc3, B)])
        for letter, code in (("A", A), ("B", B)):
            async with db.transaction() as session:
                _, token = await AuthService(session).issue_agency_token(code, actor="console:test")
            self.headers[code] = {"Authorization": f"Bearer {token}"}
            self.seqs[f"token for {letter}"] = await head_seq(db)
        steps: list[tuple[str, dict[str, Any]]] = [
            ("doc1 accepted", {"type": "envelope.accepted", "actor": f"agency:{A}", "document": self.doc1.id,
                               "document_id": self.doc1.document_id, "sender": A}),
            ("doc2 accepted", {"type": "envelope.accepted", "actor": f"agency:{C}", "document": self.doc2.id,
                               "document_id": self.doc2.document_id, "sender": C}),
            ("doc3 accepted", {"type": "envelope.accepted", "actor": f"agency:{C}", "document": self.doc3.id,
                               "document_id": self.doc3.document_id, "sender": C}),
            ("token for C", {"type": "token.issued", "actor": "console:test", "sender": C}),
            ("refused for B", {"type": "envelope.refused", "actor": f"agency:{C}", "sender": C, "recipient": B,
                               "details": {"rule": "recipient-unknown", "sha256": "ab" * 32}}),
        ]
        for name, fields in steps:
            async with db.transaction() as session:
                entry = await ledger.append(session, **fields)
                self.seqs[name] = entry.seq


@pytest.fixture
async def world(app: FastAPI) -> World:
    w = World()
    await w.build(app.state.db)
    return w


async def head_seq(db: Database) -> int:
    async with db.transaction() as session:
        return int((await session.execute(select(func.max(LedgerEntry.seq)))).scalar_one())


async def seqs(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[int]:
    r = await client.get("/v1/ledger", params={"limit": "1000", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return [item["seq"] for item in r.json()["items"]]


async def test_operator_filters_narrow_to_exactly_the_matching_entries(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], world: World
) -> None:
    s = world.seqs
    everything = await seqs(client, auditor_headers)
    assert everything == sorted(everything)
    assert set(s.values()) <= set(everything)
    assert await seqs(client, auditor_headers, agency=B) == [s["token for B"], s["refused for B"]]
    assert await seqs(client, auditor_headers, agency=A) == [s["token for A"], s["doc1 accepted"]]
    assert await seqs(client, auditor_headers, document=world.doc2.id) == [s["doc2 accepted"]]
    assert await seqs(client, auditor_headers, document_id="7/SNV-TCCB") == [s["doc2 accepted"]]
    assert await seqs(client, auditor_headers, type="token.issued") == [s["token for A"], s["token for B"],
                                                                         s["token for C"]]
    assert await seqs(client, auditor_headers, type="token.issued", agency=C) == [s["token for C"]]
    assert await seqs(client, auditor_headers, agency="003.00.00.H41") == []


async def test_time_range_is_half_open_and_reads_any_offset(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], world: World
) -> None:
    items = (await client.get("/v1/ledger", params={"limit": "1000"}, headers=auditor_headers)).json()["items"]
    instant = datetime.fromisoformat(items[3]["recorded_at"])
    at_vn = instant.astimezone(timezone(timedelta(hours=7))).isoformat()  # the same instant, written in +07:00
    expected_from = [i["seq"] for i in items if datetime.fromisoformat(i["recorded_at"]) >= instant]
    expected_before = [i["seq"] for i in items if datetime.fromisoformat(i["recorded_at"]) < instant]
    assert items[3]["seq"] in expected_from
    assert await seqs(client, auditor_headers, **{"from": at_vn}) == expected_from
    assert await seqs(client, auditor_headers, to=at_vn) == expected_before
    # A "+" that was not URL-encoded arrives as a space; it is read as "+".
    raw = await client.get(f"/v1/ledger?limit=1000&from={at_vn.replace('+', '%20')}", headers=auditor_headers)
    assert [i["seq"] for i in raw.json()["items"]] == expected_from


async def test_pages_follow_the_cursor_to_the_end_without_gaps(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], world: World
) -> None:
    everything = await seqs(client, auditor_headers)
    collected: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/ledger", params=params, headers=auditor_headers)).json()
        collected += [item["seq"] for item in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert collected == everything
    assert pages == (len(everything) + 1) // 2
    default = (await client.get("/v1/ledger", headers=auditor_headers)).json()
    assert len(default["items"]) == len(everything)
    assert default["next"] is None


async def test_agency_sees_only_entries_about_its_own_documents(
    client: httpx.AsyncClient, world: World
) -> None:
    s = world.seqs
    # A is named by its token entry, sent doc1 and received doc2; doc3 (C to B) and C's token are not its business.
    assert await seqs(client, world.headers[A]) == [s["token for A"], s["doc1 accepted"], s["doc2 accepted"]]
    # B received doc1 and doc3, though their entries name only the sender; and it is the refused recipient.
    assert await seqs(client, world.headers[B]) == [s["token for B"], s["doc1 accepted"], s["doc3 accepted"],
                                                    s["refused for B"]]
    # Filters narrow within what the agency may see, never beyond it.
    assert await seqs(client, world.headers[A], agency=C) == [s["doc2 accepted"]]
    assert await seqs(client, world.headers[A], document=world.doc3.id) == []


async def test_entry_hash_can_be_recomputed_from_the_json_alone(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], world: World
) -> None:
    items = (await client.get("/v1/ledger", params={"limit": "1000"}, headers=auditor_headers)).json()["items"]
    refused = next(i for i in items if i["seq"] == world.seqs["refused for B"])
    assert refused["details"] == {"rule": "recipient-unknown", "sha256": "ab" * 32}
    assert refused["recorded_at"].endswith("Z")
    assert len(refused["recorded_at"]) == len("2026-11-02T01:00:00.000000Z")
    for item in items:
        fields = EntryFields(item["seq"], datetime.fromisoformat(item["recorded_at"]), item["type"], item["actor"],
                             item["document"], item["document_id"], item["sender"], item["recipient"],
                             item["prev_hash"], canonical_json(item["details"]))
        assert entry_hash(fields) == item["hash"]


async def test_csv_export_streams_the_same_rows_and_defuses_formulas(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str], world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoints, "_CSV_BATCH", 2)  # several batches, even for a small ledger
    as_json = (await client.get("/v1/ledger", params={"limit": "1000", "agency": C},
                                headers=auditor_headers)).json()["items"]
    r = await client.get("/v1/ledger", params={"agency": C, "limit": "1"},
                         headers={**auditor_headers, "Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # the BOM spreadsheets need (tests/test_rough_edges.py)
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [int(row["seq"]) for row in rows] == [item["seq"] for item in as_json]  # limit does not apply
    doc3 = next(row for row in rows if row["document"] == world.doc3.id)
    assert doc3["document_id"] == "'=HYPERLINK(\"http://evil.example\")"
    assert all(row["hash"] == item["hash"] for row, item in zip(rows, as_json, strict=True))
    # JSON stays the default, and wins a tie.
    tie = await client.get("/v1/ledger", headers={**auditor_headers, "Accept": "text/csv;q=0.5, application/json"})
    assert tie.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("params", "field"), [
    ({"agency": "<b>000.00.00.H41</b>"}, "agency"),
    ({"document": "../../etc/passwd"}, "document"),
    ({"document_id": "x" * 301}, "document_id"),
    ({"document_id": "line\nbreak"}, "document_id"),
    ({"type": "envelope.stolen"}, "type"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-12-24T10:00:00"}, "from"),
    ({"to": "2026-02-30T00:00:00Z"}, "to"),
    ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "١٢"}, "limit"),
    ({"cursor": "garbage!"}, "cursor"),
    ({"cursor": "c2VxOi0x"}, "cursor"),
])
async def test_bad_filters_are_a_422_naming_the_parameter(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    r = await client.get("/v1/ledger", params=params, headers=auditor_headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "urn:gateway:problem:ledger-filter-invalid"
    assert body["field"] == field
    hostile = [value for value in params.values() if len(value) > 4]
    assert not any(value in body["detail"] for value in hostile)


async def test_ledger_needs_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/ledger")
    assert r.status_code == 401
    assert r.json()["type"] == "urn:gateway:problem:unauthenticated"
