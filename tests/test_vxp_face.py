"""The national axis face (/vxp) end to end, driven by a client that behaves like the axis SDK (tests/vxp_sdk.py:
timestamp fixed at construction, header keys leaking from call to call, docId and docid together, unpadded
hash-file, trailing CRLF, Expect: 100-continue, shuffled sign-header), on both databases.

A VXP sender reaches a native push recipient, a native pull recipient and a VXP recipient; each recipient's
01 and 03 go back to the sender; the reverse with a native sender; getSentEdocList shows each received instant;
the ledger verifies and holds the native flow's event types. Every refusal answers FAIL with its ErrorCode and
the native HTTP status, and stores nothing but its ledger record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from delivery_support import Recipient, eventually, ledger_types
from gateway.config import Settings
from gateway.envelope import LargeFile, ResponseFor, StatusSpec, build_status
from gw import PDF, Agency, only_ledger_grew, register, stored, submit
from vxp_sdk import VxpSdk


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


async def vxp_system(client: httpx.AsyncClient, admin: dict[str, str], agency: str, serves: str = "subtree"
                     ) -> tuple[str, str]:
    r = await client.post("/v1/vxp/systems", json={"agency": agency, "serves": serves}, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()["system_id"], r.json()["secret"]


def status_xml(reporter: Agency, original_sender: str, document_id: str, code: str) -> bytes:
    return build_status(StatusSpec(response_for=ResponseFor(organ_id=original_sender, document_id=document_id),
                                   sender=reporter.organ, status_code=code, description=f"trạng thái {code}"))


def ok(answer: Any) -> dict[str, Any]:
    assert answer.json is not None, answer.response.text
    assert (answer.json["status"], answer.json["ErrorCode"]) == ("OK", "0"), answer.json
    body: dict[str, Any] = answer.json
    return body


async def test_a_vxp_sender_reaches_push_pull_and_vxp_recipients_and_statuses_come_back(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ", policy="channel")
    push_system = Recipient("000.00.00.G17", app.state.gateway_key.certificate).start()
    servers.append(push_system)
    push = await register(client, admin_headers, "000.00.00.G17", delivery=push_system.delivery)
    pull = await register(client, admin_headers, "000.00.00.H41")
    vxp_recipient = await register(client, admin_headers, "000.00.00.H14", "UBND Tỉnh Cao Bằng", policy="channel")
    sid, secret = await vxp_system(client, admin_headers, sender.code)
    rid, rsecret = await vxp_system(client, admin_headers, vxp_recipient.code, "agency")
    sdk = VxpSdk(client, "/vxp", sid, secret, seed=1)
    rsdk = VxpSdk(client, "/vxp", rid, rsecret, seed=2)

    envelope = sender.envelope(push, pull, vxp_recipient, sign_it=False, subject="Gửi qua trục")
    sent = await sdk.send_edoc(envelope, sender.code)
    doc = ok(sent)["DocId"]
    assert sent.response.status_code == 200
    view = (await client.get(f"/v1/documents/{doc}", headers=sender.headers)).json()
    assert sorted(r["code"] for r in view["recipients"]) == [push.code, vxp_recipient.code, pull.code]
    assert view["signed"] is False
    document_id = view["document_id"]

    # Native push and pull recipients.
    await eventually(lambda: len(push_system.delivered()) == 1, what="pushed to the native push recipient")
    assert push_system.delivered()[0].envelope == envelope
    [item] = (await client.get("/v1/inbox", headers=pull.headers)).json()["items"]
    assert (await client.get(f"/v1/inbox/{item['delivery_id']}", headers=pull.headers)).content == envelope
    assert (await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"},
                              headers=pull.headers)).status_code == 200

    # The VXP recipient: list, getEdoc (the bytes unchanged), updateStatus done (the received instant).
    listed = ok(await rsdk.get_received_edoc_list("edoc"))["data"]
    assert [(i["from"], i["to"], i["messageType"]) for i in listed] == [(sender.code, vxp_recipient.code, "edoc")]
    assert ok(await rsdk.count_receive_edoc())["count"] == 1
    got = await rsdk.get_edoc(listed[0]["docId"])
    ok(got)
    assert got.data == envelope
    ok(await rsdk.update_status(listed[0]["docId"], "done"))
    assert ok(await rsdk.get_received_edoc_list("edoc"))["data"] == []  # never listed again after done

    # Each recipient's 01 and 03 go back to the sender, whichever face each side uses. The VXP software
    # sends its own 01 after getEdoc although the gateway already issued one: accepted, never FAIL.
    for code in ("01", "03"):
        for native in (push, pull):
            r = await client.post("/v1/statuses", content=native.sign(status_xml(native, sender.code, document_id,
                                                                                 code)),
                                  headers={**native.headers, "Content-Type": "application/xml"})
            assert r.status_code == 201, r.text
        ok(await rsdk.send_edoc(status_xml(vxp_recipient, sender.code, document_id, code), vxp_recipient.code,
                                "status"))
    statuses = ok(await sdk.get_received_edoc_list("status"))["data"]
    received = sorted((i["from"], i["messageType"]) for i in statuses)
    # the gateway's 01 for each of the three recipients, and their own 01 and 03
    assert received == sorted([(c, "status") for c in (push.code, pull.code, vxp_recipient.code) for _ in range(3)])
    for item in statuses:
        status_bytes = await sdk.download_edoc(item["docId"])
        assert status_bytes.response.status_code == 200
        ok(await sdk.update_status(item["docId"], "done"))
    assert ok(await sdk.count_receive_status())["count"] == 0

    # getSentEdocList: one row per recipient, each with its received instant.
    rows = ok(await sdk.get_sent_edoc_list(doc))["data"]
    assert sorted(r["toCode"] for r in rows) == [push.code, vxp_recipient.code, pull.code]
    assert all(r["receiveStatus"] == "delivered" and r["receivedTime"] for r in rows), rows

    # The ledger verifies and holds the native flow's event types.
    verify = (await client.get("/v1/ledger/verify", headers=admin_headers)).json()
    assert verify["ok"] is True, verify
    types = {t for t, _, _ in await ledger_types(app.state.db)}
    assert {"envelope.accepted", "delivery.fetched", "delivery.delivered", "status.auto_arrived",
            "status.accepted"} <= types
    assert not {t for t in types if t.endswith(".refused")}


async def test_a_native_sender_reaches_a_vxp_recipient(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    parent = await register(client, admin_headers, "000.00.00.H14", "UBND Tỉnh Cao Bằng", policy="channel")
    r = await client.post("/v1/agencies", json={"code": "001.00.00.H14", "name": "Sở Nội vụ Cao Bằng",
                                                 "parent_code": parent.code, "delivery": {"mode": "pull"},
                                                 "signature_policy": "channel"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    sid, secret = await vxp_system(client, admin_headers, parent.code)  # serves the subtree
    sdk = VxpSdk(client, "/vxp", sid, secret)
    first = await submit(client, sender, sender.envelope(parent, code_number="1"))
    second_r = await submit(client, sender, sender.envelope(Agency("001.00.00.H14", "Sở Nội vụ", parent.keys),
                                                            code_number="2"))
    assert (first.status_code, second_r.status_code) == (201, 201)
    listed = ok(await sdk.get_received_edoc_list("edoc"))["data"]
    assert sorted(i["to"] for i in listed) == ["000.00.00.H14", "001.00.00.H14"]
    # The SDK's map keeps the docid of each updateStatus: the next getEdoc carries a stale docid along with
    # its own docId, and must still get its own document.
    for item in listed:
        raw = await sdk.download_edoc(item["docId"])
        assert raw.response.status_code == 200
        assert raw.response.content.startswith(b"<?xml")
        ok(await sdk.update_status(item["docId"], "done"))
    view = (await client.get(f"/v1/documents/{first.headers['X-Gateway-Document-Id']}",
                             headers=sender.headers)).json()
    assert view["recipients"][0]["received_at"] is not None
    # The gateway's 01 reached the native sender; the VXP software's own 01 is accepted too.
    inbox = (await client.get("/v1/inbox", headers=sender.headers)).json()["items"]
    assert [i["status_code"] for i in inbox] == ["01", "01"]
    own = await sdk.send_edoc(status_xml(parent, sender.code, view["document_id"], "01"), parent.code, "status")
    ok(own)


async def test_every_refusal_is_fail_with_its_errorcode_and_stores_nothing_but_its_record(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22", policy="channel")
    other = await register(client, admin_headers, "000.00.00.H41", policy="channel")
    sid, secret = await vxp_system(client, admin_headers, sender.code, "agency")
    revoked_id, revoked_secret = await vxp_system(client, admin_headers, sender.code)
    assert (await client.delete(f"/v1/vxp/systems/{revoked_id}", headers=admin_headers)).status_code == 204
    envelope = sender.envelope(other, sign_it=False)
    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><edXML>&a;</edXML>'

    async def tampered(sdk: VxpSdk) -> Any:
        sdk.headers.update({"servicetype": "eDoc", "messagetype": "edoc", "from": sender.code,
                            "hash-file": "0" * 64,  # signed, but naming other bytes
                            "Content-Type": "application/octet-stream"})
        return await sdk._call("sendEdoc", body=envelope + b"\r\n", ascii_answer=True)

    before = await stored(app)
    cases: list[tuple[str, Any, int, str]] = [
        ("wrong secret", await VxpSdk(client, "/vxp", sid, "not-the-secret").send_edoc(envelope, sender.code),
         401, "vxp-hmac-invalid"),
        ("unknown system", await VxpSdk(client, "/vxp", "vxp-AAAAAAAAAAAAAAAA", secret).send_edoc(
            envelope, sender.code), 401, "vxp-system-unknown"),
        ("revoked system", await VxpSdk(client, "/vxp", revoked_id, revoked_secret).send_edoc(
            envelope, sender.code), 401, "vxp-system-unknown"),
        ("from not served", await VxpSdk(client, "/vxp", sid, secret).send_edoc(
            other.envelope(sender, sign_it=False), other.code), 403, "vxp-agency-not-served"),
        ("hash-file mismatch", await tampered(VxpSdk(client, "/vxp", sid, secret)), 422, "vxp-hash-file-mismatch"),
        ("hostile XML", await VxpSdk(client, "/vxp", sid, secret).send_edoc(hostile, sender.code), 400,
         "xml-dtd-forbidden"),
        ("From is another agency", await VxpSdk(client, "/vxp", sid, secret).send_edoc(
            other.envelope(sender, sign_it=False), sender.code), 403, "sender-mismatch"),
        ("oversize", await VxpSdk(client, "/vxp", sid, secret).send_edoc(
            b"<" * (app.state.settings.max_envelope_bytes + 10), sender.code), 413, "body-too-large"),
        ("registerAgency", await VxpSdk(client, "/vxp", sid, secret).register_agency(
            {"id": "1", "code": "000.00.00.X01", "name": "x"}), 403, "vxp-operation-not-supported"),
        ("deleteAgency", await VxpSdk(client, "/vxp", sid, secret).delete_agency(other.code), 403,
         "vxp-operation-not-supported"),
        ("getEdoc of nothing", await VxpSdk(client, "/vxp", sid, secret).get_edoc(
            "00000000-0000-0000-0000-000000000000"), 404, "delivery-not-found"),
    ]
    for what, answer, status, slug in cases:
        assert answer.response.status_code == status, (what, answer.response.text)
        assert answer.response.headers["content-type"] == "application/json", what
        assert answer.json is not None, what
        assert (answer.json["status"], answer.json["ErrorCode"]) == ("FAIL", slug), (what, answer.json)
        assert answer.json["ErrorDesc"], what
        assert answer.response.content.isascii(), what
    # sendEdoc always answers a DocId (without one the SDK returns every field null).
    assert all("DocId" in a.json for w, a, _s, _slug in cases if w not in ("registerAgency", "deleteAgency",
                                                                             "getEdoc of nothing"))
    # Each refusal is ledgered (sendEdoc's as the native intake's), and nothing else was stored.
    refused = [(t, d["rule"]) for t, _, d in await ledger_types(app.state.db) if t.endswith(".refused")]
    assert sorted(r for _, r in refused) == sorted(slug for _, _, _, slug in cases)
    assert {t for t, _ in refused} == {"envelope.refused", "vxp.refused"}
    assert before.documents == 0
    assert only_ledger_grew(before, await stored(app), by=len(cases))


async def test_the_register_operations_answer_what_the_sdk_reads(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    parent = await register(client, admin_headers, "000.00.00.H14", "UBND Tỉnh Cao Bằng", aliases=["28.22.H14"])
    r = await client.post("/v1/agencies", json={"code": "001.00.00.H14", "name": "Sở Nội vụ", "parent_code":
                                                 parent.code, "delivery": {"mode": "pull"}}, headers=admin_headers)
    assert r.status_code == 201
    sid, secret = await vxp_system(client, admin_headers, parent.code)
    sdk = VxpSdk(client, "/vxp", sid, secret)
    agencies = ok(await sdk.get_agencies_list())["data"]
    assert {(a["code"], a["pid"], a["oldCode"]) for a in agencies} == {
        ("000.00.00.H14", "", "28.22.H14"), ("001.00.00.H14", "000.00.00.H14", "")}
    assert {a["code102"] for a in ok(await sdk.get_agencies_list_qd20(1))["data"]} == {"000.00.00.H14",
                                                                                      "001.00.00.H14"}
    units = ok(await sdk.get_synchronize_unit())["data"]
    assert all(u["deleted"] is False and u["isAgency"] is True for u in units)
    # Vietnamese names are escaped: the SDK reads answers as US-ASCII.
    raw = (await sdk.get_agencies_list()).response.content
    assert raw.isascii()
    assert b"S\\u1edf N\\u1ed9i v\\u1ee5" in raw
    unknown = await sdk._call("noSuchOperation")
    assert unknown.response.status_code == 404
    assert unknown.json is not None
    assert unknown.json["ErrorCode"] == "vxp-operation-unknown"


async def test_a_document_with_large_parts_is_refused_on_getedoc_and_stays_for_the_native_inbox(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22")
    recipient = await register(client, admin_headers, "000.00.00.H14")
    sid, secret = await vxp_system(client, admin_headers, recipient.code, "agency")
    big = PDF + b"0" * 1024
    xml = sender.envelope(recipient, attachments=(
        LargeFile.from_bytes("phu-luc.pdf", big, content_type="application/pdf", content_id="cid:phu-luc"),))
    r = await client.post("/v1/envelopes", headers=sender.headers, files={
        "envelope": ("envelope.edxml", xml, "application/xml"), "phu-luc": ("phu-luc.pdf", big, "application/pdf")})
    assert r.status_code == 201, r.text
    sdk = VxpSdk(client, "/vxp", sid, secret)
    [item] = ok(await sdk.get_received_edoc_list())["data"]
    refused = await sdk.get_edoc(item["docId"])
    assert refused.response.status_code == 409
    assert refused.json is not None
    assert refused.json["ErrorCode"] == "vxp-large-attachments"
    # Nothing was lost: it still waits, untouched, in the recipient's native inbox.
    [native] = (await client.get("/v1/inbox", headers=recipient.headers)).json()["items"]
    assert (native["delivery_id"], native["state"], native["multipart"]) == (item["docId"], "pending", True)
