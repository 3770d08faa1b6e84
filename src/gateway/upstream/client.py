"""The gateway as a CLIENT of an upstream axis: every VXP call it needs, signed as the axis SDK signs them.

Issue 15 makes one gateway both a province's hub and its door to the national network: what crosses the
border is sent to an upstream axis (the national axis, or another instance of this gateway through its
``/vxp`` face) and fetched from it, over the protocol of ``/work/shared/VXP.md`` and nothing else. This
module is that protocol's client side; the forwarder, the poller and the register sync are built on it.

A request, as the SDK sends it:

- ``POST <base>/<operation>`` (``downloadEdoc``: ``GET``); every parameter a header ``XroadVnpt-<key>``;
- the signed keys are ``systemid``, ``timestamp`` (``ddMMyyyy'T'HHmmss+SSSS``, the last four digits
  milliseconds, Vietnam time), ``Content-Type`` and the operation's parameters; ``XroadVnpt-sign-header``
  is a JSON object of exactly those headers, ``XroadVnpt-sign-header-key`` their names joined by ``;``,
  ``XroadVnpt-hash-header`` the lowercase hex HMAC-SHA256 of the sign-header keyed by the secret's UTF-8;
- sendEdoc: ``hash-file`` is the SHA-256 of the file in the SDK's unpadded per-byte hex, the body is the
  file then ``\\r\\n`` (not hashed), ``Content-Type: application/octet-stream``; the bodies elsewhere are
  ``{}`` or empty, exactly where the SDK's are (the captured requests of VXP.md).

Where it departs from the SDK, on purpose (a server must accept both, and the gateway's face does):

- a FRESH header map per call: nothing of an earlier call rides along (the SDK's never-cleared map sends an
  updateStatus with the ``filePath`` of the getEdoc before it, and can act on a stale ``docid``);
- a fresh timestamp per call (the SDK fixes it once per service object);
- the sign-header is written in ASCII (``\\uXXXX`` for a non-ASCII value such as a Vietnamese
  ``description``), so its HMAC does not depend on how the upstream decodes header bytes; the parameter
  header itself goes as UTF-8 (the gateway's face reads header values as UTF-8);
- its own ``User-Agent``; no ``Expect: 100-continue`` (a quirk of the SDK's HTTP library, not protocol).

Answers are read as the SDK reads them, from the body, whatever the HTTP status (which is kept for the
errors): ``status`` ``OK``/``FAIL`` and ``ErrorCode`` ``"0"`` or ``0``; a missing or null field is an
empty string; an item of a list that cannot be acted on (not an object, no ``docId``) is left out with a
warning (it stays upstream, never acknowledged). Every failure is one of :mod:`gateway.upstream.errors`:
:class:`UpstreamUnavailable` (no answer, or a 5xx/408/429 without JSON), :class:`UpstreamRefused` (FAIL),
:class:`UpstreamAnswerInvalid` (an answer that cannot be read where one is required: never a success).

The secret never leaves this object: not in its ``repr``, not in a log line, not in an error. Each call is
logged with its operation, HTTP status, elapsed milliseconds and outcome.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from gateway.config import Settings
from gateway.logs import get_logger
from gateway.upstream.errors import UpstreamAnswerInvalid, UpstreamError, UpstreamRefused, UpstreamUnavailable
from gateway.vxp.protocol import PREFIX, VIETNAM, unpadded_sha256_hex

__all__ = [
    "ReceivedItem",
    "SentItem",
    "SynchronizedUnit",
    "UpstreamAgency",
    "UpstreamAgencyQd20",
    "UpstreamClient",
    "load_secret",
    "sdk_timestamp",
    "signed_headers",
]

_log = get_logger("gateway.upstream")

#: the protocol version the SDK announces (``XroadVnpt-version``)
VXP_VERSION = "3.0.201608"
USER_AGENT = f"gateway-upstream/0.1 (VXP {VXP_VERSION})"
JSON_TYPE = "application/json"
OCTET_STREAM = "application/octet-stream"
#: the SDK's ``filePath`` is a folder on the client that servers ignore; sent because the SDK sends it
FILE_PATH = "vxp-store"
#: the most of an answer read (a hostile or broken upstream cannot fill the memory); from_settings derives
#: it from max_envelope_bytes
DEFAULT_MAX_ANSWER_BYTES = 128 * 1024 * 1024
#: the most of a ``description`` sent (it travels twice as a header: plain and inside the sign-header)
MAX_DESCRIPTION_CHARS = 500
#: the longest id taken from an answer (a DocId, a docId of a list), which is sent back as a header later
MAX_ID_CHARS = 255

T = TypeVar("T")
MessageType = Literal["edoc", "status"]
AckStatus = Literal["done", "fail"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HTML_START = (b"<!doctype html", b"<html")


# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ReceivedItem:
    """One row of getReceivedEdocList: a message waiting for this gateway upstream. ``doc_id`` is what
    getEdoc, downloadEdoc and updateStatus take; every field is the upstream's text ("" when absent)."""

    doc_id: str
    from_code: str
    to_code: str
    message_type: str
    status: str
    status_desc: str
    created_time: str
    updated_time: str
    service_type: str


