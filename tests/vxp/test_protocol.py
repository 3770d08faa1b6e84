"""The VXP protocol core (``gateway.vxp.protocol``): reading, verifying and answering the axis SDK's calls.

Two sources of requests: the 16 requests the real Java SDK sent to a recording server
(``../shared/vxp/captured``, read in place, never copied; skipped without them, except under ``CI=true``),
and requests these tests build byte by byte, so that every quirk the captures show is also tested in a
clone without ``../shared``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gateway.problems import GatewayError
from gateway.vxp import errors
from gateway.vxp.protocol import (
    OPERATIONS,
    PREFIX,
    VIETNAM,
    SignedRequest,
    answer,
    digest_matches,
    failure,
    format_time,
    hash_file_matches,
    param,
    parse_request,
    parse_timestamp,
    require_param,
    resolve_operation,
    strip_trailing_crlf,
    unpadded_hex,
    unpadded_sha256_hex,
    verify_hash_file,
    verify_hmac,
)
from real_processes import shared_dir
from vxp_sdk import CAPTURE_SECRET, CAPTURE_SYSTEM, CAPTURES, Capture, parse_capture

# tests/vxp/this.py → [0] vxp, [1] tests, [2] the repository, [3] its parent, which holds shared/
SECRET = "a-test-secret-for-built-requests"


# ------------------------------------------------------------------------------------------- captures


@pytest.fixture(scope="module")
def captured() -> Path:
    return shared_dir("vxp", "captured")


def _capture(captured: Path, name: str) -> Capture:
    return parse_capture((captured / name).read_text(encoding="utf-8"))


def _replace(headers: Sequence[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    assert any(n.lower() == name.lower() for n, _ in headers), name
    return [(n, value if n.lower() == name.lower() else v) for n, v in headers]


def _value(headers: Sequence[tuple[str, str]], name: str) -> str:
    return next(v for n, v in headers if n.lower() == name.lower())


def _change_one_char(text: str, at: int) -> str:
    replacement = "0" if text[at] != "0" else "1"
    return text[:at] + replacement + text[at + 1 :]


def test_the_folder_holds_the_sixteen_captures(captured: Path) -> None:
    assert sorted(p.name for p in captured.glob("*.txt")) == CAPTURES


@pytest.mark.parametrize("name", CAPTURES)
def test_every_captured_sdk_request_verifies_with_the_capture_secret(captured: Path, name: str) -> None:
    capture = _capture(captured, name)
    request = parse_request(capture.headers)
    verify_hmac(request, CAPTURE_SECRET)
    assert request.system_id == CAPTURE_SYSTEM
    assert capture.operation in OPERATIONS
    # the recording server agreed
    assert capture.note("HMAC-SHA256(secret, XroadVnpt-sign-header) == XroadVnpt-hash-header:") == "True"


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_request_with_another_secret_is_refused(captured: Path, name: str) -> None:
    request = parse_request(_capture(captured, name).headers)
    with pytest.raises(errors.VxpHmacInvalid, match="hash-header does not verify"):
        verify_hmac(request, CAPTURE_SECRET + "x")


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_request_with_one_byte_of_the_sign_header_changed_is_refused(captured: Path, name: str) -> None:
    headers = _capture(captured, name).headers
    sign_header = _value(headers, PREFIX + "sign-header")
    # a character of the system id's value: the JSON still parses, only the HMAC can tell
    at = sign_header.index(CAPTURE_SYSTEM) + 4
    request = parse_request(_replace(headers, PREFIX + "sign-header", _change_one_char(sign_header, at)))
    with pytest.raises(errors.VxpHmacInvalid, match="hash-header does not verify"):
        verify_hmac(request, CAPTURE_SECRET)


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_request_with_one_byte_of_the_hash_header_changed_is_refused(captured: Path, name: str) -> None:
    headers = _capture(captured, name).headers
    hash_header = _value(headers, PREFIX + "hash-header")
    for at in (0, 31, 63):
        request = parse_request(_replace(headers, PREFIX + "hash-header", _change_one_char(hash_header, at)))
        with pytest.raises(errors.VxpHmacInvalid, match="hash-header does not verify"):
            verify_hmac(request, CAPTURE_SECRET)


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_request_with_a_signed_header_changed_is_refused(captured: Path, name: str) -> None:
    headers = _capture(captured, name).headers
    timestamp = _value(headers, PREFIX + "timestamp")
    request = parse_request(_replace(headers, PREFIX + "timestamp", _change_one_char(timestamp, 0)))
    with pytest.raises(errors.VxpHmacInvalid, match="signed header is missing or differs"):
        verify_hmac(request, CAPTURE_SECRET)


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_request_without_a_signed_header_is_refused(captured: Path, name: str) -> None:
    headers = [(n, v) for n, v in _capture(captured, name).headers if n.lower() != "xroadvnpt-content-type"]
    with pytest.raises(errors.VxpHmacInvalid, match="signed header is missing or differs"):
        verify_hmac(parse_request(headers), CAPTURE_SECRET)


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_request_whose_sign_header_key_leaves_out_a_name_is_refused(captured: Path, name: str) -> None:
    headers = _capture(captured, name).headers
    names = _value(headers, PREFIX + "sign-header-key").split(";")
    request = parse_request(_replace(headers, PREFIX + "sign-header-key", ";".join(names[1:])))
    with pytest.raises(errors.VxpHmacInvalid, match="sign-header-key"):
        verify_hmac(request, CAPTURE_SECRET)


@pytest.mark.parametrize("name", ["01-sendEdoc.txt", "02-sendEdoc.txt"])
def test_captured_send_edoc_hash_file_is_the_unpadded_sha256_of_the_body_minus_crlf(captured: Path, name: str) -> None:
    capture = _capture(captured, name)
    request = parse_request(capture.headers)
    verify_hmac(request, CAPTURE_SECRET)
    stated = capture.note("body minus trailing CRLF sha256 =")
    assert stated is not None
    assert len(stated) == 64
    hash_file = require_param(request, "hash-file")
    assert hash_file != stated  # the SDK's hex lost zeros ...
    assert len(hash_file) < 64
    assert hash_file == unpadded_hex(bytes.fromhex(stated))  # ... one per byte below 0x10
    assert digest_matches(bytes.fromhex(stated), hash_file)
    assert digest_matches(bytes.fromhex(stated), stated.upper())
    assert not digest_matches(hashlib.sha256(b"other").digest(), hash_file)
    assert capture.note("hash-file equals sha256 hex:") == "False; equals unpadded per-byte hex: True"
    assert _value(capture.headers, "Content-Type") == "application/octet-stream"
    assert require_param(request, "Content-Type") == "application/octet-stream"


def test_captured_timestamps_read_as_vietnam_time_with_milliseconds(captured: Path) -> None:
    moments = {
        name: parse_timestamp(_value(_capture(captured, name).headers, PREFIX + "timestamp")) for name in CAPTURES
    }
    assert moments["01-sendEdoc.txt"] == datetime(2026, 11, 28, 23, 35, 28, 419_000, tzinfo=VIETNAM)
    assert moments["09-countReceiveEdoc.txt"] == datetime(2026, 11, 28, 23, 35, 29, 396_000, tzinfo=VIETNAM)
    assert all(moment is not None and moment.utcoffset() == timedelta(hours=7) for moment in moments.values())
    # one service object, one timestamp, however many calls (03 to 06)
    assert len({moments[name] for name in CAPTURES[2:6]}) == 1


def test_captured_update_status_carries_the_keys_of_the_get_edoc_before_it(captured: Path) -> None:
    request = parse_request(_capture(captured, "05-updateStatus.txt").headers)
    verify_hmac(request, CAPTURE_SECRET)
    assert request.signed["filePath"] == "vxp-store"  # leaked from getEdoc
    assert request.signed["messagetype"] == "edoc"  # leaked from getReceivedEdocList
    assert require_param(request, "docId", "docid", unanimous=True) == "cap-doc-0001"
    assert require_param(request, "status") == "done"


def test_captured_update_status_with_docid_and_docid_reads_one_document(captured: Path) -> None:
    request = parse_request(_capture(captured, "06-updateStatus.txt").headers)
    verify_hmac(request, CAPTURE_SECRET)
    assert {"docId", "docid"} <= set(request.signed)
    assert len(request.headers.get_all(PREFIX + "docId")) == 2  # one name, case-insensitively, twice
    assert require_param(request, "docId", "docid", unanimous=True) == "cap-doc-0001"


def test_captured_register_agency_body_is_outside_the_hmac(captured: Path) -> None:
    request = parse_request(_capture(captured, "15-registerAgency.txt").headers)
    verify_hmac(request, CAPTURE_SECRET)
    assert {name.lower() for name in request.signed} == {"systemid", "timestamp", "content-type"}
    with pytest.raises(errors.VxpOperationNotSupported):
        resolve_operation("registerAgency")


# ------------------------------------------------------------------------------------- built requests


def sign(
    params: Mapping[str, str],
    secret: str = SECRET,
    *,
    order: Sequence[str] | None = None,
    sign_header: str | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The headers of a call signed the way the SDK signs: every key of ``params`` as a header and in
    the signed JSON (in ``order``), sign-header-key, hash-header over the sign-header string."""
    keys = list(order or params)
    text = sign_header
    if text is None:
        text = json.dumps({PREFIX + k: params[k] for k in keys}, separators=(",", ":"))
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()
    return [
        *((PREFIX + k, params[k]) for k in keys),
        (PREFIX + "sign-header-key", ";".join(keys)),
        (PREFIX + "sign-header", text),
        (PREFIX + "hash-header", digest),
        *extra,
    ]


