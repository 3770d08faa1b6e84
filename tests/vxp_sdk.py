"""A test client that calls the VXP face the way the axis's Java SDK (``SDKVXP`` 2.0.x) does, quirks included.

Written from ``/work/shared/VXP.md`` and the requests captured from the real SDK, so the gateway's tests
meet what real QLVB installations send, not what a tidy client would:

- the timestamp (``ddMMyyyy'T'HHmmss+SSSS``, the last part milliseconds) is fixed when the object is made
  and sent unchanged on every call;
- ONE header map per object, never cleared: every key of an earlier call rides along on the later ones
  (an updateStatus carries the ``filePath`` of the getEdoc before it), and updateStatus sets both
  ``docId`` and ``docid``;
- every key of the map is sent as ``XroadVnpt-<key>`` and signed: the sign-header is a JSON object built
  in an arbitrary key order (a seeded shuffle here), ``hash-header`` its HMAC-SHA256 with the secret;
- the map holds ``Content-Type`` too, so it goes out twice: plain and as the signed ``XroadVnpt-Content-Type``;
- sendEdoc: ``hash-file`` is the SHA-256 in hex without zero padding per byte, and the body is the file
  followed by one ``\\r\\n`` that is not hashed;
- ``Expect: 100-continue`` on calls with a JSON body (``{}``, registerAgency);
- the HTTP status is ignored: the answer is the parsed JSON body (the sendEdoc answer read as US-ASCII,
  so an unescaped non-ASCII character arrives as U+FFFD), None when the body is not a JSON object.

Header values must be ASCII here (httpx refuses others): what the SDK does with a non-ASCII parameter is
not recorded in VXP.md or the captures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

PREFIX = "XroadVnpt-"
USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
VERSION = "3.0.201608"
VIETNAM = timezone(timedelta(hours=7))
OCTET_STREAM = "application/octet-stream"
JSON = "application/json"

#: The requests the real SDK sent to a recording server (``../shared/vxp/captured``; VXP.md), made with:
CAPTURE_SYSTEM = "sdk.capture.01"
CAPTURE_SECRET = "dummy-secret-for-loopback-capture"
CAPTURES = [
    "01-sendEdoc.txt",
    "02-sendEdoc.txt",
    "03-getReceivedEdocList.txt",
    "04-getEdoc.txt",
    "05-updateStatus.txt",
    "06-updateStatus.txt",
    "07-getReceivedEdocList.txt",
    "08-getSentEdocList.txt",
    "09-countReceiveEdoc.txt",
    "10-countReceiveStatus.txt",
    "11-downloadEdoc.txt",
    "12-getAgenciesList.txt",
    "13-getAgenciesListQD20.txt",
    "14-getSynchronizeUnit.txt",
    "15-registerAgency.txt",
    "16-deleteAgency.txt",
]


@dataclass(frozen=True)
class Capture:
    """One captured request: what the SDK sent and what the recording server noted about it."""

    method: str
    operation: str
    headers: list[tuple[str, str]]
    notes: list[str]  # the recording server's "-- ..." lines, without the "-- "

    def note(self, prefix: str) -> str | None:
        for line in self.notes:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        return None


def parse_capture(text: str) -> Capture:
    """A capture file: the request line, ``Name: value`` lines up to the blank line, then the notes."""
    lines = text.split("\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: list[tuple[str, str]] = []
    position = 1
    while lines[position].strip():
        name, _, value = lines[position].partition(":")
        headers.append((name, value.strip(" \t\r")))  # as a server hands them over: OWS stripped
        position += 1
    notes = [line[3:] for line in lines[position:] if line.startswith("-- ")]
    return Capture(method, target.lstrip("/"), headers, notes)


def request_headers(request: httpx.Request) -> list[tuple[str, str]]:
    """A request's headers as a server hands them to the gateway (names as sent, repeats kept)."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]