@dataclass(frozen=True, slots=True)
class SentItem:
    """One row of getSentEdocList: one recipient of a message this gateway sent upstream."""

    to_code: str
    receive_status: str
    receive_status_desc: str
    received_time: str
    from_code: str
    sender_doc_id: str
    receiver_doc_id: str
    send_status: str
    send_status_desc: str
    sent_time: str
    service_type: str
    message_type: str
    notation: str
    title: str


@dataclass(frozen=True, slots=True)
class UpstreamAgency:
    """One row of getAgenciesList."""

    id: str
    pid: str
    code: str
    name: str
    mail: str
    old_code: str


@dataclass(frozen=True, slots=True)
class UpstreamAgencyQd20:
    """One row of getAgenciesListQD20 (``code`` the QĐ 20 identifier, ``code102`` the other one)."""

    id: str
    code: str
    name: str
    mail: str
    code102: str


@dataclass(frozen=True, slots=True)
class SynchronizedUnit:
    """One row of getSynchronizeUnit. ``deleted`` and ``is_agency`` are False when absent or unreadable."""

    id: str
    pid: str
    code: str
    name: str
    mail: str
    version: str
    center_code: str
    deleted: bool
    modify_date: str
    is_agency: bool


# ----------------------------------------------------------------------------------------- signing