BASE = {"systemid": "sys.01", "timestamp": "01022025T080910+0042", "Content-Type": "application/json"}


def _verified(headers: Sequence[tuple[str, str]], secret: str = SECRET) -> SignedRequest:
    request = parse_request(headers)
    verify_hmac(request, secret)
    return request


def test_built_request_verifies_in_any_key_order() -> None:
    params = {**BASE, "docId": "d-1", "filePath": "x", "status": "done"}
    shuffler = random.Random(7)
    for _ in range(5):
        order = list(params)
        shuffler.shuffle(order)
        request = _verified(sign(params, order=order))
        assert dict(request.signed) == params


def test_sign_header_is_verified_as_received_not_rebuilt() -> None:
    # the same object written with spaces and \\u escapes: another string, its own HMAC, still good
    params = {**BASE, "docId": "a=b"}
    text = '{ "XroadVnpt-systemid" : "sys.01", "XroadVnpt-timestamp": "01022025T080910+0042", ' \
        '"XroadVnpt-Content-Type": "application/json", "XroadVnpt-docId": "a\\u003db" }'
    request = _verified(sign(params, sign_header=text))
    assert request.signed["docId"] == "a=b"
    assert request.sign_header == text


def test_header_name_case_variants_verify() -> None:
    headers = [(name.lower(), value) for name, value in sign({**BASE, "docId": "d-1"})]
    request = _verified(headers)
    assert request.system_id == "sys.01"
    upper = [(name.upper(), value) for name, value in sign({**BASE, "docId": "d-1"})]
    assert _verified(upper).headers["XroadVnpt-DocId"] == "d-1"


