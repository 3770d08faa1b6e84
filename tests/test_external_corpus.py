"""The real-world corpus (issue 13): every file of ``../shared/samples/external/`` (written by software we did not
write: the national axis SDK's samples and a document downloaded from an LGSP) through the HTTP API, on both
databases. The files are read where they are, never copied into the project; without them the test is skipped,
except in CI (``CI=true``), where their absence fails it. Every quirk they show is also tested on bytes the
project builds itself (tests/envelope/test_envelope_deviations.py, tests/test_interop_intake.py).

Outcomes: ext01-ext04 and ext08 as published are refused ``file-type-forbidden`` naming the attachment (a ZIP
whose only file is an ``.edxml`` while the name says ``.doc``). With that attachment replaced by a small real
PDF of the same name stem, ext08 is accepted; ext02 (recall), ext03 (update) and ext04 (replace) are accepted
and linked to ext08's document; ext01 is accepted, addressed by the alias ``28.22.H17``. ext05 (01) and ext06
(02) from a recipient of ext08 and ext07 (13) from its sender are accepted and routed. Each accepted file's
deviations are listed exactly; no file gets a 5xx.
"""

from __future__ import annotations

import base64
import io
import re
import zipfile
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from delivery_support import ledger_types
from gateway.reports.service import VN_TZ
from gw import PDF, Agency, only_ledger_grew, register, stored
from real_processes import shared_dir

NAMES = [
    "ext01-vpcp-sdk-edoc-new.edxml",
    "ext02-vpcp-sdk-edoc-revocation.edxml",
    "ext03-vpcp-sdk-edoc-update.edxml",
    "ext04-vpcp-sdk-edoc-replacement.edxml",
    "ext05-vpcp-sdk-status-01.edxml",
    "ext06-vpcp-sdk-status-02-rejection.edxml",
    "ext07-vpcp-sdk-status-13-cancellation.edxml",
    "ext08-lgsp-received-2019.edxml",
]
ATTACHMENT = "1896_QD-TTg_m_294779.doc"

_LEGACY = {"code": "legacy-signature", "where": "edXMLHeader/Signature"}
_CID = [{"code": "content-id-not-uuid", "where": "edXMLManifest/Reference[1]/ContentId"},
        {"code": "content-id-not-uuid", "where": "Attachment[1]/ContentId"}]
#: the exact deviations of each accepted file (documents after the attachment is replaced)
EXPECTED: dict[str, list[dict[str, str]]] = {
    "ext08": [{"code": "bussiness-before-trace-header", "where": "TraceHeaderList/Bussiness"},
              {"code": "document-id-date-impossible", "where": "TraceHeaderList/Bussiness/DocumentId"},
              _LEGACY, *_CID],
    "ext02": [_LEGACY, *_CID],
    "ext03": [{"code": "document-id-date-impossible", "where": "TraceHeaderList/Bussiness/DocumentId"},
              _LEGACY, *_CID],
    "ext04": [_LEGACY, *_CID],
    "ext01": [{"code": "addressed-by-alias", "where": "To[1]/OrganId"},
              {"code": "document-id-date-impossible", "where": "TraceHeaderList/Bussiness/DocumentId"},
              _LEGACY, *_CID],
    "ext05": [],
    "ext06": [],
    "ext07": [],
}


@pytest.fixture(scope="module")
def samples() -> dict[str, bytes]:
    folder = shared_dir("samples", "external")
    return {n[:5]: (folder / n).read_bytes() for n in NAMES}