def sdk_timestamp(moment: datetime) -> str:
    """``XroadVnpt-timestamp``: ``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time, ``SSSS`` the milliseconds on
    four digits (``28112026T233528+0790``). Read back by :func:`gateway.vxp.protocol.parse_timestamp`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("sdk_timestamp needs an aware datetime")
    local = moment.astimezone(VIETNAM)
    return local.strftime("%d%m%YT%H%M%S") + f"+{local.microsecond // 1000:04d}"


def signed_headers(system_id: str, secret: str | SecretStr, params: Mapping[str, str], *, content_type: str,
                   timestamp: str) -> list[tuple[str, str]]:
    """The headers of one call: ``params`` (keys without the prefix), the credentials and the signature.

    Signed: ``systemid``, the parameters, ``timestamp`` and ``Content-Type`` (the SDK's order), nothing else.
    Values must hold no control character (a header cannot carry one); the caller sends non-ASCII as UTF-8."""
    values: dict[str, str] = {"systemid": system_id, **params, "timestamp": timestamp, "Content-Type": content_type}
    for key, value in values.items():
        if _CONTROL.search(key) or _CONTROL.search(value) or not key:
            raise ValueError(f"the VXP parameter {key!r} holds a control character")
    sign_header = json.dumps({PREFIX + key: value for key, value in values.items()}, separators=(",", ":"),
                             ensure_ascii=True)
    key_bytes = (secret.get_secret_value() if isinstance(secret, SecretStr) else secret).encode("utf-8")
    digest = hmac.new(key_bytes, sign_header.encode("ascii"), hashlib.sha256).hexdigest()
    headers = [(PREFIX + key, value) for key, value in values.items()]
    headers += [
        ("Content-Type", content_type),
        (PREFIX + "sign-header-key", ";".join(values)),
        (PREFIX + "sign-header", sign_header),
        (PREFIX + "hash-header", digest),
        (PREFIX + "version", VXP_VERSION),
        ("User-Agent", USER_AGENT),
    ]
    return headers


def load_secret(settings: Settings) -> SecretStr:
    """The upstream secret: ``GATEWAY_UPSTREAM_SECRET``, or the text of ``GATEWAY_UPSTREAM_SECRET_FILE``
    (UTF-8, one trailing line break dropped). ValueError when there is none or the file cannot be read;
    the message names the setting, never the secret."""
    if settings.upstream_secret is not None:
        return settings.upstream_secret
    if settings.upstream_secret_file is None:
        raise ValueError("no upstream secret: set GATEWAY_UPSTREAM_SECRET or GATEWAY_UPSTREAM_SECRET_FILE")
    path: Path = settings.upstream_secret_file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ValueError(f"GATEWAY_UPSTREAM_SECRET_FILE {path} cannot be read: {reason}") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ValueError(f"GATEWAY_UPSTREAM_SECRET_FILE {path} is empty")
    return SecretStr(text)


# ----------------------------------------------------------------------------------------- answers


def _field(answer: Mapping[str, Any], name: str) -> Any:
    """``answer[name]``, else the first key equal to it in another case (``DocID``, ``errorCode``)."""
    if name in answer:
        return answer[name]
    lowered = name.lower()
    for key, value in answer.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _text(value: Any) -> str:
    """A field as the SDK's ``getAsString()`` would give it; "" for absent, null, objects and arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return ""


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in ("true", "1", "yes")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return parsed if isinstance(parsed, dict) else None


def _is_answer(parsed: dict[str, Any]) -> bool:
    """A VXP answer names its outcome: ``status`` or ``ErrorCode`` (a raw file that parses as JSON does not)."""
    return _field(parsed, "status") is not None or _field(parsed, "ErrorCode") is not None


def _not_now(http_status: int) -> bool:
    """An HTTP status that, without a JSON answer, says "try again later" (a proxy's 502, a 503 page...)."""
    return http_status >= 500 or http_status in (408, 429)


def _usable_id(value: str) -> bool:
    return bool(value.strip()) and len(value) <= MAX_ID_CHARS and _CONTROL.search(value) is None


@dataclass(frozen=True, slots=True)
class _Exchange:
    operation: str
    http_status: int
    body: bytes
    content_type: str

    def invalid(self, detail: str) -> UpstreamAnswerInvalid:
        return UpstreamAnswerInvalid(f"{self.operation}: {detail}", operation=self.operation,
                                     http_status=self.http_status)

    def unreadable(self, detail: str) -> UpstreamAnswerInvalid | UpstreamUnavailable:
        """No VXP answer in the body: "not now" for a 5xx/408/429, else an answer that cannot be read."""
        if _not_now(self.http_status):
            return UpstreamUnavailable(f"{self.operation}: HTTP {self.http_status} without a VXP answer",
                                       operation=self.operation, http_status=self.http_status, request_sent=True)
        return self.invalid(detail)

    def verdict(self, parsed: dict[str, Any]) -> dict[str, Any]:
        """The answer when it says OK; :class:`UpstreamRefused` when it says FAIL (or an ErrorCode other
        than 0, which is how the SDK tells); :class:`UpstreamAnswerInvalid` when it says neither."""
        status = _text(_field(parsed, "status")).strip().upper()
        code = _text(_field(parsed, "ErrorCode")).strip()
        if status == "FAIL" or code not in ("", "0"):
            raise UpstreamRefused(operation=self.operation, http_status=self.http_status, error_code=code,
                                  error_desc=_text(_field(parsed, "ErrorDesc")))
        if status != "OK" and code != "0":
            raise self.invalid("the answer says neither OK nor FAIL")
        return parsed

    def answer(self) -> dict[str, Any]:
        """The body as a VXP JSON answer that says OK (see :meth:`verdict`)."""
        parsed = _json_object(self.body)
        if parsed is None or not _is_answer(parsed):
            raise self.unreadable("the body is not a VXP JSON answer" if self.body else "the body is empty")
        return self.verdict(parsed)

    def items(self) -> list[dict[str, Any]]:
        """The ``data`` list of an OK answer (absent or null: empty); items that are not objects left out."""
        data = _field(self.answer(), "data")
        if data is None:
            return []
        if not isinstance(data, list):
            raise self.invalid("data is not a list")
        objects = [item for item in data if isinstance(item, dict)]
        if len(objects) != len(data):
            _log.warning("upstream list items left out", operation=self.operation, reason="not an object",
                         count=len(data) - len(objects))
        return objects

    def base64_data(self, parsed: dict[str, Any]) -> bytes:
        data = _field(parsed, "data")
        if not isinstance(data, str):
            raise self.invalid("data is missing")
        compact = re.sub(rb"\s+", b"", data.encode("ascii", "replace"))  # MIME base64 breaks its lines
        try:
            decoded = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise self.invalid("data is not base64") from None
        if not decoded:
            raise self.invalid("data is empty")
        return decoded


# ------------------------------------------------------------------------------------------ client


class UpstreamClient:
    """The VXP calls to one upstream axis, as one system (``system_id`` and its shared ``secret``).

    ``base_url`` is the upstream's VXP base (``https://axis.example/vxp``); each operation is appended to
    it. ``transport`` replaces the network (tests); ``connect_timeout`` bounds opening a connection,
    ``timeout`` one whole call. Use it as an async context manager or call :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        system_id: str,
        secret: str | SecretStr,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 5.0,
        timeout: float = 60.0,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("the upstream base URL must be an http(s) URL with a host")
        if not system_id or not all(" " < c < "\x7f" for c in system_id):
            raise ValueError("the upstream system id must be printable ASCII without spaces")
        plain = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if not plain:
            raise ValueError("the upstream secret is never empty")
        if connect_timeout <= 0 or timeout <= 0 or max_answer_bytes <= 0:
            raise ValueError("timeouts and max_answer_bytes are positive")
        self._base = base_url.rstrip("/")
        self._system_id = system_id
        self._secret = SecretStr(plain)
        self._timeout = timeout
        self._max_answer_bytes = max_answer_bytes
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,  # signed headers are never replayed to wherever a redirect points
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
                      ) -> UpstreamClient:
        """The client the settings describe (``GATEWAY_UPSTREAM_*``); ValueError when no upstream is set."""
        if not settings.upstream_url or not settings.upstream_system_id:
            raise ValueError("no upstream: GATEWAY_UPSTREAM_URL is not set")
        return cls(
            settings.upstream_url,
            settings.upstream_system_id,
            load_secret(settings),
            transport=transport,
            connect_timeout=settings.upstream_connect_timeout_seconds,
            timeout=settings.upstream_timeout_seconds,
            # getEdoc carries the largest envelope intake takes, in base64, inside JSON
            max_answer_bytes=settings.max_envelope_bytes * 4 // 3 + 1024 * 1024,
        )

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def system_id(self) -> str:
        return self._system_id

    def __repr__(self) -> str:
        return f"UpstreamClient(base_url={self._base!r}, system_id={self._system_id!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------------ operations

    async def send_edoc(self, data: bytes, from_code: str, messagetype: MessageType = "edoc") -> str:
        """sendEdoc: a document (``edoc``) or a status message (``status``) from ``from_code``; the
        upstream's DocId. An OK without a usable DocId is :class:`UpstreamAnswerInvalid`, never a success."""
        _check_messagetype(messagetype)
        if not data:
            raise ValueError("sendEdoc needs the file's bytes")

        def read(exchange: _Exchange) -> str:
            doc_id = _text(_field(exchange.answer(), "DocId")).strip()
            if not _usable_id(doc_id):
                raise exchange.invalid("OK without a usable DocId")
            return doc_id

        params = {"servicetype": "eDoc", "messagetype": messagetype, "hash-file": unpadded_sha256_hex(data),
                  "from": from_code}
        return await self._call("sendEdoc", params, read, body=data + b"\r\n", content_type=OCTET_STREAM)

    async def received(self, messagetype: MessageType = "edoc") -> list[ReceivedItem]:
        """getReceivedEdocList: the documents (``edoc``) or statuses (``status``) waiting for this system.
        A row without a usable ``docId`` is left out (it stays upstream, never acknowledged) and logged."""
        _check_messagetype(messagetype)

        def read(exchange: _Exchange) -> list[ReceivedItem]:
            items = [ReceivedItem(
                doc_id=_text(_field(row, "docId")).strip(),
                from_code=_text(_field(row, "from")),
                to_code=_text(_field(row, "to")),
                message_type=_text(_field(row, "messageType")),
                status=_text(_field(row, "status")),
                status_desc=_text(_field(row, "status_desc")),
                created_time=_text(_field(row, "created_time")),
                updated_time=_text(_field(row, "updated_time")),
                service_type=_text(_field(row, "serviceType")),
            ) for row in exchange.items()]
            usable = [item for item in items if _usable_id(item.doc_id)]
            if len(usable) != len(items):
                _log.warning("upstream list items left out", operation=exchange.operation,
                             reason="no usable docId", count=len(items) - len(usable))
            return usable

        return await self._call("getReceivedEdocList", {"servicetype": "eDoc", "messagetype": messagetype}, read)

    async def get_edoc(self, doc_id: str) -> bytes:
        """getEdoc: the message's bytes (the answer's base64 ``data``, decoded)."""

        def read(exchange: _Exchange) -> bytes:
            return exchange.base64_data(exchange.answer())

        return await self._call("getEdoc", {"docId": doc_id, "filePath": FILE_PATH}, read, body=b"{}")

    async def download_edoc(self, doc_id: str) -> bytes:
        """downloadEdoc (GET): the message's raw bytes. A JSON FAIL is :class:`UpstreamRefused`; a JSON OK
        with base64 ``data`` is read like getEdoc; an HTML page or an empty body is never a document."""

        def read(exchange: _Exchange) -> bytes:
            parsed = _json_object(exchange.body)
            if parsed is not None and _is_answer(parsed):
                return exchange.base64_data(exchange.verdict(parsed))
            if not 200 <= exchange.http_status < 300:
                raise exchange.unreadable(f"HTTP {exchange.http_status} without the file")
            if not exchange.body:
                raise exchange.invalid("the body is empty")
            head = exchange.body[:64].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
            if "text/html" in exchange.content_type.lower() or head.startswith(_HTML_START):
                raise exchange.invalid("the body is an HTML page")
            return exchange.body

        return await self._call("downloadEdoc", {"docId": doc_id, "filePath": FILE_PATH}, read, method="GET")

    async def update_status(self, doc_id: str, status: AckStatus, description: str | None = None) -> None:
        """updateStatus: the transport acknowledgement of a received message, ``done`` or ``fail`` (with a
        ``description``: control characters made spaces, cut to MAX_DESCRIPTION_CHARS). ``docId`` and
        ``docid`` both go, equal, as one of the SDK's updateStatus calls sends them."""
        if status not in ("done", "fail"):
            raise ValueError("updateStatus status: done or fail")
        params = {"docId": doc_id, "docid": doc_id, "status": status}
        if description is not None:
            params["description"] = _CONTROL.sub(" ", description)[:MAX_DESCRIPTION_CHARS]

        def read(exchange: _Exchange) -> None:
            exchange.answer()

        await self._call("updateStatus", params, read, body=b"{}")

    async def sent(self, doc_id: str, messagetype: MessageType = "edoc") -> list[SentItem]:
        """getSentEdocList: one row per recipient of a message this system sent (``doc_id``: its DocId)."""
        _check_messagetype(messagetype)

        def read(exchange: _Exchange) -> list[SentItem]:
            return [SentItem(
                to_code=_text(_field(row, "toCode")),
                receive_status=_text(_field(row, "receiveStatus")),
                receive_status_desc=_text(_field(row, "receiveStatusDesc")),
                received_time=_text(_field(row, "receivedTime")),
                from_code=_text(_field(row, "fromCode")),
                sender_doc_id=_text(_field(row, "senderDocId")),
                receiver_doc_id=_text(_field(row, "receiverDocId")),
                send_status=_text(_field(row, "sendStatus")),
                send_status_desc=_text(_field(row, "sendStatusDesc")),
                sent_time=_text(_field(row, "sentTime")),
                service_type=_text(_field(row, "serviceType")),
                message_type=_text(_field(row, "messageType")),
                notation=_text(_field(row, "notation")),
                title=_text(_field(row, "title")),
            ) for row in exchange.items()]

        params = {"servicetype": "eDoc", "messagetype": messagetype, "docId": doc_id}
        return await self._call("getSentEdocList", params, read)

    async def count_received(self, messagetype: MessageType = "edoc") -> int:
        """countReceiveEdoc / countReceiveStatus: how many wait."""
        _check_messagetype(messagetype)

        def read(exchange: _Exchange) -> int:
            count = _text(_field(exchange.answer(), "count")).strip()
            if not count.isascii() or not count.isdigit():
                raise exchange.invalid("count is missing or not a number")
            return int(count)

        operation = "countReceiveEdoc" if messagetype == "edoc" else "countReceiveStatus"
        return await self._call(operation, {}, read, body=b"{}")

    async def agencies(self) -> list[UpstreamAgency]:
        """getAgenciesList: the upstream's register."""

        def read(exchange: _Exchange) -> list[UpstreamAgency]:
            return [UpstreamAgency(
                id=_text(_field(row, "id")), pid=_text(_field(row, "pid")), code=_text(_field(row, "code")),
                name=_text(_field(row, "name")), mail=_text(_field(row, "mail")),
                old_code=_text(_field(row, "oldCode")),
            ) for row in exchange.items()]

        return await self._call("getAgenciesList", {}, read)

    async def agencies_qd20(self, level: int | str) -> list[UpstreamAgencyQd20]:
        """getAgenciesListQD20: the register with QĐ 20 identifiers, at ``level``."""

        def read(exchange: _Exchange) -> list[UpstreamAgencyQd20]:
            return [UpstreamAgencyQd20(
                id=_text(_field(row, "id")), code=_text(_field(row, "code")), name=_text(_field(row, "name")),
                mail=_text(_field(row, "mail")), code102=_text(_field(row, "code102")),
            ) for row in exchange.items()]

        return await self._call("getAgenciesListQD20", {"level": str(level)}, read)

    async def synchronize_unit(self) -> list[SynchronizedUnit]:
        """getSynchronizeUnit: the register for synchronisation (with ``deleted`` rows)."""

        def read(exchange: _Exchange) -> list[SynchronizedUnit]:
            return [SynchronizedUnit(
                id=_text(_field(row, "id")), pid=_text(_field(row, "pid")), code=_text(_field(row, "code")),
                name=_text(_field(row, "name")), mail=_text(_field(row, "mail")),
                version=_text(_field(row, "version")), center_code=_text(_field(row, "centerCode")),
                deleted=_flag(_field(row, "deleted")), modify_date=_text(_field(row, "modifyDate")),
                is_agency=_flag(_field(row, "isAgency")),
            ) for row in exchange.items()]

        return await self._call("getSynchronizeUnit", {}, read)

    # ------------------------------------------------------------------------------------ the call

    async def _call(self, operation: str, params: Mapping[str, str], read: Callable[[_Exchange], T], *,
                    method: str = "POST", body: bytes = b"", content_type: str = JSON_TYPE) -> T:
        """One request with a fresh header map, its answer read by ``read``; logged with its outcome.

        Raises :class:`UpstreamUnavailable` when no answer came, :class:`UpstreamAnswerInvalid` when it is
        over the limit, and whatever ``read`` raises."""
        headers = signed_headers(self._system_id, self._secret, params, content_type=content_type,
                                 timestamp=sdk_timestamp(datetime.now(VIETNAM)))
        started = time.perf_counter()
        fields: dict[str, Any] = {"operation": operation, "status": None}
        if "docId" in params:
            fields["doc_id"] = params["docId"]
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    exchange = await self._send(operation, method, headers, body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise UpstreamUnavailable(f"{operation}: no connection ({type(exc).__name__})", operation=operation,
                                          request_sent=False) from None
            except (httpx.TransportError, TimeoutError) as exc:
                raise UpstreamUnavailable(f"{operation}: no answer ({type(exc).__name__})", operation=operation,
                                          request_sent=True) from None
            fields["status"] = exchange.http_status
            result = read(exchange)
        except UpstreamError as error:
            fields.update(status=error.http_status, outcome=error.slug)
            if isinstance(error, UpstreamRefused):
                fields["error_code"] = error.error_code
            _log.warning("upstream call", **fields, elapsed_ms=_elapsed_ms(started))
            raise
        _log.info("upstream call", **fields, outcome="ok", elapsed_ms=_elapsed_ms(started))
        return result

    async def _send(self, operation: str, method: str, headers: Sequence[tuple[str, str]],
                    body: bytes) -> _Exchange:
        encoded = [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]
        request = self._http.build_request(method, f"{self._base}/{operation}", headers=encoded,
                                           content=body if method != "GET" else None)
        response = await self._http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_answer_bytes:
                    raise UpstreamAnswerInvalid(f"{operation}: the answer is over {self._max_answer_bytes} bytes",
                                                operation=operation, http_status=response.status_code)
                chunks.append(chunk)
        finally:
            await response.aclose()
        return _Exchange(operation, response.status_code, b"".join(chunks),
                         response.headers.get("content-type", ""))


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _check_messagetype(messagetype: str) -> None:
    if messagetype not in ("edoc", "status"):
        raise ValueError("messagetype: edoc or status")