def test_signed_prefix_in_any_case_and_sign_header_key_with_prefix_verify() -> None:
    params = {**BASE, "docId": "d-1"}
    text = json.dumps({"xroadvnpt-" + k: v for k, v in params.items()})
    headers = sign(params, sign_header=text)
    headers = _replace(headers, PREFIX + "sign-header-key", ";".join(PREFIX + k.upper() for k in params))
    assert _verified(headers).signed["docId"] == "d-1"


def test_repeated_header_verifies_when_one_value_is_the_signed_one() -> None:
    headers = sign({**BASE, "docId": "d-1"}, extra=[(PREFIX + "docId", "d-0")])
    request = _verified(headers)
    assert request.headers.get_all(PREFIX + "docid") == ("d-1", "d-0")
    assert require_param(request, "docId") == "d-1"


def test_unknown_and_unsigned_headers_are_ignored_and_never_read() -> None:
    headers = sign(BASE, extra=[(PREFIX + "docId", "steer-me"), (PREFIX + "leftover", "x"), ("X-Other", "y")])
    request = _verified(headers)
    assert request.headers[PREFIX + "docId"] == "steer-me"
    assert param(request, "docId", "docid") is None
    with pytest.raises(errors.VxpParameterMissing) as caught:
        require_param(request, "docId", "docid")
    assert caught.value.extensions == {"parameter": "docId"}
    assert caught.value.status == 422


