"""Status messages: from a recipient back to the sender (push or pull), a recall from the sender to the
recipients with 15 and 16 answers, and every refusal with its own problem type, ledgered; both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from lxml import etree

from delivery_support import Recipient, eventually, ledger_types
from gateway.config import Settings
from gateway.envelope import EDXML_NS, ResponseFor, StatusSpec, build_status, verify_receipt
from gw import Agency, register, submit

E = f"{{{EDXML_NS}}}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_workers": True, "worker_poll_seconds": 0.05,
                                       "delivery_backoff_base_seconds": 0.05, "delivery_backoff_cap_seconds": 0.2})


@pytest.fixture
def servers() -> Iterator[list[Recipient]]:
    started: list[Recipient] = []
    yield started
    for server in started:
        server.stop()


def status(reporter: Agency, original_sender: Agency, document_id: str, code: str, *, sign_it: bool = True,
           description: str | None = "ghi chú") -> bytes:
    xml = build_status(StatusSpec(response_for=ResponseFor(organ_id=original_sender.code, document_id=document_id),
                                  sender=reporter.organ, status_code=code, description=description))
    return reporter.sign(xml) if sign_it else xml


async def post_status(client: httpx.AsyncClient, agency: Agency, xml: bytes) -> httpx.Response:
    return await client.post("/v1/statuses", content=xml,
                             headers={**agency.headers, "Content-Type": "application/xml"})


async def send_document(client: httpx.AsyncClient, sender: Agency, *to: Agency, **spec: Any) -> tuple[str, str]:
    r = await submit(client, sender, sender.envelope(*to, **spec))
    assert r.status_code == 201, r.text
    doc = r.headers["X-Gateway-Document-Id"]
    view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
    return doc, view["document_id"]


async def inbox(client: httpx.AsyncClient, agency: Agency) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get("/v1/inbox", headers=agency.headers)).json()["items"]
    return items


async def take(client: httpx.AsyncClient, agency: Agency, item: dict[str, Any]) -> bytes:
    got = await client.get(f"/v1/inbox/{item['delivery_id']}", headers=agency.headers)
    assert got.status_code == 200
    r = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"}, headers=agency.headers)
    assert r.status_code == 200, r.text
    return got.content


def code_of(xml: bytes) -> str | None:
    return etree.fromstring(xml).findtext(f".//{E}StatusCode")


async def test_statuses_travel_back_to_a_push_sender(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    sender_system = Recipient("000.00.00.G22", app.state.gateway_key.certificate).start()
    servers.append(sender_system)
    sender = await register(client, admin_headers, "000.00.00.G22", delivery=sender_system.delivery)
    h41 = await register(client, admin_headers, "000.00.00.H41")
    doc, document_id = await send_document(client, sender, h41)
    [item] = await inbox(client, h41)
    await take(client, h41, item)
    # The gateway's own 01 reaches the sender's system first.
    await eventually(lambda: len(sender_system.delivered()) == 1, what="status 01 pushed to the sender")

    xml = status(h41, sender, document_id, "03")
    r = await post_status(client, h41, xml)
    assert r.status_code == 201, r.text
    receipt = verify_receipt(r.content, app.state.gateway_key.certificate)
    assert receipt.kind == "status"
    assert receipt.recipients == (sender.code,)
    await eventually(lambda: len(sender_system.delivered()) == 2, what="status 03 pushed to the sender")
    first, second = sender_system.delivered()
    assert (first.kind, code_of(first.envelope), first.sender, first.refers_to) == ("status", "01", h41.code, doc)
    assert (second.kind, second.envelope, second.refers_to) == ("status", xml, doc)
    assert second.verified, second.error

    view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
    assert view["recipients"][0]["status"] == "03"
    status_view = (await client.get(r.headers["Location"], headers=h41.headers)).json()
    assert (status_view["kind"], status_view["status_code"], status_view["refers_to"]) == ("status", "03", doc)
    # Ledgered: the status accepted, then its delivery.
    entries = await ledger_types(app.state.db, r.headers["X-Gateway-Document-Id"])
    assert entries[0][0] == "status.accepted"
    assert entries[0][2]["routed_to"] == [sender.code]
    assert "delivery.delivered" in [t for t, _, _ in entries]


async def test_statuses_travel_back_to_a_pull_sender(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    h41_system = Recipient("000.00.00.H41", app.state.gateway_key.certificate).start()
    servers.append(h41_system)
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41", delivery=h41_system.delivery)
    doc, document_id = await send_document(client, sender, h41)
    await eventually(lambda: len(h41_system.delivered()) == 1, what="the document pushed")

    async def statuses() -> list[dict[str, Any]]:
        return [i for i in await inbox(client, sender) if i["kind"] == "status"]

    await eventually(lambda: _len_is(statuses, 1), what="status 01 in the sender's inbox")
    steps = [("03", "đã vào sổ"), ("04", "giao phòng"), ("05", "đang xử lý"), ("05", "vẫn xử lý"), ("06", "xong")]
    for code, text in steps:
        r = await post_status(client, h41, status(h41, sender, document_id, code, description=text))
        assert r.status_code == 201, r.text
    items = await statuses()
    got = [code_of(await take(client, sender, i)) for i in items]
    assert got[0] == "01"
    assert sorted(got[1:]) == ["03", "04", "05", "05", "06"]
    assert {i["sender"] for i in items} == {h41.code}
    assert {i["refers_to"] for i in items} == {doc}


async def _len_is(fn: Any, n: int) -> bool:
    return len(await fn()) == n


async def test_recall_goes_to_the_recipients_who_answer_15_and_16(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    h42_system = Recipient("000.00.00.H42", app.state.gateway_key.certificate).start()
    servers.append(h42_system)
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    h42 = await register(client, admin_headers, "000.00.00.H42", delivery=h42_system.delivery)
    doc, document_id = await send_document(client, sender, h41, h42)
    await eventually(lambda: len(h42_system.delivered()) == 1, what="the document pushed")

    # A recipient may not recall.
    r = await post_status(client, h41, status(h41, sender, document_id, "13"))
    assert r.status_code == 422
    assert r.json()["type"] == "urn:gateway:problem:status-code-not-allowed"

    recall = status(sender, sender, document_id, "13", description="Văn bản ban hành nhầm")
    r = await post_status(client, sender, recall)
    assert r.status_code == 201, r.text
    assert verify_receipt(r.content, app.state.gateway_key.certificate).recipients == (h41.code, h42.code)
    # To the pull recipient's inbox and the push recipient's system.
    [item] = [i for i in await inbox(client, h41) if i["kind"] == "status"]
    assert (item["sender"], item["status_code"], item["refers_to"]) == (sender.code, "13", doc)
    assert await take(client, h41, item) == recall
    await eventually(lambda: len(h42_system.delivered()) == 2, what="the recall pushed")
    pushed = h42_system.delivered()[1]
    assert (pushed.kind, pushed.envelope, pushed.sender) == ("status", recall, sender.code)

    # The sender may do nothing but recall.
    r = await post_status(client, sender, status(sender, sender, document_id, "03"))
    assert r.status_code == 422
    assert r.json()["type"] == "urn:gateway:problem:status-code-not-allowed"

    assert (await post_status(client, h41, status(h41, sender, document_id, "15"))).status_code == 201
    assert (await post_status(client, h42, status(h42, sender, document_id, "16",
                                                  description="Đã phát hành nội bộ"))).status_code == 201
    answers = [i for i in await inbox(client, sender) if i["status_code"] in ("15", "16")]
    assert {(i["sender"], i["status_code"]) for i in answers} == {(h41.code, "15"), (h42.code, "16")}
    view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
    assert {x["code"]: x["status"] for x in view["recipients"]} == {h41.code: "15", h42.code: "16"}
    # The original is never altered (Điều 12.8): still delivered, same digest.
    assert all(x["state"] == "delivered" for x in view["recipients"] if x["code"] == h42.code)


async def test_a_status_from_an_outsider_looks_exactly_like_one_about_a_missing_document(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    outsider = await register(client, admin_headers, "000.00.00.H43")
    _, document_id = await send_document(client, sender, h41)
    about_real = await post_status(client, outsider, status(outsider, sender, document_id, "03"))
    about_nothing = await post_status(client, outsider, status(outsider, sender, document_id + "9", "03"))
    assert about_real.status_code == about_nothing.status_code == 404
    assert about_real.json() == about_nothing.json()
    assert about_real.json()["type"] == "urn:gateway:problem:document-not-found"
    refused = [d for t, _, d in await ledger_types(app.state.db) if t == "status.refused"]
    assert [d["rule"] for d in refused] == ["document-not-found", "document-not-found"]


async def test_duplicate_statuses_are_refused_except_in_progress(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    _, document_id = await send_document(client, sender, h41)
    first = status(h41, sender, document_id, "03")
    r = await post_status(client, h41, first)
    assert r.status_code == 201
    # The same bytes again: the same receipt, nothing new.
    again = await post_status(client, h41, first)
    assert again.status_code == 200
    assert again.content == r.content
    # The same code in other bytes: a duplicate.
    dup = await post_status(client, h41, status(h41, sender, document_id, "03", description="lần hai"))
    assert dup.status_code == 409
    assert dup.json()["type"] == "urn:gateway:problem:status-duplicate"
    # 05 may repeat.
    for text in ("bắt đầu", "tiếp tục"):
        assert (await post_status(client, h41, status(h41, sender, document_id, "05", description=text))
                ).status_code == 201
    refused = [d for t, _, d in await ledger_types(app.state.db) if t == "status.refused"]
    assert [d["rule"] for d in refused] == ["status-duplicate"]


async def test_a_recipients_own_01_after_the_gateways_is_accepted_and_shown_apart(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # Software built on the axis's libraries sends its own 01 after every download, even where a gateway
    # already issued one: accepted and routed, never refused; the gateway's stays the received instant's evidence.
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    doc, document_id = await send_document(client, sender, h41)
    [item] = await inbox(client, h41)
    await take(client, h41, item)
    r = await post_status(client, h41, status(h41, sender, document_id, "01"))
    assert r.status_code == 201, r.text
    own = r.headers["X-Gateway-Document-Id"]
    view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
    assert [(s["status_code"], s["automatic"]) for s in view["statuses"]] == [("01", True), ("01", False)]
    assert view["statuses"][1]["id"] == own
    assert view["recipients"][0]["received_at"] is not None
    # Both reach the sender's inbox; a second own 01 is a duplicate of the agency's own statement.
    assert [i["status_code"] for i in await inbox(client, sender)] == ["01", "01"]
    dup = await post_status(client, h41, status(h41, sender, document_id, "01", description="lần hai"))
    assert dup.status_code == 409
    assert dup.json()["type"] == "urn:gateway:problem:status-duplicate"
    types = [t for t, _, _ in await ledger_types(app.state.db)]
    assert types.count("status.auto_arrived") == 1
    assert types.count("status.accepted") == 1


async def test_statuses_are_verified_like_envelopes_and_refused_precisely(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    chan = await register(client, admin_headers, "000.00.00.H48", policy="channel")
    _, document_id = await send_document(client, sender, h41, chan)
    tampered = status(h41, sender, document_id, "03").replace(b">03<", b">09<")
    cases = [
        (await post_status(client, h41, status(h41, sender, document_id, "03", sign_it=False)), 422,
         "signature-missing"),
        (await post_status(client, h41, h41.envelope(sender)), 422, "not-a-status"),
        (await post_status(client, sender, status(h41, sender, document_id, "03")), 403, "sender-mismatch"),
        (await client.post("/v1/statuses", content=b"{}", headers={**h41.headers, "Content-Type": "application/json"}),
         415, "unsupported-media-type"),
        (await post_status(client, h41, b"<edXML"), 400, "xml-malformed"),
        (await post_status(client, h41, tampered), 422, "signature-invalid"),
    ]
    for response, code, slug in cases:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert (response.status_code, response.json()["type"]) == (code, f"urn:gateway:problem:{slug}")
    assert (await client.post("/v1/statuses", content=b"", headers={"Content-Type": "application/xml"})
            ).status_code == 401
    refused = [d["rule"] for t, _, d in await ledger_types(app.state.db) if t == "status.refused"]
    assert len(refused) == len(cases)
    # Under the channel policy an unsigned status is accepted and recorded as unsigned.
    r = await post_status(client, chan, status(chan, sender, document_id, "03", sign_it=False))
    assert r.status_code == 201, r.text
    assert verify_receipt(r.content, app.state.gateway_key.certificate).signed is False


async def test_a_recipient_that_reported_01_itself_gets_none_from_the_gateway_and_a_race_loses_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    h41 = await register(client, admin_headers, "000.00.00.H41")
    doc, document_id = await send_document(client, sender, h41)
    [item] = await inbox(client, h41)
    assert (await client.get(f"/v1/inbox/{item['delivery_id']}", headers=h41.headers)).status_code == 200
    assert (await post_status(client, h41, status(h41, sender, document_id, "01"))).status_code == 201
    r = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"}, headers=h41.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "delivered"
    types = [t for t, _, _ in await ledger_types(app.state.db)]
    assert types.count("status.auto_arrived") == 0
    assert types.count("delivery.delivered") == 1
    assert [i["status_code"] for i in await inbox(client, sender)] == ["01"]
    view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
    assert view["recipients"][0]["status"] == "01"
    assert [s["automatic"] for s in view["statuses"]] == [False]

    # A second document, and the recipient's 01 racing the acknowledgement: the check ran before the 01
    # committed. The gateway's 01 and the agency's are separate statements (migration 0005), so both are
    # kept and the acknowledgement is never lost.
    doc2, document_id2 = await send_document(client, sender, h41, code_number="2")
    [item2] = [i for i in await inbox(client, h41) if i["id"] == doc2]
    assert (await client.get(f"/v1/inbox/{item2['delivery_id']}", headers=h41.headers)).status_code == 200
    assert (await post_status(client, h41, status(h41, sender, document_id2, "01"))).status_code == 201
    from gateway.delivery.repository import DeliveryRepository

    async def not_yet(self: DeliveryRepository, code: str, pairs: object) -> set[tuple[str, str]]:
        return set()

    monkeypatch.setattr(DeliveryRepository, "statuses_reported", not_yet)
    r = await client.post(f"/v1/inbox/{item2['delivery_id']}/ack", json={"result": "done"}, headers=h41.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "delivered"
    view2 = (await client.get(f"/v1/documents/{doc2}", headers=sender.headers)).json()
    assert view2["recipients"][0]["received_at"] is not None
    assert sorted(s["automatic"] for s in view2["statuses"]) == [False, True]
