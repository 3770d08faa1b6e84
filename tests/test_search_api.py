"""Search over documents (``GET /v1/documents``, ``search_documents``) and deliveries (``GET /v1/deliveries``,
``search_deliveries``): each filter proven by a row that matches and one that does not, keyset pages that give
every item exactly once while new documents arrive, and an agency that never finds another's documents."""

from __future__ import annotations

import json
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.agency.models import Agency
from gateway.auth.service import AuthService
from gateway.db import Database
from gateway.delivery.search import DeliveryFilter, search_deliveries
from gateway.documents.models import Delivery, Document
from gateway.documents.search import DocumentFilter, search_documents
from gateway.principal import Principal
from gw import register, submit

A, B, C = "000.00.00.G22", "000.00.00.H41", "000.00.00.H47"
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def agency(code: str) -> Agency:
    return Agency(code=code, name=f"Cơ quan {code}", delivery_mode="pull", signature_policy="required", active=True,
                  created_at=T0, updated_at=T0)


def document(sender: str, document_id: str, sent_at: datetime, subject: str | None = None, *, kind: str = "document",
             status_code: str | None = None, deviations: str = "[]", multipart: bool = False) -> Document:
    return Document(id=str(uuid.uuid4()), kind=kind, sender=sender, document_id=document_id,
                    envelope_sha256="0" * 64, envelope_size=1, multipart=multipart, signed=True, priority=0,
                    business_doc_type=0, sent_at=sent_at, ledger_seq=0, ledger_hash="0" * 64, subject=subject,
                    status_code=status_code, deviations=deviations)


def delivery(doc: Document, recipient: str, state: str = "pending", *, mode: str = "pull",
             updated_at: datetime | None = None) -> Delivery:
    return Delivery(id=str(uuid.uuid4()), document=doc.id, recipient=recipient, mode=mode, state=state, priority=0,
                    created_at=doc.sent_at, updated_at=updated_at or doc.sent_at, attempts=0)