@pytest.mark.parametrize("missing", ["systemid", "sign-header", "sign-header-key", "hash-header"])
def test_a_missing_credential_header_is_refused(missing: str) -> None:
    headers = [(n, v) for n, v in sign(BASE) if n.lower() != (PREFIX + missing).lower()]
    with pytest.raises(errors.VxpSignatureHeadersMissing) as caught:
        parse_request(headers)
    assert caught.value.status == 401
    assert missing in caught.value.detail


@pytest.mark.parametrize("empty", ["systemid", "sign-header", "sign-header-key", "hash-header"])
def test_an_empty_credential_header_is_refused(empty: str) -> None:
    with pytest.raises(errors.VxpSignatureHeadersMissing):
        parse_request(_replace(sign(BASE), PREFIX + empty, ""))


def test_no_headers_at_all_is_a_missing_credential() -> None:
    with pytest.raises(errors.VxpSignatureHeadersMissing):
        parse_request([])


def test_a_credential_repeated_with_another_value_is_refused() -> None:
    headers = sign(BASE, extra=[(PREFIX + "SystemId", "sys.02")])
    with pytest.raises(errors.VxpHmacInvalid, match="twice"):
        parse_request(headers)
    # the same value twice is the same credential
    assert parse_request(sign(BASE, extra=[(PREFIX + "SystemId", "sys.01")])).system_id == "sys.01"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '["XroadVnpt-systemid", "sys.01"]',
        '"XroadVnpt-systemid"',
        '{"XroadVnpt-systemid": 1}',
        '{"XroadVnpt-systemid": {"nested": "sys.01"}}',
        '{"XroadVnpt-systemid": null}',
        '{"systemid": "sys.01"}',
        '{"XroadVnpt-": "sys.01"}',
        '{"XroadVnpt-systemid": "sys.01", "XroadVnpt-systemid": "sys.02"}',
        "[" * 5000 + "]" * 5000,
    ],
    ids=["text", "array", "string", "number", "object", "null", "no-prefix", "empty-key", "duplicate", "deep"],
)
def test_a_sign_header_that_is_not_a_json_object_of_strings_is_refused(text: str) -> None:
    # correctly MACed: the shape alone refuses it
    with pytest.raises(errors.VxpHmacInvalid):
        parse_request(sign(BASE, sign_header=text))


def test_hash_header_in_upper_case_verifies() -> None:
    headers = sign(BASE)
    digest = _value(headers, PREFIX + "hash-header")
    _verified(_replace(headers, PREFIX + "hash-header", digest.upper()))


@pytest.mark.parametrize("value", ["zz" * 32, "ab" * 31, "ab" * 33, "é" * 64, " " + "ab" * 32])
def test_a_hash_header_that_is_not_64_hex_is_refused(value: str) -> None:
    request = parse_request(_replace(sign(BASE), PREFIX + "hash-header", value))
    with pytest.raises(errors.VxpHmacInvalid, match="not a hex"):
        verify_hmac(request, SECRET)


def test_hmac_is_keyed_with_the_secret_as_utf8_text() -> None:
    secret = "mật-khẩu"
    _verified(sign(BASE, secret), secret)
    with pytest.raises(errors.VxpHmacInvalid):
        verify_hmac(parse_request(sign(BASE, secret)), secret.encode("utf-8").decode("latin-1"))


def test_an_empty_secret_is_never_used() -> None:
    with pytest.raises(ValueError, match="never empty"):
        verify_hmac(parse_request(sign(BASE, "x")), "")


def test_a_signed_key_absent_as_a_header_is_refused() -> None:
    headers = [(n, v) for n, v in sign({**BASE, "docId": "d-1"}) if n != PREFIX + "docId"]
    with pytest.raises(errors.VxpHmacInvalid, match="signed header is missing or differs"):
        verify_hmac(parse_request(headers), SECRET)


def test_a_signed_value_that_differs_from_its_header_is_refused() -> None:
    headers = _replace(sign({**BASE, "docId": "d-1"}), PREFIX + "docId", "d-2")
    with pytest.raises(errors.VxpHmacInvalid, match="signed header is missing or differs"):
        verify_hmac(parse_request(headers), SECRET)


