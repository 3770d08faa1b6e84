"""Intake over HTTP: a real signed envelope is accepted with a signed receipt; each rule, broken in exactly
one way, is refused with its problem type and nothing stored but the ledger's record of the refusal."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from lxml import etree
from signxml import XMLVerifier

from certs import make_keypair
from gateway.envelope import InlineFile, Organ, verify_receipt
from gw import PDF, Agency, last_entry, only_ledger_grew, register, stored, submit

R = "{urn:gateway:receipt:1}"


@pytest.fixture
async def parties(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> dict[str, Agency]:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    h47 = await register(client, admin_headers, "000.00.00.H47", "UBND tỉnh Quảng Ninh",
                         delivery={"mode": "push", "endpoint": "http://127.0.0.1:9/edxml"})
    chan = await register(client, admin_headers, "000.00.00.H48", "Sở thử nghiệm", policy="channel")
    off = await register(client, admin_headers, "000.00.00.H49", "Cơ quan tạm dừng")
    await client.patch("/v1/agencies/000.00.00.H49", json={"active": False}, headers=admin_headers)
    return {"g22": g22, "h41": h41, "h47": h47, "chan": chan, "off": off}


async def test_accepts_signed_envelope_and_answers_with_a_verifiable_receipt(
    app: FastAPI, client: httpx.AsyncClient, parties: dict[str, Agency]
) -> None:
    g22, h41, h47 = parties["g22"], parties["h41"], parties["h47"]
    xml = g22.envelope(h41, h47)
    r = await submit(client, g22, xml)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/xml")

    # An independent verifier (signxml, configured here, not the gateway's code) and the served certificate.
    cert_pem = (await client.get("/v1/gateway/certificate")).text
    verified = XMLVerifier().verify(r.content, x509_cert=cert_pem)
    receipt = verified.signed_xml
    assert receipt is not None
    assert receipt.findtext(f"{R}Sender") == "000.00.00.G22"
    assert sorted(e.text for e in receipt.iter(f"{R}Recipient")) == ["000.00.00.H41", "000.00.00.H47"]
    assert receipt.findtext(f"{R}EnvelopeSha256") == hashlib.sha256(xml).hexdigest()
    assert receipt.findtext(f"{R}Signed") == "true"
    [att] = list(receipt.iter(f"{R}Attachment"))
    assert att.findtext(f"{R}Sha256") == hashlib.sha256(PDF).hexdigest()
    sent_at = datetime.fromisoformat(receipt.findtext(f"{R}SentAt") or "")
    assert receipt.findtext(f"{R}SentAtLocal", "").endswith("+07:00")

    # The receipt's ledger facts are the ledger's.
    entry = await last_entry(app)
    assert entry.type == "envelope.accepted"
    assert receipt.findtext(f"{R}Ledger/{R}Sequence") == str(entry.seq)
    assert receipt.findtext(f"{R}Ledger/{R}EntryHash") == entry.hash
    assert entry.recorded_at == sent_at

    # The original bytes are kept verbatim, by digest.
    assert app.state.blobs.read(hashlib.sha256(xml).hexdigest()) == xml

    document_id = r.headers["X-Gateway-Document-Id"]
    view = (await client.get(f"/v1/documents/{document_id}", headers=g22.headers)).json()
    assert view["sent_at"].replace("Z", "+00:00") == sent_at.isoformat()
    assert view["signed"] is True
    assert {(x["code"], x["state"]) for x in view["recipients"]} == {("000.00.00.H41", "pending"),
                                                                      ("000.00.00.H47", "pending")}
    assert view["attachments"][0]["pdf_signature"] == "none"
    by_edxml = await client.get("/v1/documents", params={"document_id": view["document_id"]}, headers=h41.headers)
    assert [d["id"] for d in by_edxml.json()["items"]] == [document_id]
    # Also verifiable with the gateway's own receipt reader.
    data = verify_receipt(r.content, app.state.gateway_key.certificate)
    assert data.gateway_document_id == document_id


async def test_identical_resubmission_returns_the_same_receipt_and_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient, parties: dict[str, Agency]
) -> None:
    g22, h41 = parties["g22"], parties["h41"]
    xml = g22.envelope(h41)
    first = await submit(client, g22, xml)
    before = await stored(app)
    again = await submit(client, g22, xml)
    assert again.status_code == 200
    assert again.content == first.content
    assert await stored(app) == before


async def test_changed_envelope_under_the_same_document_id_is_a_conflict(
    app: FastAPI, client: httpx.AsyncClient, parties: dict[str, Agency]
) -> None:
    g22, h41 = parties["g22"], parties["h41"]
    assert (await submit(client, g22, g22.envelope(h41))).status_code == 201
    before = await stored(app)
    r = await submit(client, g22, g22.envelope(h41, subject="Nội dung đã sửa"))
    assert r.status_code == 409
    assert r.json()["type"] == "urn:gateway:problem:document-changed"
    assert only_ledger_grew(before, await stored(app))


async def test_channel_policy_accepts_unsigned_and_records_it(
    client: httpx.AsyncClient, parties: dict[str, Agency]
) -> None:
    chan, h41 = parties["chan"], parties["h41"]
    r = await submit(client, chan, chan.envelope(h41, sign_it=False))
    assert r.status_code == 201, r.text
    view = (await client.get(r.headers["Location"], headers=chan.headers)).json()
    assert view["signed"] is False


async def test_documents_are_visible_only_to_parties_and_operators(
    client: httpx.AsyncClient, parties: dict[str, Agency], auditor_headers: dict[str, str]
) -> None:
    g22, h41, chan = parties["g22"], parties["h41"], parties["chan"]
    r = await submit(client, g22, g22.envelope(h41))
    location = r.headers["Location"]
    assert (await client.get(location, headers=h41.headers)).status_code == 200
    assert (await client.get(location, headers=auditor_headers)).status_code == 200
    stranger = await client.get(location, headers=chan.headers)
    missing = await client.get("/v1/documents/00000000-0000-0000-0000-000000000000", headers=chan.headers)
    assert stranger.status_code == missing.status_code == 404
    assert stranger.json()["type"] == missing.json()["type"]
    doc_id = (await client.get(location, headers=g22.headers)).json()["document_id"]
    assert (await client.get("/v1/documents", params={"document_id": doc_id},
                             headers=chan.headers)).json()["items"] == []


def _revoke(agency: Agency) -> Callable[[httpx.AsyncClient, dict[str, str]], Any]:
    async def run(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        r = await client.delete(f"/v1/agencies/{agency.code}/certificates/{agency.keys.sha256}", headers=admin)
        assert r.status_code == 200

    return run


def _declare_encoding(xml: bytes, encoding: bytes) -> bytes:
    changed = re.sub(rb"encoding=(['\"])UTF-8\1", b'encoding="' + encoding + b'"', xml, count=1)
    assert changed != xml
    return changed


def _tamper(xml: bytes) -> bytes:
    return xml.replace("thử nghiệm liên thông".encode(), "thử nghiệm liên thông (sửa)".encode(), 1)


# Each case: how to make the envelope (from the parties) -> expected slug and status.
CASES: dict[str, tuple[Callable[[dict[str, Agency]], tuple[Agency, bytes]], str, int]] = {
    "from_is_not_the_caller": (
        lambda p: (p["h41"], p["g22"].envelope(p["h41"])), "sender-mismatch", 403),
    "unsigned_under_required_policy": (
        lambda p: (p["g22"], p["g22"].envelope(p["h41"], sign_it=False)), "signature-missing", 422),
    "signed_by_an_unregistered_certificate": (
        lambda p: (p["g22"], p["g22"].sign(p["g22"].envelope(p["h41"], sign_it=False), make_keypair("lạ"))),
        "certificate-unregistered", 422),
    "altered_after_signing": (
        lambda p: (p["g22"], _tamper(p["g22"].envelope(p["h41"]))), "signature-invalid", 422),
    "recipient_not_registered": (
        lambda p: (p["g22"], p["g22"].envelope(Agency("000.00.00.H99", "Không có", p["h41"].keys))),
        "recipient-unknown", 422),
    "recipient_suspended": (
        lambda p: (p["g22"], p["g22"].envelope(p["h41"], p["off"])), "recipient-unknown", 422),
    "recipient_twice": (
        lambda p: (p["g22"], p["g22"].envelope(p["h41"], p["h41"])), "recipient-duplicate", 422),
    "classified_document": (
        lambda p: (p["g22"], p["g22"].envelope(p["h41"], secrecy="Mật")), "secrecy-forbidden", 422),
    "executable_attachment": (
        lambda p: (p["g22"], p["g22"].envelope(p["h41"], attachments=(
            InlineFile("virus.exe", b"MZ\x90\x00" + b"\x00" * 60),),)), "file-type-forbidden", 415),
    "pdf_name_but_not_pdf_content": (
        lambda p: (p["g22"], p["g22"].envelope(p["h41"], attachments=(
            InlineFile("cong-van.pdf", b"MZ\x90\x00" + b"\x00" * 60, "application/pdf"),),)),
        "file-type-forbidden", 415),
    "priority_outside_code_list": (
        lambda p: (p["g22"], p["g22"].sign(p["g22"].envelope(p["h41"], sign_it=False).replace(
            b"<edXML:Priority>0</edXML:Priority>", b"<edXML:Priority>9</edXML:Priority>"))),
        "code-list-invalid", 422),
    "not_utf8": (
        lambda p: (p["g22"], _declare_encoding(p["g22"].envelope(p["h41"]), b"TCVN3")),
        "encoding-not-utf8", 415),
    "doctype_present": (
        lambda p: (p["g22"], p["g22"].envelope(p["h41"]).replace(
            b"?>", b'?><!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>', 1)),
        "xml-dtd-forbidden", 400),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_each_rule_broken_once_is_refused_with_only_the_ledger_record_stored(
    app: FastAPI, client: httpx.AsyncClient, parties: dict[str, Agency], case: str
) -> None:
    make, slug, status = CASES[case]
    caller, xml = make(parties)
    assert xml.count(b"000.00.00") >= 2
    before = await stored(app)
    r = await submit(client, caller, xml)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"urn:gateway:problem:{slug}"
    assert only_ledger_grew(before, await stored(app))
    entry = await last_entry(app)
    assert entry.type == "envelope.refused"
    assert entry.actor == f"agency:{caller.code}"
    details = json.loads(entry.details)
    assert details["rule"] == slug
    assert details["envelope_sha256"] == hashlib.sha256(xml).hexdigest()


async def test_revoked_certificate_is_refused(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], parties: dict[str, Agency]
) -> None:
    g22, h41 = parties["g22"], parties["h41"]
    await _revoke(g22)(client, admin_headers)
    before = await stored(app)
    r = await submit(client, g22, g22.envelope(h41))
    assert r.status_code == 422
    assert r.json()["type"] == "urn:gateway:problem:certificate-revoked"
    assert only_ledger_grew(before, await stored(app))


async def test_rotation_keeps_the_old_certificate_and_accepts_the_new(
    client: httpx.AsyncClient, admin_headers: dict[str, str], parties: dict[str, Agency]
) -> None:
    g22, h41 = parties["g22"], parties["h41"]
    new = make_keypair("khóa mới")
    await client.post(f"/v1/agencies/{g22.code}/certificates", json={"pem": new.cert_pem}, headers=admin_headers)
    old_signed = g22.envelope(h41, code_number="1")
    new_signed = g22.sign(g22.envelope(h41, code_number="2", sign_it=False), new)
    assert (await submit(client, g22, old_signed)).status_code == 201
    assert (await submit(client, g22, new_signed)).status_code == 201


async def test_expired_certificate_is_refused(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], parties: dict[str, Agency]
) -> None:
    g22, h41 = parties["g22"], parties["h41"]
    now = datetime.now(UTC)
    # Registered while valid: a certificate valid for a few seconds only, then expired at submission.
    short = make_keypair("ngắn hạn", not_before=now - timedelta(days=1), not_after=now + timedelta(seconds=2))
    await client.post(f"/v1/agencies/{g22.code}/certificates", json={"pem": short.cert_pem}, headers=admin_headers)
    import asyncio

    await asyncio.sleep(2.5)
    before = await stored(app)
    r = await submit(client, g22, g22.sign(g22.envelope(h41, sign_it=False), short))
    assert r.status_code == 422
    assert r.json()["type"] == "urn:gateway:problem:certificate-expired"
    assert only_ledger_grew(before, await stored(app))


async def test_wrong_media_type_and_oversize_bodies_are_refused(
    app: FastAPI, client: httpx.AsyncClient, parties: dict[str, Agency]
) -> None:
    g22 = parties["g22"]
    before = await stored(app)
    r = await client.post("/v1/envelopes", content=b"{}", headers={**g22.headers, "Content-Type": "application/json"})
    assert r.status_code == 415
    assert r.json()["type"] == "urn:gateway:problem:unsupported-media-type"
    app.state.settings.max_envelope_bytes = 1000
    r = await submit(client, g22, b"<edXML>" + b" " * 2000 + b"</edXML>")
    assert r.status_code == 413
    assert only_ledger_grew(before, await stored(app), by=2)


def test_xml_etree_is_lxml() -> None:
    # The receipt assertions above read with lxml's ElementTree API.
    assert etree.LXML_VERSION >= (5, 0)


_ = Organ


async def test_text_is_stored_in_nfc(client: httpx.AsyncClient, parties: dict[str, Agency]) -> None:
    import unicodedata

    g22, h41 = parties["g22"], parties["h41"]
    decomposed = unicodedata.normalize("NFD", "Về việc triển khai Nghị định")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    r = await submit(client, g22, g22.envelope(h41, subject=decomposed))
    assert r.status_code == 201, r.text
    view = (await client.get(r.headers["Location"], headers=g22.headers)).json()
    assert view["subject"] == unicodedata.normalize("NFC", decomposed)


async def test_signed_pdf_attachment_is_reported(client: httpx.AsyncClient, parties: dict[str, Agency]) -> None:
    import asyncio

    from test_pdfsig import _signed_pdf

    g22, h41 = parties["g22"], parties["h41"]
    signed_pdf = await asyncio.to_thread(_signed_pdf)  # pyHanko's sync API runs its own event loop
    xml = g22.envelope(h41, attachments=(InlineFile("quyet-dinh.pdf", signed_pdf, "application/pdf"),
                                         InlineFile("phu-luc.pdf", PDF, "application/pdf")))
    r = await submit(client, g22, xml)
    assert r.status_code == 201, r.text
    view = (await client.get(r.headers["Location"], headers=g22.headers)).json()
    assert {a["name"]: a["pdf_signature"] for a in view["attachments"]} == {"quyet-dinh.pdf": "valid",
                                                                            "phu-luc.pdf": "none"}