class World:
    """A sends d1 to B and d2 to C; B sends d3 to A; B reports a status about d1; C sends d4 (NFD subject) to A."""

    def __init__(self) -> None:
        self.d1 = document(A, "12/UBND-VP", T0, "Về việc tổ chức HỘI NGHỊ trực tuyến")
        self.d2 = document(A, "7/SNV-TCCB", T0 + timedelta(hours=1), "Báo cáo tiến độ 100% kế hoạch",
                           deviations=json.dumps([{"code": "legacy-signature", "where": "x"}]), multipart=True)
        self.d3 = document(B, "3/SYT-KHTC", T0 + timedelta(hours=2), "Giấy mời họp giao ban")
        self.s1 = document(B, "12/UBND-VP", T0 + timedelta(hours=3), None, kind="status", status_code="03")
        self.d4 = document(C, "9/STC-NS", T0 + timedelta(hours=4), unicodedata.normalize("NFD", "Kế hoạch ĐẦU TƯ công"))
        self.deliveries = {
            "d1": delivery(self.d1, B, "fetched", updated_at=T0 + timedelta(minutes=30)),
            "d2": delivery(self.d2, C, "pending", mode="push", updated_at=T0 + timedelta(hours=1)),
            "d3": delivery(self.d3, A, "delivered", updated_at=T0 + timedelta(hours=5)),
            "s1": delivery(self.s1, A, "pending", updated_at=T0 + timedelta(hours=3)),
            "d4": delivery(self.d4, A, "dead", mode="push", updated_at=T0 + timedelta(hours=4)),
        }
        self.headers: dict[str, dict[str, str]] = {}

    async def build(self, db: Database) -> None:
        async with db.transaction() as session:
            session.add_all([agency(A), agency(B), agency(C)])
            await session.flush()
            session.add_all([self.d1, self.d2, self.d3, self.s1, self.d4])
            await session.flush()
            session.add_all(list(self.deliveries.values()))
        for code in (A, B, C):
            async with db.transaction() as session:
                _, token = await AuthService(session).issue_agency_token(code, actor="console:test")
            self.headers[code] = {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(app: FastAPI) -> World:
    w = World()
    await w.build(app.state.db)
    return w


async def ids(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    r = await client.get("/v1/documents", params={"limit": "200", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


async def test_each_document_filter_keeps_the_matching_document_and_drops_the_other(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], world: World
) -> None:
    w, h = world, auditor_headers
    # No filter: every document (not statuses), newest first.
    assert await ids(client, h) == [w.d4.id, w.d3.id, w.d2.id, w.d1.id]
    assert await ids(client, h, document_id="12/UBND-VP") == [w.d1.id]
    assert await ids(client, h, document_id="12/UBND-VP", kind="any") == [w.s1.id, w.d1.id]
    assert await ids(client, h, kind="status") == [w.s1.id]
    assert await ids(client, h, sender=A) == [w.d2.id, w.d1.id]
    assert await ids(client, h, sender=C) == [w.d4.id]
    assert await ids(client, h, recipient=C) == [w.d2.id]
    assert await ids(client, h, recipient=A) == [w.d4.id, w.d3.id]
    assert await ids(client, h, state="fetched") == [w.d1.id]
    assert await ids(client, h, state="dead") == [w.d4.id]
    assert await ids(client, h, state="failed") == []
    # recipient and state together: the delivery to that recipient is in that state.
    assert await ids(client, h, recipient=A, state="dead") == [w.d4.id]
    assert await ids(client, h, recipient=B, state="dead") == []
    # The time range is half-open: from inclusive, to exclusive; a date is its midnight in Vietnam.
    one_hour = (T0 + timedelta(hours=1)).isoformat()
    assert await ids(client, h, sent_from=one_hour, sent_to=(T0 + timedelta(hours=2)).isoformat()) == [w.d2.id]
    assert await ids(client, h, sent_to=one_hour) == [w.d1.id]
    assert await ids(client, h, sent_from="2026-11-02T09:00:00+07:00") == [w.d4.id, w.d3.id, w.d2.id]
    assert await ids(client, h, sent_from="2026-11-03") == []
    assert await ids(client, h, sent_to="2026-11-03") == [w.d4.id, w.d3.id, w.d2.id, w.d1.id]


async def test_subject_text_matches_vietnamese_without_regard_to_case_on_both_databases(
    client: httpx.AsyncClient, admin_headers: dict[str, str], world: World
) -> None:
    w, h = world, admin_headers
    assert await ids(client, h, q="hội nghị") == [w.d1.id]  # stored upper case
    assert await ids(client, h, q="TỔ CHỨC Hội") == [w.d1.id]  # stored lower case
    assert await ids(client, h, q="giao ban") == [w.d3.id]
    assert await ids(client, h, q="hội họp") == []
    # Stored decomposed (NFD), asked composed, in the other case: Đ too.
    assert await ids(client, h, q="KẾ HOẠCH đầu tư") == [w.d4.id]
    # "kế hoạch" is in d2 (composed) and d4 (decomposed).
    assert await ids(client, h, q="kế hoạch") == [w.d4.id, w.d2.id]
    # LIKE's wildcards are taken literally.
    assert await ids(client, h, q="100%") == [w.d2.id]
    assert await ids(client, h, q="%") == [w.d2.id]
    assert await ids(client, h, q="_") == []


async def test_an_agency_finds_only_what_it_sent_or_received(
    client: httpx.AsyncClient, world: World
) -> None:
    w = world
    assert await ids(client, w.headers[C]) == [w.d4.id, w.d2.id]  # sent d4, received d2
    assert await ids(client, w.headers[C], sender=A) == [w.d2.id]
    assert await ids(client, w.headers[C], document_id="12/UBND-VP", kind="any") == []
    assert await ids(client, w.headers[C], q="hội nghị") == []
    assert await ids(client, w.headers[B], kind="any") == [w.s1.id, w.d3.id, w.d1.id]
    assert set(await ids(client, w.headers[A], kind="any")) == {w.d1.id, w.d2.id, w.d3.id, w.s1.id, w.d4.id}


async def test_keyset_pages_give_every_document_once_while_new_ones_arrive(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str], world: World
) -> None:
    db: Database = app.state.db
    # Several documents on the same instant too: the id breaks the tie.
    same = T0 + timedelta(hours=6)
    extra = [document(A, f"{n}/TEST", same if n % 2 else same + timedelta(seconds=n), f"Văn bản số {n}")
             for n in range(9)]
    async with db.transaction() as session:
        session.add_all(extra)
        await session.flush()
        session.add_all([delivery(d, B) for d in extra])
    expected = await ids(client, auditor_headers)
    assert len(expected) == 13
    seen: list[str] = []
    arrived: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/documents", params=params, headers=auditor_headers)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        # A document arrives between every two pages (newer than everything: it belongs before the cursor).
        newcomer = document(B, f"new-{pages}/TEST", datetime.now(UTC), "Văn bản mới")
        async with db.transaction() as session:
            session.add(newcomer)
            await session.flush()
            session.add(delivery(newcomer, A))
        arrived.append(newcomer.id)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert len(set(seen)) == len(seen)
    assert pages == 5
    # A fresh search finds the newcomers first.
    assert (await ids(client, auditor_headers))[:len(arrived)] == list(reversed(arrived))


async def test_search_documents_summaries_carry_recipients_states_and_counts(app: FastAPI, world: World) -> None:
    w = world
    async with app.state.db.read() as session:
        page = await search_documents(session, DocumentFilter(sender=A), Principal(kind="operator", name="x",
                                                                                   role="auditor"), limit=1)
        assert [s.id for s in page.items] == [w.d2.id]
        summary = page.items[0]
        assert (summary.recipients, summary.states, summary.multipart, summary.deviations) == (
            [C], {C: "pending"}, True, 1)
        assert summary.subject == "Báo cáo tiến độ 100% kế hoạch"
        assert page.next_cursor is not None
        rest = await search_documents(session, DocumentFilter(sender=A), Principal(kind="operator", name="x"),
                                      cursor=page.next_cursor)
        assert [s.id for s in rest.items] == [w.d1.id]
        assert rest.next_cursor is None
        # An agency principal: C never sees d1.
        mine = await search_documents(session, DocumentFilter(), Principal(kind="agency", name=C))
        assert {s.id for s in mine.items} == {w.d2.id, w.d4.id}
        status = await search_documents(session, DocumentFilter(kind="status"), Principal(kind="agency", name=B))
        assert [(s.kind, s.status_code) for s in status.items] == [("status", "03")]


@pytest.mark.parametrize(("params", "status", "slug", "field"), [
    ({"state": "lost"}, 422, "document-filter-invalid", "state"),
    ({"sent_from": "2026-11-03", "sent_to": "2026-11-02"}, 422, "document-filter-invalid", "sent_from"),
    ({"sent_from": "yesterday"}, 422, "document-filter-invalid", "sent_from"),
    ({"sent_to": "2026-11-02T08:00:00"}, 422, "document-filter-invalid", "sent_to"),  # no offset
    ({"sent_to": "2026-02-30"}, 422, "document-filter-invalid", "sent_to"),
    ({"kind": "memo"}, 422, "request-invalid", None),
    ({"cursor": "bm90IGEgY3Vyc29y"}, 400, "document-cursor-invalid", "cursor"),
    ({"cursor": "%%%"}, 400, "document-cursor-invalid", "cursor"),
    ({"limit": "0"}, 422, "request-invalid", None),
    ({"limit": "201"}, 422, "request-invalid", None),
    ({"q": "a\x00b"}, 422, "document-filter-invalid", "q"),
    # In range as written, out of range in UTC (as the database stores it).
    ({"sent_from": "0001-01-01"}, 422, "document-filter-invalid", "sent_from"),
    ({"sent_to": "9999-12-31T23:00:00-05:00"}, 422, "document-filter-invalid", "sent_to"),
    ({"cursor": "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzA3OjAwIiwgIngiXQ"}, 400, "document-cursor-invalid", "cursor"),
])
async def test_bad_search_parameters_are_problems(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], params: dict[str, str], status: int, slug: str,
    field: str | None,
) -> None:
    r = await client.get("/v1/documents", params=params, headers=auditor_headers)
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["type"] == f"urn:gateway:problem:{slug}"
    if field is not None:
        assert problem["field"] == field


async def test_document_id_callers_keep_full_views(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # End to end: a real signed envelope; ?document_id= answers the full views it always did (recipients as
    # objects, attachments, statuses), plus next_cursor.
    a = await register(client, admin_headers, A, "Văn phòng Chính phủ")
    b = await register(client, admin_headers, B, "UBND tỉnh Nghệ An")
    receipt = await submit(client, a, a.envelope(b, subject="Về việc HỘI NGHỊ tổng kết"))
    assert receipt.status_code == 201, receipt.text
    doc = receipt.headers["X-Gateway-Document-Id"]
    view = (await client.get(f"/v1/documents/{doc}", headers=b.headers)).json()
    listed = (await client.get("/v1/documents", params={"document_id": view["document_id"]},
                               headers=b.headers)).json()
    assert listed == {"items": [view], "next_cursor": None}
    found = (await client.get("/v1/documents", params={"q": "hội nghị tổng"}, headers=a.headers)).json()
    assert [item["id"] for item in found["items"]] == [doc]
    assert found["items"][0]["recipients"][0]["code"] == B


# -- deliveries ----------------------------------------------------------------------------------------------------

async def delivery_ids(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    r = await client.get("/v1/deliveries", params={"limit": "200", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


async def test_each_delivery_filter_keeps_the_matching_delivery_and_drops_the_other(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], world: World
) -> None:
    d, h = world.deliveries, auditor_headers
    newest = [d["d3"].id, d["d4"].id, d["s1"].id, d["d2"].id, d["d1"].id]
    assert await delivery_ids(client, h) == newest
    assert await delivery_ids(client, h, order="oldest") == list(reversed(newest))
    assert await delivery_ids(client, h, state="dead") == [d["d4"].id]
    assert await delivery_ids(client, h, state="pending", order="oldest") == [d["d2"].id, d["s1"].id]
    assert await delivery_ids(client, h, recipient=A) == [d["d3"].id, d["d4"].id, d["s1"].id]
    assert await delivery_ids(client, h, sender=A) == [d["d2"].id, d["d1"].id]
    assert await delivery_ids(client, h, mode="push") == [d["d4"].id, d["d2"].id]
    assert await delivery_ids(client, h, document=world.d1.id) == [d["d1"].id]
    assert await delivery_ids(client, h, updated_from=(T0 + timedelta(hours=3)).isoformat(),
                              updated_to=(T0 + timedelta(hours=5)).isoformat()) == [d["d4"].id, d["s1"].id]
    r = await client.get("/v1/deliveries", params={"document": world.d4.id}, headers=h)
    (item,) = r.json()["items"]
    assert item == {
        "id": d["d4"].id, "document": world.d4.id, "document_id": "9/STC-NS", "sender": C, "recipient": A,
        "mode": "push", "state": "dead", "attempts": 0, "last_error": None, "next_attempt_at": None,
        "created_at": item["created_at"], "updated_at": item["updated_at"], "received_at": None,
    }
    assert datetime.fromisoformat(item["updated_at"]) == T0 + timedelta(hours=4)


async def test_delivery_pages_in_both_orders_give_every_delivery_once(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], world: World
) -> None:
    for order in ("newest", "oldest"):
        expected = await delivery_ids(client, admin_headers, order=order)
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2, "order": order}
        while True:
            page = (await client.get("/v1/deliveries", params=params, headers=admin_headers)).json()
            seen += [item["id"] for item in page["items"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == expected
        # A cursor of one order is refused by the other.
        other = "oldest" if order == "newest" else "newest"
        first = (await client.get("/v1/deliveries", params={"limit": 1, "order": order}, headers=admin_headers))
        r = await client.get("/v1/deliveries", params={"order": other, "cursor": first.json()["next_cursor"]},
                             headers=admin_headers)
        assert (r.status_code, r.json()["type"]) == (400, "urn:gateway:problem:delivery-cursor-invalid")
    async with app.state.db.read() as session:
        page = await search_deliveries(session, DeliveryFilter(state="pending"), order="oldest", limit=1)
        assert [s.id for s in page.items] == [world.deliveries["d2"].id]
        rest = await search_deliveries(session, DeliveryFilter(state="pending"), order="oldest",
                                       cursor=page.next_cursor)
        assert [s.id for s in rest.items] == [world.deliveries["s1"].id]


@pytest.mark.parametrize(("params", "status", "slug"), [
    ({"state": "stuck"}, 422, "delivery-filter-invalid"),
    ({"mode": "fax"}, 422, "delivery-filter-invalid"),
    ({"updated_from": "2026-11-03", "updated_to": "2026-11-02"}, 422, "delivery-filter-invalid"),
    ({"updated_to": "soon"}, 422, "delivery-filter-invalid"),
    ({"order": "random"}, 422, "request-invalid"),
    ({"cursor": "eyJ4Ijox"}, 400, "delivery-cursor-invalid"),
])
async def test_bad_delivery_parameters_are_problems(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], params: dict[str, str], status: int, slug: str
) -> None:
    r = await client.get("/v1/deliveries", params=params, headers=auditor_headers)
    assert (r.status_code, r.json()["type"]) == (status, f"urn:gateway:problem:{slug}")


async def test_agencies_cannot_list_deliveries(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get("/v1/deliveries", headers=world.headers[A])
    assert (r.status_code, r.json()["type"]) == (403, "urn:gateway:problem:forbidden")