def test_sign_header_key_naming_more_than_was_signed_is_refused() -> None:
    headers = sign(BASE)
    listed = _value(headers, PREFIX + "sign-header-key")
    headers = _replace(headers, PREFIX + "sign-header-key", listed + ";docId")
    with pytest.raises(errors.VxpHmacInvalid, match="sign-header-key"):
        verify_hmac(parse_request(headers), SECRET)


def test_sign_header_key_compares_names_case_insensitively_as_a_set() -> None:
    headers = sign({**BASE, "docId": "d-1", "docid": "d-1"})
    _verified(_replace(headers, PREFIX + "sign-header-key", "CONTENT-TYPE;docid;SystemId;timestamp;docId;docid"))


def test_a_signature_that_does_not_sign_the_system_id_is_refused() -> None:
    params = {"timestamp": "01022025T080910+0042", "docId": "d-1"}
    headers = sign(params, extra=[(PREFIX + "systemid", "sys.01")])
    with pytest.raises(errors.VxpHmacInvalid, match="systemid"):
        verify_hmac(parse_request(headers), SECRET)


def test_the_signed_system_id_must_be_the_one_that_picks_the_secret() -> None:
    headers = _replace(sign(BASE), PREFIX + "systemid", "sys.02")
    request = parse_request(headers)
    assert request.system_id == "sys.02"
    with pytest.raises(errors.VxpHmacInvalid, match="signed header is missing or differs"):
        verify_hmac(request, SECRET)


# ------------------------------------------------------------------------------------------ parameters


def test_param_prefers_the_exact_spelling_then_any_case() -> None:
    request = _verified(sign({**BASE, "docid": "d-lower"}))
    assert param(request, "docId", "docid") == "d-lower"
    assert param(request, "DOCID") == "d-lower"
    assert param(request, "missing") is None

    both = _verified(sign({**BASE, "docId": "fresh", "docid": "stale"}))
    assert param(both, "docId", "docid") == "fresh"
    assert param(both, "docid", "docId") == "stale"


def test_param_refuses_spellings_that_disagree_when_asked_for_unanimity() -> None:
    request = _verified(sign({**BASE, "docId": "fresh", "docid": "stale"}))
    with pytest.raises(errors.VxpParameterAmbiguous) as caught:
        param(request, "docId", "docid", unanimous=True)
    assert caught.value.extensions == {"parameter": "docId"}
    agreeing = _verified(sign({**BASE, "docId": "same", "docid": "same"}))
    assert require_param(agreeing, "docId", "docid", unanimous=True) == "same"


def test_param_refuses_case_variants_that_disagree_without_an_exact_match() -> None:
    request = _verified(sign({**BASE, "DocId": "one", "DOCID": "two"}))
    with pytest.raises(errors.VxpParameterAmbiguous):
        param(request, "docId")


def test_require_param_refuses_a_blank_value() -> None:
    request = _verified(sign({**BASE, "status": "  "}))
    with pytest.raises(errors.VxpParameterMissing) as caught:
        require_param(request, "status")
    assert caught.value.extensions == {"parameter": "status"}


def test_param_reads_the_signed_value_when_a_header_repeats() -> None:
    headers = sign({**BASE, "docId": "signed"}, extra=[(PREFIX + "DOCID", "unsigned")])
    assert require_param(_verified(headers), "docId", "docid") == "signed"


# ----------------------------------------------------------------------------------------------- bodies


def _data_with_a_low_digest_byte() -> bytes:
    for i in range(1000):
        data = f"<edXML>{i}</edXML>".encode()
        if any(b < 0x10 for b in hashlib.sha256(data).digest()):
            return data
    raise AssertionError("unreachable")


def test_unpadded_sha256_hex_drops_the_zero_of_bytes_below_0x10() -> None:
    data = _data_with_a_low_digest_byte()
    digest = hashlib.sha256(data).digest()
    assert unpadded_sha256_hex(data) == "".join(format(b, "x") for b in digest)
    assert len(unpadded_sha256_hex(data)) < 64
    assert unpadded_hex(bytes([0x00, 0x0A, 0x10, 0xFF])) == "0a10ff"


