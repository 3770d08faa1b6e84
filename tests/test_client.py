"""The client library against a real gateway on 127.0.0.1 (both databases): send inline and large files,
verify receipts, fetch and acknowledge, statuses and recalls; and, against scripted answers, every
verification failing closed (forged receipts, forged downloads, hostile names)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from client_support import app_server, operator_token
from gateway.client import (
    AgencyKey,
    Attachment,
    DeliverySignatureInvalid,
    GatewayClient,
    GatewayUnreachable,
    MessageInvalid,
    Organ,
    OutgoingDocument,
    ProblemResponse,
    ReceiptInvalid,
    WaitTimeout,
    generate_test_key,
)
from gateway.client.compose import prepare_document
from gateway.client.transfer import multipart_upload
from gateway.config import Settings
from gateway.delivery.push import gateway_headers
from gateway.envelope import DocumentSpec, InlineFile, ReceiptAttachment, ReceiptData, build_document, build_receipt
from gateway.envelope.build import zip_single
from gateway.signing import GatewayKey
from gw import PDF
from pg import free_port

G22, H41, H42 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H42"


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    with app_server(settings) as base:
        yield base


@pytest.fixture
def admin(gateway: str, db_url: str) -> Iterator[GatewayClient]:
    with GatewayClient(gateway, operator_token(db_url)) as client:
        yield client


Enrol = Callable[..., GatewayClient]


@pytest.fixture
def enrol(gateway: str, admin: GatewayClient) -> Iterator[Enrol]:
    """Register an agency (pull by default) with a fresh test key; a client acting as it."""
    made: list[GatewayClient] = []

    def enrol(code: str, name: str, **client_args: object) -> GatewayClient:
        key = generate_test_key(code, name)
        admin.register_agency(code, name)
        admin.add_certificate(code, key.certificate)
        client = GatewayClient(gateway, admin.issue_token(code), key=key, agency=Organ(code, name),
                               **client_args)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield enrol
    for client in made:
        client.close()


def _letter(*files: Attachment, to: tuple[str, ...] = (H41,), number: str = "12") -> OutgoingDocument:
    return OutgoingDocument(to=list(to), subject="Về việc thử nghiệm thư viện khách", code_number=number,
                            code_notation="VPCP-TTĐT", files=list(files))


def test_a_document_with_inline_and_large_files_travels_and_its_statuses_come_back(
    enrol: Enrol, tmp_path: Path
) -> None:
    g22 = enrol(G22, "Văn phòng Chính phủ", inline_limit=4096)
    h41 = enrol(H41, "UBND tỉnh Nghệ An")
    big = tmp_path / "phụ lục.pdf"
    big.write_bytes(PDF + os.urandom(300_000))
    prepared = g22.prepare_document(_letter(Attachment.from_bytes("cong-van.pdf", PDF), Attachment.from_path(big)))
    assert [f.inline for f in prepared.files] == [True, False]
    assert prepared.signed

    seen: list[tuple[int, int]] = []
    sent = g22.submit(prepared, progress=lambda done, total: seen.append((done, total)))
    assert sent.created
    assert seen[-1][0] == seen[-1][1] > big.stat().st_size
    receipt = sent.receipt
    assert (receipt.sender, receipt.recipients, receipt.kind, receipt.signed) == (G22, (H41,), "document", True)
    assert receipt.signer_certificate_sha256 == g22.key.certificate_sha256  # type: ignore[union-attr]
    assert [(a.name, a.size) for a in receipt.attachments] == [("cong-van.pdf", len(PDF)),
                                                               ("phụ lục.pdf", big.stat().st_size)]
    # An identical resubmission: the first receipt again, nothing new.
    again = g22.submit(prepared)
    assert (again.created, again.receipt_xml) == (False, sent.receipt_xml)

    [item] = h41.inbox()
    assert (item.id, item.kind, item.sender, item.multipart) == (sent.document, "document", G22, True)
    fetched = h41.fetch(item.delivery_id, tmp_path / "in")
    assert fetched.envelope == sent.envelope
    assert fetched.envelope_path is not None
    assert fetched.envelope_path.read_bytes() == sent.envelope
    assert [(f.name, f.kind, f.path.read_bytes()) for f in fetched.files] == [
        ("cong-van.pdf", "inline", PDF), ("phụ lục.pdf", "large", big.read_bytes())]
    assert not [p for p in (tmp_path / "in").iterdir() if p.name.startswith(".part-")]

    acked = h41.ack(item.delivery_id)
    assert (acked.state, acked.changed) == ("delivered", True)
    assert acked.received_at is not None
    assert h41.ack(item.delivery_id).changed is False
    state = g22.wait_until_received(sent.document, timeout=10)
    assert state.recipient(H41).received_at == acked.received_at

    # The gateway's own 01, signed with the gateway's key.
    [arrived] = g22.inbox()
    message = g22.read_message(arrived.delivery_id)
    assert (message.kind, message.status_code, message.sender, message.refers_to) == ("status", "01", H41,
                                                                                     sent.document)
    assert message.signer_certificate_sha256 == g22.gateway_certificate_sha256
    g22.ack(arrived.delivery_id)

    # Statuses by gateway id or by DocumentId; then a recall and its answer.
    registered = h41.send_status(sent.document, "03", "Đã vào sổ văn bản đến")
    assert (registered.receipt.kind, registered.receipt.recipients) == ("status", (G22,))
    h41.send_status(receipt.document_id, "04", "Giao phòng Tổng hợp")
    assert g22.document(sent.document).recipient(H41).status == "04"
    g22.recall(sent.document, "Ban hành nhầm")
    [recall] = [i for i in h41.inbox() if i.kind == "status"]
    read = h41.read_message(recall.delivery_id)
    assert (read.status_code, read.description, read.sender) == ("13", "Ban hành nhầm", G22)
    h41.ack(recall.delivery_id)
    h41.send_status(sent.document, "15", "Đồng ý")
    assert g22.document(sent.document).recipient(H41).status == "15"


def test_refusals_arrive_as_typed_problems(enrol: Enrol, gateway: str, admin: GatewayClient) -> None:
    g22 = enrol(G22, "Văn phòng Chính phủ")
    enrol(H41, "UBND tỉnh Nghệ An")
    with pytest.raises(ProblemResponse) as unknown:
        g22.send_document(_letter(Attachment.from_bytes("a.pdf", PDF), to=(H41, "000.00.00.H99")))
    assert (unknown.value.status, unknown.value.slug) == (422, "recipient-unknown")

    unsigned = GatewayClient(gateway, admin.issue_token(G22), agency=G22)
    with unsigned, pytest.raises(ProblemResponse) as missing:
        unsigned.send_document(_letter(Attachment.from_bytes("a.pdf", PDF), number="13"))
    assert missing.value.slug == "signature-missing"

    with GatewayClient(gateway, "gw_not-a-token") as stranger, pytest.raises(ProblemResponse) as anonymous:
        stranger.inbox()
    assert (anonymous.value.status, anonymous.value.slug) == (401, "unauthenticated")

    waiting = g22.send_document(_letter(Attachment.from_bytes("a.pdf", PDF), number="14"))
    with pytest.raises(WaitTimeout):
        g22.wait_until_received(waiting.document, timeout=0.3, interval=0.1)


def test_an_unreachable_gateway_is_one_typed_error() -> None:
    with GatewayClient(f"http://127.0.0.1:{free_port()}", "t", timeout=2) as client, \
            pytest.raises(GatewayUnreachable):
        client.inbox()


# -- verification fails closed: scripted answers ------------------------------------------------------------

def _gateway_key() -> GatewayKey:
    made = generate_test_key("000.00.00.A01", "gateway")
    return GatewayKey(made.private_key, made.certificate)


def _receipt_for(xml: bytes, key: GatewayKey, **changes: object) -> bytes:
    prepared_digest = hashlib.sha256(xml).hexdigest()
    fields: dict[str, object] = {
        "gateway_document_id": "0b7e7c38-8d55-4a55-9a4b-0a3a3c1f6e10", "document_id": "x", "sender": G22,
        "recipients": (H41,), "envelope_sha256": prepared_digest,
        "attachments": (ReceiptAttachment("1", "a.pdf", hashlib.sha256(PDF).hexdigest(), len(PDF)),),
        "signed": True, "sent_at": datetime.now(UTC), "ledger_sequence": 7, "ledger_entry_hash": "ab" * 32,
    }
    fields.update(changes)
    return build_receipt(ReceiptData(**fields), key.private_key, key.certificate,  # type: ignore[arg-type]
                         algorithm="ecdsa-sha256")


def _scripted(answer: Callable[[httpx.Request], httpx.Response], key: AgencyKey | None,
              gateway: GatewayKey, recipient: str = G22) -> GatewayClient:
    return GatewayClient("http://gateway.test", "t", key=key, agency=Organ(recipient, "x"),
                         gateway_certificate=gateway.certificate, transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    "forgery",
    ["signed_by_another_key", "other_envelope_digest", "other_recipients", "attachment_left_out", "other_sender",
     "edited_after_signing"],
)
def test_a_receipt_that_does_not_match_what_was_sent_is_refused(forgery: str) -> None:
    gateway, other = _gateway_key(), _gateway_key()
    key = generate_test_key(G22, "VPCP")
    prepared = prepare_document(_letter(Attachment.from_bytes("a.pdf", PDF)), Organ(G22, "VPCP"), key)
    forged = {
        "signed_by_another_key": lambda: _receipt_for(prepared.xml, other),
        "other_envelope_digest": lambda: _receipt_for(prepared.xml, gateway, envelope_sha256="0" * 64),
        "other_recipients": lambda: _receipt_for(prepared.xml, gateway, recipients=(H41, H42)),
        "attachment_left_out": lambda: _receipt_for(prepared.xml, gateway, attachments=()),
        "other_sender": lambda: _receipt_for(prepared.xml, gateway, sender=H42),
        "edited_after_signing": lambda: _receipt_for(prepared.xml, gateway).replace(b">7<", b">8<"),
    }[forgery]()
    genuine = _receipt_for(prepared.xml, gateway)

    def answer_with(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: httpx.Response(201, content=body, headers={"Content-Type": "application/xml"})

    with _scripted(answer_with(genuine), key, gateway) as client:
        assert client.submit(prepared).receipt.ledger_sequence == 7
    with _scripted(answer_with(forged), key, gateway) as client, pytest.raises(ReceiptInvalid):
        client.submit(prepared)


def _download(envelope: bytes, key: GatewayKey, recipient: str = G22,
              body: bytes | None = None) -> Callable[[httpx.Request], httpx.Response]:
    headers = gateway_headers(delivery_id="d-1", document="0b7e7c38-8d55-4a55-9a4b-0a3a3c1f6e10", kind="document",
                              sender=H41, recipient=recipient, sent_at=datetime.now(UTC),
                              content_sha256=hashlib.sha256(envelope).hexdigest(), refers_to=None, key=key,
                              now=datetime.now(UTC))
    return lambda request: httpx.Response(200, content=envelope if body is None else body,
                                          headers={**headers, "Content-Type": "application/xml"})


def _envelope(*files: InlineFile) -> bytes:
    return build_document(DocumentSpec(sender=Organ(H41, "UBND"), recipients=(Organ(G22),), attachments=files))


@pytest.mark.parametrize("forgery", ["signed_by_another_key", "addressed_to_another_agency", "body_swapped"])
def test_a_download_without_the_gateways_signature_writes_nothing(forgery: str, tmp_path: Path) -> None:
    gateway = _gateway_key()
    envelope = _envelope(InlineFile("a.pdf", PDF))
    answer = {
        "signed_by_another_key": _download(envelope, _gateway_key()),
        "addressed_to_another_agency": _download(envelope, gateway, recipient=H42),
        "body_swapped": _download(envelope, gateway, body=_envelope(InlineFile("b.pdf", PDF))),
    }[forgery]
    with _scripted(_download(envelope, gateway), None, gateway) as client:
        assert [f.name for f in client.fetch("d-1", tmp_path / "ok").files] == ["a.pdf"]
    with _scripted(answer, None, gateway) as client, pytest.raises(DeliverySignatureInvalid):
        client.fetch("d-1", tmp_path / "forged")
    assert list((tmp_path / "forged").iterdir()) == []


def test_fetch_keeps_a_traversal_attachment_name_inside_the_directory(tmp_path: Path) -> None:
    gateway = _gateway_key()
    # The ZIP member is a plain name (the gateway checks it); the AttachmentName tries to climb out.
    encoded = base64.encodebytes(zip_single("evil.pdf", PDF)).decode("ascii")
    envelope = _envelope(InlineFile("../../evil.pdf", PDF, encoded=encoded))
    target = tmp_path / "inbox"
    with _scripted(_download(envelope, gateway), None, gateway) as client:
        got = client.fetch("d-1", target)
    assert [f.path for f in got.files] == [target / "evil.pdf"]
    assert sorted(p.name for p in tmp_path.rglob("*.pdf")) == ["evil.pdf"]


def test_a_download_that_is_not_edxml_is_refused_as_a_message(tmp_path: Path) -> None:
    gateway = _gateway_key()
    with _scripted(_download(b"<not-edxml/>", gateway), None, gateway) as client, pytest.raises(MessageInvalid):
        client.fetch("d-1", tmp_path)


def test_the_multipart_upload_declares_its_exact_length(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    big.write_bytes(PDF + os.urandom(1_500_000))
    prepared = prepare_document(_letter(Attachment.from_path(big), Attachment.from_bytes("a.pdf", PDF)),
                                Organ(G22, "VPCP"), None, inline_limit=1024)
    content_type, length, chunks = multipart_upload(prepared)
    body = b"".join(chunks)
    assert len(body) == length
    assert content_type.startswith("multipart/form-data; boundary=")
    assert b'name="1"' in body
    assert b'name="envelope"' in body


def test_rate_limited_answers_are_retried_after_retry_after_then_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = _gateway_key()
    key = generate_test_key(G22, "VPCP")
    prepared = prepare_document(_letter(Attachment.from_bytes("a.pdf", PDF)), Organ(G22, "VPCP"), key)
    receipt = _receipt_for(prepared.xml, gateway)
    slept: list[float] = []
    monkeypatch.setattr("gateway.client.client.time.sleep", slept.append)
    limited = httpx.Response(429, json={"type": "urn:gateway:problem:rate-limited", "title": "Too many requests",
                                        "status": 429}, headers={"Retry-After": "2",
                                                                 "Content-Type": "application/problem+json"})
    answers = iter([limited, limited, httpx.Response(201, content=receipt, headers={"Content-Type": "application/xml"}),
                    limited, httpx.Response(200, json={"items": [], "next": None})])
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return next(answers)

    with _scripted(answer, key, gateway) as client:
        assert client.submit(prepared).receipt.ledger_sequence == 7
        assert client.inbox() == []
    assert slept == [2.0, 2.0, 2.0]
    assert bodies[:3] == [prepared.xml] * 3  # the streamed body sent whole each time

    always = httpx.MockTransport(lambda request: limited)
    with GatewayClient("http://gateway.test", "t", rate_limit_retries=1, transport=always) as client, \
            pytest.raises(ProblemResponse) as refused:
        client.inbox()
    assert (refused.value.status, refused.value.slug, refused.value.retry_after) == (429, "rate-limited", "2")