def sdk_timestamp(moment: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time; ``SSSS`` is the milliseconds on four digits."""
    local = moment.astimezone(VIETNAM) if moment.tzinfo else moment
    return local.strftime("%d%m%YT%H%M%S") + f"+{local.microsecond // 1000:04d}"


def sdk_hash_file(data: bytes) -> str:
    """The SDK's hash-file: SHA-256, each byte as ``format(b, "x")`` (no zero padding)."""
    return "".join(format(b, "x") for b in hashlib.sha256(data).digest())


@dataclass(frozen=True)
class SdkAnswer:
    """What a call gave back: the answer as the SDK parses it and the raw response for the test."""

    json: dict[str, Any] | None
    response: httpx.Response
    data: bytes | None = None  # getEdoc: the base64 ``data`` decoded; downloadEdoc: the raw body


class VxpSdk:
    """One SDK service object (``KnobstickServiceImp``): one system id, one secret, one timestamp, one map."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base: str,
        system_id: str,
        secret: str,
        *,
        seed: int | None = 0,
        now: datetime | None = None,
        file_path: str = "vxp-store",
    ) -> None:
        self.client = client
        self.base = base.rstrip("/")
        self.secret = secret
        self.file_path = file_path
        self.timestamp = sdk_timestamp(now or datetime.now(VIETNAM))
        self.headers: dict[str, str] = {"systemid": system_id, "timestamp": self.timestamp}
        self._random = random.Random(seed)

    # -------------------------------------------------------------------------------- the signing

    def signed_headers(self, *, expect_continue: bool) -> list[tuple[str, str]]:
        """The headers of the next call, built from the map as it stands."""
        keys = list(self.headers)
        self._random.shuffle(keys)
        sign_header = json.dumps(
            {PREFIX + key: self.headers[key] for key in keys}, separators=(",", ":"), ensure_ascii=False
        )
        digest = hmac.new(self.secret.encode("utf-8"), sign_header.encode("utf-8"), hashlib.sha256).hexdigest()
        out = [(PREFIX + key, self.headers[key]) for key in keys]
        if "Content-Type" in self.headers:
            out.append(("Content-Type", self.headers["Content-Type"]))
        out += [
            (PREFIX + "sign-header-key", ";".join(keys)),
            (PREFIX + "sign-header", sign_header),
            (PREFIX + "hash-header", digest),
            ("User-Agent", USER_AGENT),
            (PREFIX + "version", VERSION),
        ]
        if expect_continue:
            out.append(("Expect", "100-continue"))
        return out

    async def _call(
        self, operation: str, *, method: str = "POST", body: bytes = b"", ascii_answer: bool = False
    ) -> SdkAnswer:
        json_body = body != b"" and self.headers.get("Content-Type") == JSON
        response = await self.client.request(
            method,
            f"{self.base}/{operation}",
            headers=self.signed_headers(expect_continue=json_body),
            content=body if method != "GET" else None,
        )
        text = response.content.decode("ascii", errors="replace") if ascii_answer else response.text
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        return SdkAnswer(parsed if isinstance(parsed, dict) else None, response)

    # -------------------------------------------------------------------------------- operations

    async def send_edoc(self, data: bytes, from_code: str, messagetype: str = "edoc") -> SdkAnswer:
        self.headers.update({
            "servicetype": "eDoc",
            "messagetype": messagetype,
            "from": from_code,
            "hash-file": sdk_hash_file(data),
            "Content-Type": OCTET_STREAM,
        })
        return await self._call("sendEdoc", body=data + b"\r\n", ascii_answer=True)

    async def get_received_edoc_list(self, messagetype: str = "edoc") -> SdkAnswer:
        self.headers.update({"servicetype": "eDoc", "messagetype": messagetype, "Content-Type": JSON})
        return await self._call("getReceivedEdocList")

    async def get_edoc(self, doc_id: str) -> SdkAnswer:
        self.headers.update({"docId": doc_id, "filePath": self.file_path, "Content-Type": JSON})
        answer = await self._call("getEdoc", body=b"{}")
        data: bytes | None = None
        if answer.json is not None and answer.json.get("status") != "FAIL" and isinstance(answer.json.get("data"), str):
            try:
                data = base64.b64decode(answer.json["data"], validate=True)
            except binascii.Error:
                data = None
        return SdkAnswer(answer.json, answer.response, data)

    async def download_edoc(self, doc_id: str) -> SdkAnswer:
        self.headers.update({"docId": doc_id, "filePath": self.file_path, "Content-Type": JSON})
        answer = await self._call("downloadEdoc", method="GET")
        return SdkAnswer(answer.json, answer.response, answer.response.content)

    async def update_status(self, doc_id: str, status: str, description: str | None = None) -> SdkAnswer:
        self.headers.update({"docId": doc_id, "docid": doc_id, "status": status, "Content-Type": JSON})
        if description is not None:
            self.headers["description"] = description
        return await self._call("updateStatus", body=b"{}")

    async def get_sent_edoc_list(self, doc_id: str, messagetype: str = "edoc") -> SdkAnswer:
        self.headers.update({"servicetype": "eDoc", "messagetype": messagetype, "docId": doc_id, "Content-Type": JSON})
        return await self._call("getSentEdocList")

    async def count_receive_edoc(self) -> SdkAnswer:
        self.headers["Content-Type"] = JSON
        return await self._call("countReceiveEdoc", body=b"{}")

    async def count_receive_status(self) -> SdkAnswer:
        self.headers["Content-Type"] = JSON
        return await self._call("countReceiveStatus", body=b"{}")

    async def get_agencies_list(self) -> SdkAnswer:
        self.headers["Content-Type"] = JSON
        return await self._call("getAgenciesList")

    async def get_agencies_list_qd20(self, level: int | str) -> SdkAnswer:
        self.headers.update({"level": str(level), "Content-Type": JSON})
        return await self._call("getAgenciesListQD20")

    async def get_synchronize_unit(self) -> SdkAnswer:
        self.headers["Content-Type"] = JSON
        return await self._call("getSynchronizeUnit")

    async def register_agency(self, json_body: Mapping[str, str] | str) -> SdkAnswer:
        """The body is JSON outside the HMAC (raw UTF-8, as the SDK writes it)."""
        self.headers["Content-Type"] = JSON
        text = json_body if isinstance(json_body, str) else json.dumps(dict(json_body), ensure_ascii=False)
        return await self._call("registerAgency", body=text.encode("utf-8"))

    async def delete_agency(self, code: str) -> SdkAnswer:
        self.headers.update({"AgencyCode": code, "Content-Type": JSON})
        return await self._call("deleteAgency", body=b"{}")