def test_hash_file_matches_the_unpadded_and_the_standard_form_in_any_case() -> None:
    data = _data_with_a_low_digest_byte()
    standard = hashlib.sha256(data).hexdigest()
    for value in (unpadded_sha256_hex(data), unpadded_sha256_hex(data).upper(), standard, standard.upper()):
        assert hash_file_matches(data, value)
    assert not hash_file_matches(data + b"x", standard)
    assert not hash_file_matches(data, "")
    assert not hash_file_matches(data, standard[:-1])


def test_the_trailing_crlf_is_not_hashed() -> None:
    data = _data_with_a_low_digest_byte()
    body = data + b"\r\n"
    assert strip_trailing_crlf(body) == data
    assert hash_file_matches(strip_trailing_crlf(body), unpadded_sha256_hex(data))
    assert not hash_file_matches(body, unpadded_sha256_hex(data))


@pytest.mark.parametrize(
    ("body", "stripped"),
    [
        (b"abc\r\n\r\n", b"abc\r\n"),
        (b"abc\n", b"abc\n"),
        (b"abc\r", b"abc\r"),
        (b"\r\n", b""),
        (b"", b""),
        (b"abc", b"abc"),
    ],
)
def test_strip_trailing_crlf_removes_exactly_one_crlf(body: bytes, stripped: bytes) -> None:
    assert strip_trailing_crlf(body) == stripped


def test_verify_hash_file_binds_the_body_to_the_signed_hash_file() -> None:
    data = _data_with_a_low_digest_byte()
    request = _verified(sign({**BASE, "hash-file": unpadded_sha256_hex(data)}))
    verify_hash_file(request, strip_trailing_crlf(data + b"\r\n"))
    with pytest.raises(errors.VxpHashFileMismatch) as caught:
        verify_hash_file(request, data + b"tampered")
    assert caught.value.status == 422


def test_verify_hash_file_reads_only_a_signed_hash_file() -> None:
    data = b"<edXML/>"
    request = _verified(sign(BASE, extra=[(PREFIX + "hash-file", unpadded_sha256_hex(data))]))
    with pytest.raises(errors.VxpParameterMissing) as caught:
        verify_hash_file(request, data)
    assert caught.value.extensions == {"parameter": "hash-file"}


# ------------------------------------------------------------------------------------------------ times


def test_parse_timestamp_reads_milliseconds_not_a_zone() -> None:
    moment = parse_timestamp("05012025T071502+0007")
    assert moment == datetime(2025, 1, 5, 7, 15, 2, 7_000, tzinfo=VIETNAM)
    assert moment is not None
    assert moment.astimezone(UTC) == datetime(2025, 1, 5, 0, 15, 2, 7_000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["", "garbage", "30022025T071502+0007", "05012025T251502+0007", "05012025T071502+1000",
     "05012025T071502+07:00", "05012025 071502+0007", "2025-01-05T07:15:02+07:00", "05012025T071502"],
)
def test_parse_timestamp_gives_none_for_what_it_cannot_read(value: str) -> None:
    assert parse_timestamp(value) is None


def test_format_time_is_iso_8601_in_vietnam_time() -> None:
    assert format_time(datetime(2026, 11, 28, 16, 35, 28, 419_999, tzinfo=UTC)) == "2026-11-28T23:35:28.419+07:00"
    local = datetime(2026, 11, 28, 23, 35, 28, tzinfo=timezone(timedelta(hours=7)))
    assert format_time(local) == "2026-11-28T23:35:28.000+07:00"
    with pytest.raises(ValueError, match="aware"):
        format_time(datetime(2026, 11, 28, 23, 35, 28))


# ---------------------------------------------------------------------------------------------- answers

VIETNAMESE = "Đã đến: Ủy ban nhân dân tỉnh Nghệ An — văn bản số 12/QĐ-UBND"


def test_answer_is_pure_ascii_and_round_trips_vietnamese_text() -> None:
    body = answer(ok=True, DocId="d-1", data=[{"docId": "d-1", "status_desc": VIETNAMESE, "count": 3}])
    assert body.isascii()
    assert "\\u0110" in body.decode("ascii")  # Đ escaped, not written raw
    parsed = json.loads(body.decode("ascii"))
    assert parsed == {
        "status": "OK",
        "ErrorCode": "0",
        "ErrorDesc": "",
        "DocId": "d-1",
        "data": [{"docId": "d-1", "status_desc": VIETNAMESE, "count": 3}],
    }
    assert list(parsed)[:3] == ["status", "ErrorCode", "ErrorDesc"]


