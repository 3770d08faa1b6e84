"""The SDK-like test client (``tests/vxp_sdk.py``) sends what the real axis SDK sends, quirks included.

A unit test of the test client: its requests are caught by an ``httpx.MockTransport`` and checked with the
gateway's own protocol core, and, where ``../shared/vxp/captured`` is present, against the requests the
real SDK sent (skipped without them, except under ``CI=true``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from gateway.vxp import errors
from gateway.vxp.protocol import (
    PREFIX,
    VIETNAM,
    SignedRequest,
    answer,
    parse_request,
    parse_timestamp,
    require_param,
    strip_trailing_crlf,
    unpadded_sha256_hex,
    verify_hash_file,
    verify_hmac,
)
from real_processes import shared_dir
from vxp_sdk import CAPTURE_SECRET, CAPTURE_SYSTEM, Capture, SdkAnswer, VxpSdk, parse_capture, request_headers

# tests/vxp/this.py → [0] vxp, [1] tests, [2] the repository, [3] its parent, which holds shared/
BASE = "http://vxp.test/vxp"
SYSTEM = "sys.test.01"
SECRET = "another-test-secret"
NOW = datetime(2025, 3, 4, 5, 6, 7, 89_000, tzinfo=VIETNAM)
EDXML = "<edXML><Subject>Văn bản thử</Subject></edXML>\n".encode()


def _data_with_a_low_digest_byte() -> bytes:
    for i in range(1000):
        data = EDXML + str(i).encode()
        if any(b < 0x10 for b in hashlib.sha256(data).digest()):
            return data
    raise AssertionError("unreachable")


Responder = Callable[[httpx.Request], httpx.Response]


def _default_answer(request: httpx.Request) -> httpx.Response:
    operation = request.url.path.rsplit("/", 1)[-1]
    if operation == "getEdoc":
        return httpx.Response(200, content=answer(ok=True, data=base64.b64encode(EDXML).decode("ascii")))
    if operation == "downloadEdoc":
        return httpx.Response(200, content=EDXML)
    if operation == "sendEdoc":
        return httpx.Response(200, content=answer(ok=True, DocId="doc-1"))
    return httpx.Response(200, content=answer(ok=True, data=[]))


@dataclass
class Recorder:
    responder: Responder = _default_answer
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.responder(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def http(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        yield client


@pytest.fixture
def sdk(http: httpx.AsyncClient) -> VxpSdk:
    return VxpSdk(http, BASE, SYSTEM, SECRET, seed=1, now=NOW)


def _verified(request: httpx.Request, secret: str = SECRET) -> SignedRequest:
    signed = parse_request(request_headers(request))
    verify_hmac(signed, secret)
    return signed


def _one(request: httpx.Request, name: str) -> str:
    values = request.headers.get_list(name)
    assert len(values) == 1, (name, values)
    return values[0]


async def _a_whole_session(sdk: VxpSdk) -> None:
    await sdk.send_edoc(_data_with_a_low_digest_byte(), "000.00.00.G22")
    await sdk.send_edoc(b"<edXML>status</edXML>", "000.00.00.G22", messagetype="status")
    await sdk.get_received_edoc_list("edoc")
    await sdk.get_edoc("doc-1")
    await sdk.download_edoc("doc-1")
    await sdk.update_status("doc-1", "done")
    await sdk.update_status("doc-1", "fail", description="khong doc duoc")
    await sdk.get_sent_edoc_list("doc-1")
    await sdk.count_receive_edoc()
    await sdk.count_receive_status()
    await sdk.get_agencies_list()
    await sdk.get_agencies_list_qd20(1)
    await sdk.get_synchronize_unit()
    await sdk.register_agency({"id": "", "pcode": "000.00.00.H41", "code": "001.00.41.H41", "name": "Đơn vị thử"})
    await sdk.delete_agency("001.00.41.H41")


async def test_every_call_of_a_session_verifies_with_the_protocol_core(sdk: VxpSdk, recorder: Recorder) -> None:
    await _a_whole_session(sdk)
    assert [r.url.path.rsplit("/", 1)[-1] for r in recorder.requests] == [
        "sendEdoc", "sendEdoc", "getReceivedEdocList", "getEdoc", "downloadEdoc", "updateStatus", "updateStatus",
        "getSentEdocList", "countReceiveEdoc", "countReceiveStatus", "getAgenciesList", "getAgenciesListQD20",
        "getSynchronizeUnit", "registerAgency", "deleteAgency",
    ]  # fmt: skip
    for request in recorder.requests:
        signed = _verified(request)
        assert signed.system_id == SYSTEM
        assert request.method == ("GET" if request.url.path.endswith("/downloadEdoc") else "POST")
        assert _one(request, "User-Agent") == "JAVASDKAgent/1.0.0 XRoad/VPCP"
        assert _one(request, PREFIX + "version") == "3.0.201608"
        with pytest.raises(errors.VxpHmacInvalid):
            verify_hmac(signed, SECRET + "!")


async def test_the_timestamp_is_fixed_when_the_object_is_made(sdk: VxpSdk, recorder: Recorder) -> None:
    await _a_whole_session(sdk)
    stamps = {_one(request, PREFIX + "timestamp") for request in recorder.requests}
    assert stamps == {"04032025T050607+0089"}
    assert parse_timestamp(stamps.pop()) == NOW


async def test_keys_of_earlier_calls_ride_along(sdk: VxpSdk, recorder: Recorder) -> None:
    await sdk.get_received_edoc_list("status")
    await sdk.get_edoc("doc-7")
    await sdk.update_status("doc-7", "done")
    await sdk.count_receive_edoc()
    update = _verified(recorder.requests[2])
    assert update.signed["filePath"] == "vxp-store"  # from getEdoc
    assert update.signed["messagetype"] == "status"  # from getReceivedEdocList
    count = _verified(recorder.last)
    assert {"docId", "docid", "status", "filePath", "servicetype", "messagetype"} <= set(count.signed)


async def test_update_status_sends_doc_id_and_docid(sdk: VxpSdk, recorder: Recorder) -> None:
    await sdk.update_status("doc-9", "done")
    request = _verified(recorder.last)
    assert request.signed["docId"] == request.signed["docid"] == "doc-9"
    assert recorder.last.headers.get_list(PREFIX + "docId") == ["doc-9", "doc-9"]
    assert require_param(request, "docId", "docid", unanimous=True) == "doc-9"
    assert require_param(request, "status") == "done"


async def test_an_update_status_description_is_signed_and_then_leaks(sdk: VxpSdk, recorder: Recorder) -> None:
    await sdk.update_status("doc-9", "fail", description="loi")
    assert _verified(recorder.last).signed["description"] == "loi"
    await sdk.get_agencies_list()
    assert _verified(recorder.last).signed["description"] == "loi"


async def test_send_edoc_hash_file_is_unpadded_and_the_body_ends_in_crlf(sdk: VxpSdk, recorder: Recorder) -> None:
    data = _data_with_a_low_digest_byte()
    await sdk.send_edoc(data, "000.00.00.G22")
    request = recorder.last
    signed = _verified(request)
    hash_file = require_param(signed, "hash-file")
    assert hash_file == unpadded_sha256_hex(data)
    assert len(hash_file) < 64
    assert hash_file != hashlib.sha256(data).hexdigest()
    assert request.content == data + b"\r\n"
    verify_hash_file(signed, strip_trailing_crlf(request.content))
    assert _one(request, "Content-Type") == "application/octet-stream"
    assert signed.signed["Content-Type"] == "application/octet-stream"
    assert "Expect" not in request.headers
    assert require_param(signed, "from") == "000.00.00.G22"
    assert require_param(signed, "messagetype") == "edoc"
    assert require_param(signed, "servicetype") == "eDoc"


async def test_calls_with_a_json_body_send_expect_100_continue(sdk: VxpSdk, recorder: Recorder) -> None:
    await _a_whole_session(sdk)
    for request in recorder.requests:
        operation = request.url.path.rsplit("/", 1)[-1]
        if request.content in (b"{}",) or operation == "registerAgency":
            assert _one(request, "Expect") == "100-continue", operation
            assert _one(request, "Content-Type") == "application/json"
        else:
            assert "Expect" not in request.headers, operation
        if operation not in {"sendEdoc", "getEdoc", "updateStatus", "countReceiveEdoc", "countReceiveStatus",
                             "registerAgency", "deleteAgency"}:
            assert request.content == b"", operation


async def test_the_sign_header_key_order_is_shuffled_by_the_seed(http: httpx.AsyncClient, recorder: Recorder) -> None:
    orders = set()
    for seed in range(6):
        sdk = VxpSdk(http, BASE, SYSTEM, SECRET, seed=seed, now=NOW)
        await sdk.update_status("doc-1", "done")
        signed = _verified(recorder.last)
        orders.add(signed.sign_header_key)
        assert list(json.loads(signed.sign_header)) == [PREFIX + name for name in signed.sign_header_key]
    assert len(orders) > 1


async def test_the_http_status_is_ignored_and_the_body_is_the_answer(sdk: VxpSdk, recorder: Recorder) -> None:
    recorder.responder = lambda request: httpx.Response(500, content=answer(ok=True, count=4))
    got = await sdk.count_receive_edoc()
    assert got.response.status_code == 500
    assert got.json == {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "count": 4}
    recorder.responder = lambda request: httpx.Response(200, text="<html>busy</html>")
    assert (await sdk.count_receive_edoc()).json is None


async def test_send_edoc_reads_the_answer_as_us_ascii(sdk: VxpSdk, recorder: Recorder) -> None:
    desc = "Chữ ký không hợp lệ"
    raw = json.dumps({"status": "FAIL", "ErrorCode": "x", "ErrorDesc": desc, "DocId": ""}, ensure_ascii=False)
    recorder.responder = lambda request: httpx.Response(200, content=raw.encode("utf-8"))
    mangled = await sdk.send_edoc(EDXML, "000.00.00.G22")
    assert mangled.json is not None
    assert mangled.json["ErrorDesc"] != desc  # what an unescaped answer does to the SDK
    assert "\ufffd" in mangled.json["ErrorDesc"]
    recorder.responder = lambda request: httpx.Response(
        200, content=answer(ok=False, error_code="x", error_desc=desc, DocId="")
    )
    assert (await sdk.send_edoc(EDXML, "000.00.00.G22")).json == {
        "status": "FAIL", "ErrorCode": "x", "ErrorDesc": desc, "DocId": ""
    }


async def test_get_edoc_decodes_the_data_and_download_edoc_is_a_get(sdk: VxpSdk, recorder: Recorder) -> None:
    got: SdkAnswer = await sdk.get_edoc("doc-1")
    assert got.data == EDXML
    assert got.json is not None
    assert got.json["status"] == "OK"
    signed = _verified(recorder.last)
    assert (signed.signed["docId"], signed.signed["filePath"]) == ("doc-1", "vxp-store")
    downloaded = await sdk.download_edoc("doc-2")
    assert downloaded.data == EDXML
    assert recorder.last.method == "GET"
    assert recorder.last.content == b""
    assert _verified(recorder.last).signed["docId"] == "doc-2"


async def test_get_edoc_gives_no_data_on_a_failure(sdk: VxpSdk, recorder: Recorder) -> None:
    recorder.responder = lambda request: httpx.Response(
        200, content=answer(ok=False, error_code="not-found", error_desc="no", data="PGVkWE1MLz4=")
    )
    got = await sdk.get_edoc("doc-1")
    assert got.data is None


async def test_register_and_delete_agency(sdk: VxpSdk, recorder: Recorder) -> None:
    await sdk.register_agency({"id": "", "code": "001.00.41.H41", "name": "Đơn vị thử"})
    register = recorder.last
    assert json.loads(register.content.decode("utf-8"))["name"] == "Đơn vị thử"
    assert "Đơn".encode() in register.content  # raw UTF-8, outside the HMAC
    assert {name.lower() for name in _verified(register).signed} == {"systemid", "timestamp", "content-type"}
    await sdk.delete_agency("001.00.41.H41")
    assert require_param(_verified(recorder.last), "AgencyCode") == "001.00.41.H41"


async def test_get_agencies_list_qd20_sends_the_level_as_text(sdk: VxpSdk, recorder: Recorder) -> None:
    await sdk.get_agencies_list_qd20(2)
    assert require_param(_verified(recorder.last), "level") == "2"


# ------------------------------------------------------------------- against the real SDK's requests

#: capture of a fresh SDK object → the same call made on a fresh test client
FRESH_CALLS: dict[str, Callable[[VxpSdk], Awaitable[SdkAnswer]]] = {
    "01-sendEdoc.txt": lambda sdk: sdk.send_edoc(EDXML, "000.00.00.G22"),
    "03-getReceivedEdocList.txt": lambda sdk: sdk.get_received_edoc_list("edoc"),
    "07-getReceivedEdocList.txt": lambda sdk: sdk.get_received_edoc_list("status"),
    "08-getSentEdocList.txt": lambda sdk: sdk.get_sent_edoc_list("cap-doc-0001"),
    "09-countReceiveEdoc.txt": lambda sdk: sdk.count_receive_edoc(),
    "10-countReceiveStatus.txt": lambda sdk: sdk.count_receive_status(),
    "11-downloadEdoc.txt": lambda sdk: sdk.download_edoc("cap-doc-0001"),
    "12-getAgenciesList.txt": lambda sdk: sdk.get_agencies_list(),
    "13-getAgenciesListQD20.txt": lambda sdk: sdk.get_agencies_list_qd20(1),
    "14-getSynchronizeUnit.txt": lambda sdk: sdk.get_synchronize_unit(),
    "15-registerAgency.txt": lambda sdk: sdk.register_agency({"id": "", "code": "001.00.41.H41"}),
    "16-deleteAgency.txt": lambda sdk: sdk.delete_agency("001.00.41.H41"),
}
SDK_HEADERS = ("User-Agent", PREFIX + "version", "Content-Type", "Expect")


@pytest.fixture(scope="module")
def captured() -> Path:
    return shared_dir("vxp", "captured")


def _names(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for n, value in headers if n.lower() == name.lower()]


@pytest.mark.parametrize("name", sorted(FRESH_CALLS))
async def test_a_fresh_client_signs_what_a_fresh_sdk_signs(
    captured: Path, name: str, http: httpx.AsyncClient, recorder: Recorder
) -> None:
    capture: Capture = parse_capture((captured / name).read_text(encoding="utf-8"))
    sdk = VxpSdk(http, "http://127.0.0.1:28747", CAPTURE_SYSTEM, CAPTURE_SECRET, now=NOW)
    await FRESH_CALLS[name](sdk)
    request = recorder.last
    ours = _verified(request, CAPTURE_SECRET)
    theirs = parse_request(capture.headers)
    verify_hmac(theirs, CAPTURE_SECRET)
    assert request.method == capture.method
    assert request.url.path == "/" + capture.operation
    assert set(ours.sign_header_key) == set(theirs.sign_header_key)
    for header in SDK_HEADERS:
        assert request.headers.get_list(header) == _names(capture.headers, header), header