def with_real_pdf(data: bytes) -> bytes:
    """The same file with its one attachment replaced by a small real PDF of the same name stem: the names
    (AttachmentName, Description, in the manifest and the Attachment) say ``.pdf`` and the ZIP is rebuilt
    holding ``<stem>.pdf``. Everything else is left byte for byte."""
    stem = ATTACHMENT.rsplit(".", 1)[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{stem}.pdf", PDF)
    encoded = base64.b64encode(buf.getvalue())
    data = data.replace(ATTACHMENT.encode(), f"{stem}.pdf".encode())
    data, n = re.subn(rb"(<edXML:ContentTransferEncoded[^>]*>)[^<]*(</edXML:ContentTransferEncoded>)",
                      lambda m: m.group(1) + encoded + m.group(2), data)
    assert n == 1
    return data


async def _post(client: httpx.AsyncClient, agency: Agency, path: str, data: bytes) -> httpx.Response:
    r = await client.post(path, content=data, headers={**agency.headers, "Content-Type": "application/xml"})
    assert r.status_code < 500, r.text
    return r


async def _view(client: httpx.AsyncClient, agency: Agency, doc: str) -> dict[str, Any]:
    r = await client.get(f"/v1/documents/{doc}", headers=agency.headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_the_external_corpus(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str],
    samples: dict[str, bytes],
) -> None:
    # The parties each file names; the senders under the channel policy (the legacy blocks are placeholders).
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ", policy="channel")
    a80 = await register(client, admin_headers, "000.00.00.A80", "UBND xã Hòa Tiến", policy="channel")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND Tỉnh Nghệ An", policy="channel")
    h14 = await register(client, admin_headers, "000.00.00.H14", "UBND Tỉnh Cao Bằng")
    g17 = await register(client, admin_headers, "000.00.00.G17", "Sở TT&TT Hải Phòng")
    h17 = await register(client, admin_headers, "000.00.00.H17", "UBND xã Hòa Sơn", aliases=["28.22.H17"])
    sender_of = {"ext01": a80, "ext02": g22, "ext03": g22, "ext04": g22, "ext08": g22}

    # As published: refused, the problem naming the attachment; nothing stored but the refusal's entry.
    before = await stored(app)
    for key in ("ext01", "ext02", "ext03", "ext04", "ext08"):
        r = await _post(client, sender_of[key], "/v1/envelopes", samples[key])
        assert r.status_code == 415, (key, r.text)
        problem = r.json()
        assert problem["type"] == "urn:gateway:problem:file-type-forbidden", key
        assert problem["attachment"] == ATTACHMENT, key
    assert only_ledger_grew(before, await stored(app), by=5)
    refused = [d["rule"] for t, _, d in await ledger_types(app.state.db) if t == "envelope.refused"]
    assert refused == ["file-type-forbidden"] * 5

    # With a real PDF: ext08, then the recall, update and replacement linked to it, then ext01 by alias.
    ids: dict[str, str] = {}
    for key in ("ext08", "ext02", "ext03", "ext04", "ext01"):
        r = await _post(client, sender_of[key], "/v1/envelopes", with_real_pdf(samples[key]))
        assert r.status_code == 201, (key, r.text)
        ids[key] = r.headers["X-Gateway-Document-Id"]
        view = await _view(client, sender_of[key], ids[key])
        assert view["deviations"] == EXPECTED[key], key
    for key, bdt in (("ext02", 1), ("ext03", 2), ("ext04", 3)):
        view = await _view(client, g22, ids[key])
        assert (view["business_doc_type"], view["refers_to"]) == (bdt, ids["ext08"]), key
        assert sorted(x["code"] for x in view["recipients"]) == [g17.code, h14.code, h41.code]
    assert [x["code"] for x in (await _view(client, a80, ids["ext01"]))["recipients"]] == [h17.code]
    original = await _view(client, g22, ids["ext08"])
    assert original["refers_to"] is None

    # H41 downloads ext08 (the gateway's 01 fixes the received instant), then its software sends its own 01
    # (ext05) and a 02 (ext06); the sender sends a 13 (ext07) naming the recipient in ResponseFor.
    inbox = (await client.get("/v1/inbox", headers=h41.headers)).json()["items"]
    [item] = [i for i in inbox if i["id"] == ids["ext08"]]
    assert (await client.get(f"/v1/inbox/{item['delivery_id']}", headers=h41.headers)).status_code == 200
    ack = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"}, headers=h41.headers)
    assert ack.status_code == 200, ack.text
    for key, agency in (("ext05", h41), ("ext06", h41), ("ext07", g22)):
        r = await _post(client, agency, "/v1/statuses", samples[key])
        assert r.status_code == 201, (key, r.text)
        ids[key] = r.headers["X-Gateway-Document-Id"]
        view = await _view(client, agency, ids[key])
        assert view["refers_to"] == ids["ext08"], key
        assert view["deviations"] == EXPECTED[key], key
    g22_inbox = {i["id"]: i for i in (await client.get("/v1/inbox", headers=g22.headers)).json()["items"]}
    assert {ids["ext05"], ids["ext06"]} <= set(g22_inbox)
    for agency in (h41, h14, g17):
        items = (await client.get("/v1/inbox", headers=agency.headers)).json()["items"]
        assert ids["ext07"] in {i["id"] for i in items}
    statuses = (await _view(client, g22, ids["ext08"]))["statuses"]
    assert [(s["sender"], s["status_code"], s["automatic"]) for s in statuses] == [
        (h41.code, "01", True), (h41.code, "01", False), (h41.code, "02", False), (g22.code, "13", False)]

    # The ledger states each accepted document's deviations; the monthly report counts them per sender.
    accepted = [d for t, _, d in await ledger_types(app.state.db) if t == "envelope.accepted"]
    assert [d["deviations"] for d in accepted] == [EXPECTED[k] for k in ("ext08", "ext02", "ext03", "ext04", "ext01")]
    month = datetime.now(UTC).astimezone(VN_TZ).strftime("%Y-%m")
    report = (await client.get(f"/v1/reports/monthly?month={month}", headers=auditor_headers)).json()
    rows = {a["code"]: a for a in report["agencies"]}
    expected_g22: dict[str, int] = {}
    for key in ("ext08", "ext02", "ext03", "ext04", "ext07"):
        for code in {d["code"] for d in EXPECTED[key]}:
            expected_g22[code] = expected_g22.get(code, 0) + 1
    assert rows[g22.code]["deviations"] == dict(sorted(expected_g22.items()))
    assert rows[a80.code]["with_deviations"] == 1
