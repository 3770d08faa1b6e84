"""The upstream client (issue 15, first slice): the gateway calling another axis over VXP, as the axis SDK does.

Real parts first: a real ``gateway serve`` on 127.0.0.1 (both databases), its agencies and VXP systems made
with the CLI, driven by :class:`UpstreamClient` over a real socket: a document and a status there and back,
the register lists, a wrong secret refused with the face's ErrorCode, a killed upstream and a silent one
unavailable within the timeout. Then the quirks a real gateway never produces (ErrorCode as a number, null
fields, HTML and empty bodies, an OK without a DocId ...), injected with ``httpx.MockTransport`` inside a unit,
and every request the client builds checked by the server's own ``parse_request``/``verify_hmac``. Last the
settings (``GATEWAY_UPSTREAM_*``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr, ValidationError

from gateway.config import Settings
from gateway.envelope import (
    DocumentSpec,
    InlineFile,
    Organ,
    ResponseFor,
    StatusSpec,
    build_document,
    build_status,
    derive_document_id,
)
from gateway.upstream.client import (
    FILE_PATH,
    SynchronizedUnit,
    UpstreamClient,
    load_secret,
    sdk_timestamp,
    signed_headers,
)
from gateway.upstream.errors import UpstreamAnswerInvalid, UpstreamError, UpstreamRefused, UpstreamUnavailable
from gateway.vxp import protocol
from gw import PDF
from pg import free_port
from real_processes import gateway_cli, serving

G22 = Organ("000.00.00.G22", "Văn phòng Chính phủ")
H41 = Organ("000.00.00.H41", "UBND tỉnh Nghệ An")
SECRET = "Kq7vXw2LmZp9RtY4sN8bHc3JdF6gA1eU"  # no word of any message: leaks() looks for any 8 characters
SYSTEM = "vxp.test.upstream"


# ============================================================================ a real upstream: gateway serve


@dataclass
class Upstream:
    base: str  # the VXP base URL, http://127.0.0.1:<port>/vxp
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def cli(self, *args: str) -> str:
        return gateway_cli(self.env, *args)

    def system(self, agency: str) -> tuple[str, str]:
        """A VXP system serving ``agency`` alone, made as an operator would: (system id, secret)."""
        made = json.loads(self.cli("vxp", "system", "create", "--agency", agency, "--serves", "agency")
                          .strip().splitlines()[-1])
        return made["system_id"], made["secret"]


@pytest.fixture
def upstream(settings: Settings, tmp_path: Path) -> Iterator[Upstream]:
    """``gateway serve`` on a free loopback port, on the ``settings`` fixture's database (SQLite and
    PostgreSQL), ready within 60 s; stopped afterwards unless the test killed it."""
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_PORT": str(port),
           "GATEWAY_DATABASE_URL": settings.effective_database_url, "GATEWAY_RUN_WORKERS": "false"}
    with serving(env, port, tmp_path, tmp_path / "upstream.log") as proc:
        yield Upstream(f"http://127.0.0.1:{port}/vxp", env, proc)


def _document(document_id: str) -> bytes:
    return build_document(DocumentSpec(sender=G22, recipients=(H41,), document_id=document_id,
                                       attachments=(InlineFile("cong-van.pdf", PDF, "application/pdf"),)))


async def test_a_document_and_its_statuses_travel_through_a_real_upstream_gateway(upstream: Upstream) -> None:
    for organ in (G22, H41):
        upstream.cli("agency", "add", organ.organ_id, "--name", organ.name or organ.organ_id, "--pull",
                     "--policy", "channel")
    sender_id, sender_secret = upstream.system(G22.organ_id)
    recipient_id, recipient_secret = upstream.system(H41.organ_id)
    document_id = derive_document_id(G22.organ_id, date.today(), "1234", "VPCP-TTĐT")
    envelope = _document(document_id)

    async with UpstreamClient(upstream.base, sender_id, sender_secret, timeout=30) as sender, \
            UpstreamClient(upstream.base, recipient_id, SecretStr(recipient_secret), timeout=30) as recipient:
        # sendEdoc: the upstream's DocId.
        doc = await sender.send_edoc(envelope, G22.organ_id)
        assert len(doc) == 36

        # The recipient's system lists it, fetches the exact bytes both ways, acknowledges it.
        assert await recipient.count_received("edoc") == 1
        [item] = await recipient.received("edoc")
        assert (item.from_code, item.to_code, item.message_type, item.service_type) == (
            G22.organ_id, H41.organ_id, "edoc", "eDoc")
        assert item.created_time.endswith("+07:00")
        assert await recipient.get_edoc(item.doc_id) == envelope
        assert await recipient.download_edoc(item.doc_id) == envelope
        await recipient.update_status(item.doc_id, "done")
        assert await recipient.received("edoc") == []
        assert await recipient.count_received("edoc") == 0

        # getSentEdocList: delivered, with its received instant.
        [row] = await sender.sent(doc)
        assert (row.to_code, row.from_code, row.sender_doc_id, row.receive_status) == (
            H41.organ_id, G22.organ_id, doc, "delivered")
        assert row.received_time
        assert row.sent_time

        # A status message back (messagetype status): the sender's system receives it with the gateway's 01.
        status = build_status(StatusSpec(response_for=ResponseFor(organ_id=G22.organ_id, document_id=document_id),
                                         sender=H41, status_code="03", description="Đã tiếp nhận"))
        status_doc = await recipient.send_edoc(status, H41.organ_id, "status")
        statuses = await sender.received("status")
        assert sorted((s.from_code, s.message_type) for s in statuses) == [(H41.organ_id, "status")] * 2
        fetched = {s.doc_id: await sender.get_edoc(s.doc_id) for s in statuses}
        [ours] = [doc_id for doc_id, data in fetched.items() if data == status]
        [gateways_01] = [doc_id for doc_id in fetched if doc_id != ours]
        await sender.update_status(ours, "done")
        # a fail acknowledgement with a Vietnamese description (UTF-8 header, ASCII sign-header) authenticates
        await sender.update_status(gateways_01, "fail", "Không đọc được bản tin;\r\nthử lại sau")
        assert await sender.received("status") == []
        [status_row] = await recipient.sent(status_doc, "status")
        assert (status_row.to_code, status_row.message_type, status_row.receive_status) == (
            G22.organ_id, "status", "delivered")

        # The register lists parse.
        agencies = {a.code: a for a in await sender.agencies()}
        assert set(agencies) == {G22.organ_id, H41.organ_id}
        assert agencies[H41.organ_id].name == "UBND tỉnh Nghệ An"
        assert {a.code102 for a in await sender.agencies_qd20(1)} == {G22.organ_id, H41.organ_id}
        units = await sender.synchronize_unit()
        assert {(u.code, u.deleted, u.is_agency) for u in units} == {(G22.organ_id, False, True),
                                                                     (H41.organ_id, False, True)}
        assert all(isinstance(u, SynchronizedUnit) and u.version and u.modify_date for u in units)

    # A wrong secret: refused with the face's ErrorCode (and its HTTP status kept); an unknown system too.
    async with UpstreamClient(upstream.base, sender_id, "not-the-secret") as wrong:
        with pytest.raises(UpstreamRefused) as refused:
            await wrong.count_received()
    assert (refused.value.error_code, refused.value.http_status) == ("vxp-hmac-invalid", 401)
    assert refused.value.error_desc
    async with UpstreamClient(upstream.base, "vxp.nobody", SECRET) as nobody:
        with pytest.raises(UpstreamRefused) as unknown:
            await nobody.send_edoc(envelope, G22.organ_id)
    assert unknown.value.error_code == "vxp-system-unknown"


async def test_a_killed_upstream_is_unavailable_within_the_timeout(upstream: Upstream) -> None:
    async with UpstreamClient(upstream.base, SYSTEM, SECRET, connect_timeout=2, timeout=5) as client:
        with pytest.raises(UpstreamRefused) as alive:  # it answers: FAIL, this system is unknown there
            await client.count_received()
        assert alive.value.error_code == "vxp-system-unknown"
        upstream.proc.send_signal(signal.SIGKILL)
        upstream.proc.wait(timeout=30)
        with pytest.raises(UpstreamUnavailable) as down:
            await client.send_edoc(b"<edXML/>", G22.organ_id)
        assert (down.value.operation, down.value.http_status) == ("sendEdoc", None)
    async with UpstreamClient(upstream.base, SYSTEM, SECRET, connect_timeout=2, timeout=5) as fresh:
        with pytest.raises(UpstreamUnavailable) as refused:
            await fresh.received()
    assert refused.value.request_sent is False  # connection refused: nothing reached the upstream


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A real TCP server on loopback that accepts, reads and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_upstream_that_never_answers_is_unavailable_after_the_timeout(silent_port: int) -> None:
    async with UpstreamClient(f"http://127.0.0.1:{silent_port}/vxp", SYSTEM, SECRET, connect_timeout=1,
                              timeout=0.5) as client:
        with pytest.raises(UpstreamUnavailable) as silent:
            await client.send_edoc(b"<edXML/>", G22.organ_id)
    assert (silent.value.operation, silent.value.request_sent) == ("sendEdoc", True)  # it may have arrived


# ============================================================================ every request authenticates


Handler = Callable[[httpx.Request], httpx.Response]


def mock(handler: Handler, **kwargs: Any) -> UpstreamClient:
    return UpstreamClient("https://axis.example/vxp/", SYSTEM, SECRET, transport=httpx.MockTransport(handler),
                          **kwargs)


def answer(http: int = 200, /, **body: Any) -> httpx.Response:
    """A JSON answer with HTTP status ``http`` (``status`` is the body's)."""
    return httpx.Response(http, json=body)


def ok(**fields: Any) -> httpx.Response:
    return answer(status="OK", ErrorCode="0", ErrorDesc="", **fields)


def authenticated(request: httpx.Request, secret: str = SECRET) -> protocol.SignedRequest:
    """The request as the gateway's face reads it: parsed, its HMAC verified (raises otherwise)."""
    signed = protocol.parse_request([(k.decode("latin-1"), v.decode("utf-8"))
                                     for k, v in request.headers.raw])
    protocol.verify_hmac(signed, secret)
    return signed


BASE_KEYS = {"systemid", "timestamp", "Content-Type"}
EDXML = build_document(DocumentSpec(sender=G22, recipients=(H41,)))

# operation -> (method, the parameters it signs besides BASE_KEYS, its body)
EXPECTED: dict[str, tuple[str, dict[str, str], bytes]] = {
    "sendEdoc": ("POST", {"servicetype": "eDoc", "messagetype": "status", "from": G22.organ_id,
                          "hash-file": protocol.unpadded_sha256_hex(EDXML)}, EDXML + b"\r\n"),
    "getReceivedEdocList": ("POST", {"servicetype": "eDoc", "messagetype": "status"}, b""),
    "getEdoc": ("POST", {"docId": "d-1", "filePath": FILE_PATH}, b"{}"),
    "downloadEdoc": ("GET", {"docId": "d-2", "filePath": FILE_PATH}, b""),
    "updateStatus": ("POST", {"docId": "d-3", "docid": "d-3", "status": "fail",
                              "description": "Sai định dạng tệp đính kèm"}, b"{}"),
    "getSentEdocList": ("POST", {"servicetype": "eDoc", "messagetype": "edoc", "docId": "d-4"}, b""),
    "countReceiveStatus": ("POST", {}, b"{}"),
    "getAgenciesList": ("POST", {}, b""),
    "getAgenciesListQD20": ("POST", {"level": "2"}, b""),
    "getSynchronizeUnit": ("POST", {}, b""),
}


async def test_every_request_authenticates_as_the_sdk_signs_and_carries_only_its_own_keys() -> None:
    seen: dict[str, httpx.Request] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        operation = request.url.path.rsplit("/", 1)[-1]
        assert request.url.path == f"/vxp/{operation}"  # the base's trailing slash is not doubled
        seen[operation] = request
        if operation == "downloadEdoc":
            return httpx.Response(200, content=EDXML, headers={"Content-Type": "application/xml"})
        return ok(DocId="up-1", data=base64.b64encode(EDXML).decode() if operation == "getEdoc" else [], count=0)

    started = datetime.now(protocol.VIETNAM)
    async with mock(handler) as client:
        # in an order where a leaking map would carry keys from one call into the next
        assert await client.send_edoc(EDXML, G22.organ_id, "status") == "up-1"
        assert await client.received("status") == []
        assert await client.get_edoc("d-1") == EDXML
        assert await client.download_edoc("d-2") == EDXML
        await client.update_status("d-3", "fail", "Sai định dạng tệp đính kèm")
        assert await client.sent("d-4") == []
        assert await client.count_received("status") == 0
        assert await client.agencies() == []
        assert await client.agencies_qd20(2) == []
        assert await client.synchronize_unit() == []

    assert set(seen) == set(EXPECTED)
    for operation, (method, params, body) in EXPECTED.items():
        request = seen[operation]
        signed = authenticated(request)
        assert request.method == method, operation
        assert dict(signed.signed) == {**params, "systemid": SYSTEM, "timestamp": signed.signed["timestamp"],
                                       "Content-Type": signed.signed["Content-Type"]}, operation
        assert set(signed.sign_header_key) == set(params) | BASE_KEYS, operation
        for name in params:
            assert protocol.param(signed, name) == params[name], (operation, name)
        assert request.content == body, operation
        content_type = "application/octet-stream" if operation == "sendEdoc" else "application/json"
        assert request.headers["Content-Type"] == signed.signed["Content-Type"] == content_type
        assert request.headers["XroadVnpt-version"] == "3.0.201608"
        moment = protocol.parse_timestamp(signed.signed["timestamp"])
        assert moment is not None
        assert started - timedelta(seconds=1) <= moment <= datetime.now(protocol.VIETNAM)
        assert SECRET not in str(request.headers)
    # the body is bound to the HMAC by the unpadded hash-file, the trailing CRLF not hashed
    protocol.verify_hash_file(authenticated(seen["sendEdoc"]),
                              protocol.strip_trailing_crlf(seen["sendEdoc"].content))


async def test_the_hash_file_is_the_sdks_unpadded_hex_over_the_file_without_its_crlf() -> None:
    # a file whose SHA-256 has bytes below 0x10: the SDK's hex drops their zero, standard hex keeps it
    data = next(EDXML + f"<!-- {n} -->".encode() for n in range(1000)
                if sum(b < 0x10 for b in hashlib.sha256(EDXML + f"<!-- {n} -->".encode()).digest()) >= 2)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(DocId="up-1")

    async with mock(handler) as client:
        await client.send_edoc(data, G22.organ_id)
    signed = authenticated(seen[0])
    assert signed.signed["hash-file"] == protocol.unpadded_hex(hashlib.sha256(data).digest())
    assert len(signed.signed["hash-file"]) <= 62
    assert seen[0].content == data + b"\r\n"


def test_the_timestamp_is_the_sdks_with_milliseconds_on_four_digits() -> None:
    moment = datetime(2026, 11, 28, 16, 35, 28, 790_123, tzinfo=UTC)
    assert sdk_timestamp(moment) == "28112026T233528+0790"
    assert sdk_timestamp(datetime(2026, 1, 2, 3, 4, 5, 7_999, tzinfo=protocol.VIETNAM)) == "02012026T030405+0007"
    assert protocol.parse_timestamp(sdk_timestamp(moment)) == moment.replace(microsecond=790_000)
    with pytest.raises(ValueError, match="aware"):
        sdk_timestamp(datetime(2026, 1, 1))


def test_a_parameter_with_a_line_break_is_never_sent() -> None:
    with pytest.raises(ValueError, match="control character"):
        signed_headers(SYSTEM, SECRET, {"docId": "d\r\nX-Injected: 1"}, content_type="application/json",
                       timestamp="01012026T000000+0000")


async def test_a_description_is_sent_without_control_characters_and_bounded() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok()

    async with mock(handler) as client:
        await client.update_status("d-1", "fail", "dòng một\r\ndòng hai\t" + "x" * 2000)
    description = protocol.param(authenticated(seen[0]), "description")
    assert description is not None
    assert description.startswith("dòng một  dòng hai ")
    assert len(description) == 500


# ============================================================================ answer quirks (fault injection)


@pytest.fixture
def captured() -> Iterator[list[dict[str, Any]]]:
    """The log events at info level and above, whatever level an earlier test configured; restored after."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with structlog.testing.capture_logs() as events:
            yield events
    finally:
        structlog.configure(**before)


async def outcome(response: httpx.Response | Callable[[], httpx.Response], call: str = "send",
                  **kwargs: Any) -> Any:
    """What the client makes of ``response`` to one call (a copy of it: a response is read once)."""

    def handler(_request: httpx.Request) -> httpx.Response:
        given = response() if callable(response) else response
        return httpx.Response(given.status_code, headers=given.headers, content=given.content)

    async with mock(handler, **kwargs) as client:
        if call == "send":
            return await client.send_edoc(EDXML, G22.organ_id)
        if call == "received":
            return await client.received()
        if call == "get":
            return await client.get_edoc("d-1")
        if call == "download":
            return await client.download_edoc("d-1")
        if call == "ack":
            return await client.update_status("d-1", "done")
        if call == "sent":
            return await client.sent("d-1")
        if call == "count":
            return await client.count_received()
        if call == "units":
            return await client.synchronize_unit()
        raise AssertionError(call)


async def test_error_code_as_a_number_zero_is_success() -> None:
    assert await outcome(answer(status="OK", ErrorCode=0, ErrorDesc="", DocId="up-1")) == "up-1"
    # no status at all, ErrorCode 0 and a numeric DocId (the SDK reads getAsString)
    assert await outcome(answer(ErrorCode=0, DocId=1234)) == "1234"
    assert await outcome(answer(ErrorCode=0.0, DocId="up-2")) == "up-2"


@pytest.mark.parametrize("body", [
    {"status": "FAIL", "ErrorCode": -1, "ErrorDesc": None},  # numeric code, null desc, no DocId
    {"status": "FAIL", "ErrorCode": "E42", "ErrorDesc": "Sai chữ ký", "DocId": ""},
    {"status": "OK", "ErrorCode": "E42", "ErrorDesc": "Sai chữ ký", "DocId": "up-1"},  # the SDK goes by ErrorCode
    {"status": "fail"},  # no ErrorCode at all
])
async def test_a_fail_answer_is_refused_with_its_error_code_and_desc(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamRefused) as refused:
        await outcome(answer(400, **body))
    expected_code = {-1: "-1", None: ""}.get(body.get("ErrorCode"), body.get("ErrorCode"))
    assert refused.value.error_code == expected_code
    assert refused.value.error_desc == (body.get("ErrorDesc") or "")
    assert refused.value.http_status == 400
    assert refused.value.to_problem()["error_code"] == expected_code  # carried as problem extensions


async def test_an_upstreams_long_error_text_is_bounded() -> None:
    with pytest.raises(UpstreamRefused) as refused:
        await outcome(answer(status="FAIL", ErrorCode="E" * 1000, ErrorDesc="d" * 10_000))
    assert (len(refused.value.error_code), len(refused.value.error_desc)) == (200, 2000)


@pytest.mark.parametrize("body", [
    {"status": "OK", "ErrorCode": "0", "ErrorDesc": ""},
    {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "DocId": None},
    {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "DocId": ""},
    {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "DocId": "  "},
    {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "DocId": {"id": "x"}},
    {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "DocId": "a\r\nb"},
])
async def test_send_edoc_ok_without_a_usable_doc_id_is_never_success(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamAnswerInvalid, match="DocId"):
        await outcome(answer(**body))


@pytest.mark.parametrize(("response", "expected", "http_status"), [
    (httpx.Response(502, text="<html><body>Bad Gateway</body></html>", headers={"Content-Type": "text/html"}),
     UpstreamUnavailable, 502),
    (httpx.Response(503, content=b""), UpstreamUnavailable, 503),
    (httpx.Response(429, text="slow down"), UpstreamUnavailable, 429),
    (httpx.Response(200, text="<!DOCTYPE html><html>login</html>", headers={"Content-Type": "text/html"}),
     UpstreamAnswerInvalid, 200),
    (httpx.Response(200, content=b""), UpstreamAnswerInvalid, 200),
    (httpx.Response(404, text="<html>Not Found</html>"), UpstreamAnswerInvalid, 404),
    (httpx.Response(200, json=["OK"]), UpstreamAnswerInvalid, 200),
    (httpx.Response(200, json={"DocId": "up-1"}), UpstreamAnswerInvalid, 200),  # says neither OK nor FAIL
    (httpx.Response(200, json={"status": "PENDING", "ErrorCode": None}), UpstreamAnswerInvalid, 200),
    (httpx.Response(200, content=b"\xff\xfe{not json"), UpstreamAnswerInvalid, 200),
    (httpx.Response(302, headers={"Location": "https://elsewhere.example/"}), UpstreamAnswerInvalid, 302),
])
async def test_a_body_that_is_no_answer_is_unavailable_on_5xx_and_invalid_otherwise(
    response: httpx.Response, expected: type[UpstreamError], http_status: int
) -> None:
    for call in ("send", "received", "ack", "count"):
        with pytest.raises(expected) as failed:
            await outcome(response, call)
        assert failed.value.http_status == http_status
        assert not isinstance(failed.value, UpstreamRefused)


async def test_received_reads_null_and_missing_fields_as_empty_and_leaves_out_unusable_rows(
    captured: list[dict[str, Any]],
) -> None:
    rows = [
        {"docId": "d-1", "from": "000.00.00.G22", "to": None, "messageType": "edoc", "status": None},
        {"docId": 42, "serviceType": "eDoc"},  # a numeric id
        {"from": "000.00.00.G22"},  # no docId: cannot be fetched nor acknowledged; stays upstream
        {"docId": None},
        "not an object",
        None,
    ]
    items = await outcome(answer(status="OK", ErrorCode=0, ErrorDesc=None, data=rows), "received")
    assert [(i.doc_id, i.from_code, i.to_code, i.status, i.created_time) for i in items] == [
        ("d-1", "000.00.00.G22", "", "", ""), ("42", "", "", "", "")]
    left_out = {(e["reason"], e["count"]) for e in captured if e["event"] == "upstream list items left out"}
    assert left_out == {("not an object", 2), ("no usable docId", 2)}


@pytest.mark.parametrize("data", [None, "absent"])
async def test_an_ok_list_without_data_is_empty(data: str | None) -> None:
    fields = {} if data == "absent" else {"data": data}
    assert await outcome(answer(status="OK", ErrorCode="0", **fields), "received") == []
    assert await outcome(answer(status="OK", ErrorCode="0", **fields), "sent") == []


async def test_a_fail_list_without_data_is_refused_never_an_empty_list() -> None:
    with pytest.raises(UpstreamRefused):
        await outcome(answer(401, status="FAIL", ErrorCode="vxp-hmac-invalid", ErrorDesc="no"), "received")
    with pytest.raises(UpstreamAnswerInvalid, match="data is not a list"):
        await outcome(answer(status="OK", ErrorCode="0", data="d-1,d-2"), "received")


async def test_sent_rows_read_every_field_with_nulls_as_empty() -> None:
    [row] = await outcome(ok(data=[{"toCode": "000.00.00.H41", "receiveStatus": "done", "receivedTime": None,
                                    "sentTime": 1732800000}]), "sent")
    assert (row.to_code, row.receive_status, row.received_time, row.sent_time, row.title) == (
        "000.00.00.H41", "done", "", "1732800000", "")


async def test_get_edoc_decodes_mime_base64_and_refuses_what_is_not_a_file() -> None:
    encoded = base64.encodebytes(EDXML * 3).decode()  # line breaks every 76 characters, as Java's MIME encoder
    assert "\n" in encoded
    assert await outcome(ok(data=encoded), "get") == EDXML * 3
    for bad in ({}, {"data": None}, {"data": ""}, {"data": "%%% not base64 %%%"}, {"data": ["x"]}):
        with pytest.raises(UpstreamAnswerInvalid, match="data"):
            await outcome(ok(**bad), "get")
    with pytest.raises(UpstreamRefused):  # FAIL without data
        await outcome(answer(404, status="FAIL", ErrorCode="not-found", ErrorDesc="No such resource"), "get")


async def test_download_edoc_takes_raw_bytes_and_refuses_pages_and_fail_answers() -> None:
    assert await outcome(httpx.Response(200, content=EDXML, headers={"Content-Type": "application/xml"}),
                         "download") == EDXML
    # some servers answer downloadEdoc in JSON, base64 like getEdoc
    assert await outcome(ok(data=base64.b64encode(EDXML).decode()), "download") == EDXML
    with pytest.raises(UpstreamRefused) as refused:
        await outcome(answer(404, status="FAIL", ErrorCode="not-found", ErrorDesc="No such resource"), "download")
    assert refused.value.error_code == "not-found"
    for page, expected in (
        (httpx.Response(200, text="<html>portal</html>", headers={"Content-Type": "text/html"}),
         UpstreamAnswerInvalid),
        (httpx.Response(200, content=b"\xef\xbb\xbf  <!DOCTYPE HTML><p>x", headers={"Content-Type": "text/plain"}),
         UpstreamAnswerInvalid),
        (httpx.Response(200, content=b""), UpstreamAnswerInvalid),
        (httpx.Response(404, content=EDXML), UpstreamAnswerInvalid),
        (httpx.Response(500, text="Internal Server Error"), UpstreamUnavailable),
        (httpx.Response(504, content=EDXML), UpstreamUnavailable),
    ):
        with pytest.raises(expected):
            await outcome(page, "download")


async def test_count_and_register_flags_read_numbers_strings_and_absence() -> None:
    assert await outcome(ok(count="3"), "count") == 3
    assert await outcome(ok(count=3), "count") == 3
    for bad in ({}, {"count": None}, {"count": "-1"}, {"count": "many"}):
        with pytest.raises(UpstreamAnswerInvalid, match="count"):
            await outcome(ok(**bad), "count")
    units = await outcome(ok(data=[{"code": "a", "deleted": "true", "isAgency": 1},
                                   {"code": "b", "deleted": False, "isAgency": "false"},
                                   {"code": "c", "deleted": None}]), "units")
    assert [(u.code, u.deleted, u.is_agency) for u in units] == [("a", True, True), ("b", False, False),
                                                                 ("c", False, False)]


async def test_field_names_are_read_in_any_case() -> None:
    assert await outcome(answer(Status="OK", errorCode="0", DocID="up-9")) == "up-9"


async def test_an_answer_over_the_limit_is_invalid_and_never_read_whole() -> None:
    with pytest.raises(UpstreamAnswerInvalid, match="over 1024 bytes"):
        await outcome(ok(data=base64.b64encode(b"x" * 4096).decode()), "get", max_answer_bytes=1024)


async def test_transport_failures_are_unavailable_and_say_whether_the_request_may_have_arrived() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def hang_up(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed", request=request)

    for handler, sent in ((refuse, False), (hang_up, True), (reset, True)):
        async with mock(handler) as client:
            with pytest.raises(UpstreamUnavailable) as failed:
                await client.update_status("d-1", "done")
        assert (failed.value.request_sent, failed.value.operation) == (sent, "updateStatus")
        assert failed.value.__cause__ is None
        assert failed.value.__suppress_context__


# ============================================================================ logs and the secret


async def test_each_call_is_logged_with_operation_status_and_time_and_never_the_secret(
    captured: list[dict[str, Any]],
) -> None:
    replies = iter([ok(DocId="up-1"), answer(401, status="FAIL", ErrorCode="vxp-hmac-invalid", ErrorDesc="no"),
                    httpx.Response(502, text="<html/>")])
    async with mock(lambda _request: next(replies)) as client:
        await client.send_edoc(EDXML, G22.organ_id)
        for call in (client.count_received, lambda: client.get_edoc("d-7")):
            with pytest.raises(UpstreamError) as failed:
                await call()
            assert SECRET not in repr(failed.value) + json.dumps(failed.value.to_problem())
    calls = [e for e in captured if e["event"] == "upstream call"]
    assert [(e["operation"], e["status"], e["outcome"]) for e in calls] == [
        ("sendEdoc", 200, "ok"), ("countReceiveEdoc", 401, "upstream-refused"),
        ("getEdoc", 502, "upstream-unavailable")]
    assert calls[1]["error_code"] == "vxp-hmac-invalid"
    assert calls[2]["doc_id"] == "d-7"
    assert all(isinstance(e["elapsed_ms"], float) and e["elapsed_ms"] >= 0 for e in calls)
    assert SECRET not in repr(captured)
    assert SECRET not in repr(client)
    assert SYSTEM in repr(client)


# ============================================================================ settings


UPSTREAM = {"upstream_url": "https://axis.example/vxp", "upstream_system_id": SYSTEM}


def leaks(text: str, secret: str = SECRET) -> bool:
    """Whether ``text`` shows any 8 characters of ``secret`` (pydantic cuts a long input in its middle)."""
    return any(secret[i : i + 8] in text for i in range(len(secret) - 7))


def test_no_upstream_by_default_with_the_documented_intervals() -> None:
    settings = Settings()
    assert (settings.upstream_url, settings.upstream_system_id, settings.upstream_secret,
            settings.upstream_secret_file) == (None, None, None, None)
    assert (settings.upstream_poll_seconds, settings.upstream_connect_timeout_seconds,
            settings.upstream_timeout_seconds) == (10, 5, 60)


def test_upstream_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("URL", "http://10.0.0.2:8080/vxp"), ("SYSTEM_ID", SYSTEM), ("SECRET", SECRET),
                        ("POLL_SECONDS", "2.5"), ("CONNECT_TIMEOUT_SECONDS", "1"), ("TIMEOUT_SECONDS", "30")):
        monkeypatch.setenv(f"GATEWAY_UPSTREAM_{name}", value)
    settings = Settings()
    assert settings.upstream_url == "http://10.0.0.2:8080/vxp"
    assert settings.upstream_secret is not None
    assert settings.upstream_secret.get_secret_value() == SECRET
    assert (settings.upstream_poll_seconds, settings.upstream_connect_timeout_seconds,
            settings.upstream_timeout_seconds) == (2.5, 1, 30)
    # the secret is in no repr, str or dump of the settings
    assert SECRET not in repr(settings) + str(settings) + settings.model_dump_json()


def test_a_secret_is_never_in_a_validation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", "ftp://axis.example/vxp")
    monkeypatch.setenv("GATEWAY_UPSTREAM_SYSTEM_ID", SYSTEM)
    monkeypatch.setenv("GATEWAY_UPSTREAM_SECRET", SECRET)
    with pytest.raises(ValidationError, match="GATEWAY_UPSTREAM_URL") as invalid:
        Settings()
    assert not leaks(str(invalid.value))


@pytest.mark.parametrize(("given", "message"), [
    ({"upstream_url": "https://axis.example/vxp", "upstream_secret": SECRET}, "GATEWAY_UPSTREAM_SYSTEM_ID is required"),
    ({**UPSTREAM, "upstream_system_id": "hệ thống"}, "GATEWAY_UPSTREAM_SYSTEM_ID is required"),
    ({**UPSTREAM, "upstream_system_id": "a b"}, "GATEWAY_UPSTREAM_SYSTEM_ID is required"),
    (UPSTREAM, "exactly one of GATEWAY_UPSTREAM_SECRET and GATEWAY_UPSTREAM_SECRET_FILE"),
    ({**UPSTREAM, "upstream_secret": ""}, "exactly one of"),
    ({**UPSTREAM, "upstream_secret": SECRET, "upstream_secret_file": "/run/secrets/upstream"}, "exactly one of"),
    ({"upstream_secret": SECRET}, "GATEWAY_UPSTREAM_SECRET set without GATEWAY_UPSTREAM_URL"),
    ({"upstream_system_id": SYSTEM, "upstream_secret_file": "/x"},
     "GATEWAY_UPSTREAM_SYSTEM_ID, GATEWAY_UPSTREAM_SECRET_FILE set without GATEWAY_UPSTREAM_URL"),
    ({**UPSTREAM, "upstream_url": "axis.example/vxp", "upstream_secret": SECRET}, "GATEWAY_UPSTREAM_URL must be"),
    ({**UPSTREAM, "upstream_url": "ftp://axis.example/vxp", "upstream_secret": SECRET}, "GATEWAY_UPSTREAM_URL must"),
    ({**UPSTREAM, "upstream_url": "https://u:p@axis.example/vxp", "upstream_secret": SECRET}, "credentials"),
    ({**UPSTREAM, "upstream_url": "https://axis.example/vxp?x=1", "upstream_secret": SECRET}, "query"),
    ({**UPSTREAM, "upstream_url": "http://[::1/vxp", "upstream_secret": SECRET}, "GATEWAY_UPSTREAM_URL must"),
])
def test_an_upstream_half_configured_is_refused(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as invalid:
        Settings(**given)
    assert not leaks(str(invalid.value))


@pytest.mark.parametrize("name", ["upstream_poll_seconds", "upstream_connect_timeout_seconds",
                                  "upstream_timeout_seconds"])
def test_upstream_intervals_are_positive(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: 0})


def test_empty_variables_are_no_upstream_settings() -> None:
    settings = Settings(upstream_url="", upstream_system_id=" ", upstream_secret="", upstream_secret_file="")
    assert (settings.upstream_url, settings.upstream_secret, settings.upstream_secret_file) == (None, None, None)


def test_production_refuses_a_placeholder_upstream_secret() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", **UPSTREAM, upstream_secret="changeme")
    assert Settings(environment="development", **UPSTREAM, upstream_secret="changeme").upstream_secret is not None


async def test_the_client_from_settings_signs_with_the_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "upstream.secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    settings = Settings(**UPSTREAM, upstream_secret_file=secret_file, upstream_timeout_seconds=7)
    assert load_secret(settings).get_secret_value() == SECRET  # the file's line break is not the secret's
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(count=0)

    async with UpstreamClient.from_settings(settings, transport=httpx.MockTransport(handler)) as client:
        assert (client.base_url, client.system_id) == ("https://axis.example/vxp", SYSTEM)
        assert await client.count_received() == 0
    assert str(seen[0].url) == "https://axis.example/vxp/countReceiveEdoc"
    authenticated(seen[0], SECRET)

    from_env = Settings(**UPSTREAM, upstream_secret=SECRET)
    assert load_secret(from_env).get_secret_value() == SECRET
    with pytest.raises(ValueError, match="no upstream"):
        UpstreamClient.from_settings(Settings())


@pytest.mark.parametrize(("content", "message"), [(None, "cannot be read"), ("\n", "is empty"),
                                                  (b"\xff\xfe", "not UTF-8")])
def test_an_unreadable_secret_file_is_refused_by_name(tmp_path: Path, content: str | bytes | None,
                                                      message: str) -> None:
    secret_file = tmp_path / "upstream.secret"
    if isinstance(content, bytes):
        secret_file.write_bytes(content)
    elif content is not None:
        secret_file.write_text(content)
    settings = Settings(**UPSTREAM, upstream_secret_file=secret_file)
    with pytest.raises(ValueError, match=f"GATEWAY_UPSTREAM_SECRET_FILE .* {message}"):
        load_secret(settings)


def test_the_client_refuses_a_bad_base_url_system_id_or_empty_secret() -> None:
    for args, message in ((("axis.example/vxp", SYSTEM, SECRET), "base URL"),
                          (("https://axis.example/vxp", "a b", SECRET), "system id"),
                          (("https://axis.example/vxp", SYSTEM, SecretStr("")), "secret")):
        with pytest.raises(ValueError, match=message):
            UpstreamClient(*args)