def test_failure_names_the_problem_type_and_keeps_doc_id() -> None:
    error = errors.VxpHmacInvalid("chữ ký không hợp lệ")
    parsed = json.loads(failure(error, DocId="").decode("ascii"))
    assert parsed == {
        "status": "FAIL",
        "ErrorCode": "vxp-hmac-invalid",
        "ErrorDesc": "chữ ký không hợp lệ",
        "DocId": "",
    }
    assert failure(errors.VxpOperationUnknown()).isascii()
    assert json.loads(failure(errors.VxpOperationUnknown()))["ErrorDesc"] == errors.VxpOperationUnknown.title


def test_answer_refuses_to_contradict_itself() -> None:
    with pytest.raises(ValueError, match="override"):
        answer(ok=True, status="FAIL")
    with pytest.raises(ValueError, match="ErrorCode"):
        answer(ok=False)
    with pytest.raises(ValueError, match="ErrorCode"):
        answer(ok=True, error_code="vxp-hmac-invalid")


@pytest.mark.parametrize(
    "fields", [{"DocId": None}, {"data": [{"docId": "d", "notation": None}]}, {"count": float("nan")}]
)
def test_answer_refuses_null_and_nan_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"null|Out of range"):
        answer(ok=True, **fields)


# ------------------------------------------------------------------------------------------ operations


@pytest.mark.parametrize("name", ["sendEdoc", "getagencieslistqd20", "DOWNLOADEDOC", "updateStatus"])
def test_resolve_operation_names_the_operation(name: str) -> None:
    assert resolve_operation(name).lower() == name.lower()


@pytest.mark.parametrize("name", ["registerAgency", "deleteagency"])
def test_register_changes_are_not_offered(name: str) -> None:
    with pytest.raises(errors.VxpOperationNotSupported) as caught:
        resolve_operation(name)
    assert caught.value.status == 403


@pytest.mark.parametrize("name", ["", "getEdocs", "../getEdoc", "sendEdoc/"])
def test_unknown_operations_are_refused(name: str) -> None:
    with pytest.raises(errors.VxpOperationUnknown) as caught:
        resolve_operation(name)
    assert caught.value.status == 404
    assert name not in caught.value.detail or not name


# ---------------------------------------------------------------------------------------------- errors


def test_error_classes_have_their_status_and_stable_slug() -> None:
    table: dict[type[GatewayError], tuple[int, str]] = {
        errors.VxpAuthError: (401, "vxp-unauthenticated"),
        errors.VxpSignatureHeadersMissing: (401, "vxp-credentials-missing"),
        errors.VxpHmacInvalid: (401, "vxp-hmac-invalid"),
        errors.VxpSystemUnknown: (401, "vxp-system-unknown"),
        errors.VxpAgencyNotServed: (403, "vxp-agency-not-served"),
        errors.VxpHashFileMismatch: (422, "vxp-hash-file-mismatch"),
        errors.VxpParameterMissing: (422, "vxp-parameter-missing"),
        errors.VxpParameterAmbiguous: (422, "vxp-parameter-ambiguous"),
        errors.VxpOperationNotSupported: (403, "vxp-operation-not-supported"),
        errors.VxpOperationUnknown: (404, "vxp-operation-unknown"),
    }
    assert {cls: (cls.status, cls.slug) for cls in table} == table
    for cls in (errors.VxpSignatureHeadersMissing, errors.VxpHmacInvalid, errors.VxpSystemUnknown):
        assert issubclass(cls, errors.VxpAuthError)


def test_hmac_refusals_never_echo_what_was_received() -> None:
    secret_looking = "sys.01-leak-me"
    headers = _replace(sign({**BASE, "docId": secret_looking}), PREFIX + "docId", secret_looking + "!")
    with pytest.raises(errors.VxpHmacInvalid) as caught:
        verify_hmac(parse_request(headers), SECRET)
    assert secret_looking not in caught.value.detail
