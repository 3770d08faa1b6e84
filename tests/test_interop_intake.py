"""Intake as real software uses it (issue 13), on bytes these tests build: aliases, recalls, updates and
replacements that repeat their original's DocumentId, statuses linked by DocumentId, and deviations shown in
the document view, the ledger and the monthly report. Both databases, through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from delivery_support import ledger_types
from gateway.envelope import ResponseFor, StatusSpec, build_status
from gateway.reports.service import VN_TZ
from gw import Agency, register, submit


async def _send(client: httpx.AsyncClient, sender: Agency, *to: Agency, **spec: Any) -> httpx.Response:
    return await submit(client, sender, sender.envelope(*to, **spec))


async def _view(client: httpx.AsyncClient, agency: Agency, doc: str) -> dict[str, Any]:
    r = await client.get(f"/v1/documents/{doc}", headers=agency.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _inbox_ids(client: httpx.AsyncClient, agency: Agency) -> list[str]:
    r = await client.get("/v1/inbox", headers=agency.headers)
    return [i["id"] for i in r.json()["items"]]


async def test_recall_update_and_replace_repeating_the_documentid_refer_to_the_original(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    first = await _send(client, sender, h41, code_number="7816")
    assert first.status_code == 201, first.text
    original = first.headers["X-Gateway-Document-Id"]
    document_id = (await _view(client, sender, original))["document_id"]
    before = await _view(client, sender, original)

    followers = []
    for bdt in (1, 2, 3):
        r = await _send(client, sender, h41, code_number="7816", document_id=document_id, business_doc_type=bdt,
                        subject=f"Thu hồi / cập nhật / thay thế {bdt}")
        assert r.status_code == 201, r.text
        doc = r.headers["X-Gateway-Document-Id"]
        view = await _view(client, sender, doc)
        assert (view["business_doc_type"], view["refers_to"], view["document_id"]) == (bdt, original, document_id)
        assert view["deviations"] == []
        followers.append(doc)
    # Delivered to its recipients like any document; the original is never altered (Điều 12.8).
    assert set(followers) <= set(await _inbox_ids(client, h41))
    after = await _view(client, sender, original)
    assert after == before
    accepted = [d for t, _, d in await ledger_types(app.state.db) if t == "envelope.accepted"]
    assert [d["refers_to"] for d in accepted] == [None, original, original, original]
    assert [d["business_doc_type"] for d in accepted] == [0, 1, 2, 3]

    # The same recall bytes again: its first receipt. A new document under the same DocumentId: still 409.
    recall = sender.envelope(h41, code_number="7816", document_id=document_id, business_doc_type=1,
                             subject="Thu hồi lần hai")
    r1 = await submit(client, sender, recall)
    r2 = await submit(client, sender, recall)
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r1.content == r2.content
    changed = await _send(client, sender, h41, code_number="7816", document_id=document_id, subject="khác")
    assert changed.status_code == 409
    assert changed.json()["type"] == "urn:gateway:problem:document-changed"


async def test_a_recall_of_a_document_the_gateway_never_saw_is_accepted_and_says_so(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    r = await _send(client, sender, h41, document_id="000.00.00.G22,2020/01/02,1/VPCP", business_doc_type=1)
    assert r.status_code == 201, r.text
    view = await _view(client, sender, r.headers["X-Gateway-Document-Id"])
    assert view["refers_to"] is None
    assert view["deviations"] == [{"code": "original-unknown", "where": "TraceHeaderList/Bussiness/BussinessDocType"}]


async def test_to_and_from_by_alias_resolve_to_the_primary_code(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.A80", aliases=["vxp.saas.03"], policy="channel")
    h17 = await register(client, admin_headers, "000.00.00.H17", aliases=["28.22.H17"])
    by_alias = Agency(code="28.22.H17", name="UBND xã Hòa Sơn", keys=h17.keys)
    r = await _send(client, sender, by_alias, sign_it=False)
    assert r.status_code == 201, r.text
    doc = r.headers["X-Gateway-Document-Id"]
    view = await _view(client, sender, doc)
    assert [x["code"] for x in view["recipients"]] == ["000.00.00.H17"]
    assert view["deviations"] == [{"code": "addressed-by-alias", "where": "To[1]/OrganId"}]
    assert doc in await _inbox_ids(client, h17)

    # From naming the sender by its alias (the authenticated agency is still the sender).
    as_alias = Agency(code="vxp.saas.03", name=sender.name, keys=sender.keys, token=sender.token)
    r = await _send(client, as_alias, h17, sign_it=False, code_number="99",
                    document_id="000.00.00.A80,2026/01/02,99/VPCP-TTĐT")
    assert r.status_code == 201, r.text
    view = await _view(client, sender, r.headers["X-Gateway-Document-Id"])
    assert view["sender"] == "000.00.00.A80"
    # Its software also writes the alias in its TraceHeader, which is no code of the pattern.
    assert view["deviations"] == [
        {"code": "addressed-by-alias", "where": "From/OrganId"},
        {"code": "organ-id-nonstandard", "where": "TraceHeaderList/TraceHeader[1]/OrganId"},
    ]
    entry = [d for t, _, d in await ledger_types(app.state.db) if t == "envelope.accepted"][-1]
    assert entry["deviations"] == view["deviations"]

    # An alias of the code's form (a former code): resolved too, once the codes alone name no agency.
    assert (await client.patch(f"/v1/agencies/{h17.code}", json={"aliases": ["28.22.H17", "000.00.00.H98"]},
                               headers=admin_headers)).status_code == 200
    former = Agency(code="000.00.00.H98", name="UBND xã Hòa Sơn (mã cũ)", keys=h17.keys)
    r = await _send(client, sender, former, sign_it=False, code_number="98")
    assert r.status_code == 201, r.text
    view = await _view(client, sender, r.headers["X-Gateway-Document-Id"])
    assert [x["code"] for x in view["recipients"]] == ["000.00.00.H17"]
    assert view["deviations"] == [{"code": "addressed-by-alias", "where": "To[1]/OrganId"}]

    # A To that is no code and no alias: as before.
    stranger = Agency(code="000.00.00.H99", name="?", keys=h17.keys)
    r = await _send(client, sender, stranger, sign_it=False, code_number="100")
    assert (r.status_code, r.json()["type"]) == (422, "urn:gateway:problem:recipient-unknown")
    odd = Agency(code="29.22.H17", name="?", keys=h17.keys)
    r = await _send(client, sender, odd, sign_it=False, code_number="101")
    assert (r.status_code, r.json()["type"]) == (422, "urn:gateway:problem:recipient-id-malformed")


async def test_a_document_sent_to_its_own_sender_is_delivered_and_recorded(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    r = await _send(client, sender, sender)
    assert r.status_code == 201, r.text
    doc = r.headers["X-Gateway-Document-Id"]
    view = await _view(client, sender, doc)
    assert view["deviations"] == [{"code": "sent-to-self", "where": "To[1]/OrganId"}]
    assert doc in await _inbox_ids(client, sender)


async def test_a_13_naming_the_recipient_in_responsefor_is_linked_by_documentid(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # As the axis SDK writes it (sample ext07): From is the original sender, ResponseFor/OrganId the recipient.
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    r = await _send(client, sender, h41)
    doc = r.headers["X-Gateway-Document-Id"]
    document_id = (await _view(client, sender, doc))["document_id"]
    xml = sender.sign(build_status(StatusSpec(
        response_for=ResponseFor(organ_id=h41.code, document_id=document_id), sender=sender.organ, status_code="13",
        description="Văn thư yêu cầu lấy lại văn bản điện tử")))
    r = await client.post("/v1/statuses", content=xml, headers={**sender.headers, "Content-Type": "application/xml"})
    assert r.status_code == 201, r.text
    status_id = r.headers["X-Gateway-Document-Id"]
    assert (await _view(client, sender, status_id))["refers_to"] == doc
    assert status_id in await _inbox_ids(client, h41)


async def test_deviations_are_counted_per_sending_agency_in_the_monthly_report(
    client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    h17 = await register(client, admin_headers, "000.00.00.H17", aliases=["28.22.H17"])
    by_alias = Agency(code="28.22.H17", name="x", keys=h17.keys)
    for n in ("1", "2"):
        assert (await _send(client, sender, by_alias, code_number=n)).status_code == 201
    assert (await _send(client, sender, sender, code_number="3")).status_code == 201
    assert (await _send(client, sender, h17, code_number="4")).status_code == 201
    month = datetime.now(UTC).astimezone(VN_TZ).strftime("%Y-%m")
    report = (await client.get(f"/v1/reports/monthly?month={month}", headers=auditor_headers)).json()
    [row] = [a for a in report["agencies"] if a["code"] == sender.code]
    assert row["deviations"] == {"addressed-by-alias": 2, "sent-to-self": 1}
    assert row["with_deviations"] == 3
    assert report["totals"]["deviations"] == {"addressed-by-alias": 2, "sent-to-self": 1}
    [quiet] = [a for a in report["agencies"] if a["code"] == h17.code]
    assert (quiet["deviations"], quiet["with_deviations"]) == ({}, 0)
