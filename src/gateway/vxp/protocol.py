"""The national axis protocol (VXP) as the axis SDK speaks it: the pure core of the gateway's VXP face.

The axis SDK (Java ``SDKVXP``, .NET ``VPCPXRoadSdk``) sends every parameter as an ``XroadVnpt-<key>``
header and signs them by HMAC-SHA256 over a JSON object of those headers (``/work/shared/VXP.md``). This
module reads such a request, verifies it and builds the JSON answers the SDK can read. It knows nothing of
HTTP frameworks or databases: the adapter hands it the headers as received and the system's secret.

The order a caller follows::

    request = parse_request(headers)          # VxpSignatureHeadersMissing, VxpHmacInvalid (shape)
    secret = <look up request.system_id>      # VxpSystemUnknown (the caller's)
    verify_hmac(request, secret)              # VxpHmacInvalid
    doc_id = require_param(request, "docId")  # only signed parameters are ever read
    verify_hash_file(request, strip_trailing_crlf(body))   # sendEdoc: VxpHashFileMismatch

``request.signed`` is attacker-controlled until :func:`verify_hmac` returned. Every failure raises a typed
:mod:`gateway.vxp.errors` error; nothing here answers with a bool where a refusal is meant.

SDK quirks this module absorbs, each on purpose:

- the SDK keeps one header map per service object and never clears it, so keys of earlier calls ride
  along: unknown keys are ignored, no key is ever required to be absent, and ``docId``/``docid`` may both
  arrive, possibly with different values (:func:`param`);
- ``XroadVnpt-timestamp`` is fixed when the SDK's service object is made and reused for its life, so it is
  never checked for freshness (:func:`parse_timestamp` only reads it);
- ``hash-file`` is SHA-256 in hex without zero padding per byte, over the body minus one trailing CRLF;
- the SDK reads the sendEdoc answer as US-ASCII, so answers escape every non-ASCII character.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

from gateway.problems import GatewayError
from gateway.vxp.errors import (
    VxpHashFileMismatch,
    VxpHmacInvalid,
    VxpOperationNotSupported,
    VxpOperationUnknown,
    VxpParameterAmbiguous,
    VxpParameterMissing,
    VxpSignatureHeadersMissing,
)

__all__ = [
    "NOT_SUPPORTED",
    "OPERATIONS",
    "PREFIX",
    "VIETNAM",
    "ReceivedHeaders",
    "SignedRequest",
    "answer",
    "digest_matches",
    "failure",
    "format_time",
    "hash_file_matches",
    "param",
    "parse_request",
    "parse_timestamp",
    "require_param",
    "resolve_operation",
    "strip_trailing_crlf",
    "unpadded_hex",
    "unpadded_sha256_hex",
    "verify_hash_file",
    "verify_hmac",
]

PREFIX = "XroadVnpt-"
VIETNAM = timezone(timedelta(hours=7))

SYSTEM_ID = "systemid"
SIGN_HEADER = "sign-header"
SIGN_HEADER_KEY = "sign-header-key"
HASH_HEADER = "hash-header"
HASH_FILE = "hash-file"
_CREDENTIALS = (SYSTEM_ID, SIGN_HEADER, SIGN_HEADER_KEY, HASH_HEADER)

#: Every operation the SDK calls (``POST base/<op>``; ``downloadEdoc`` is a GET).
OPERATIONS: frozenset[str] = frozenset({
    "sendEdoc",
    "getReceivedEdocList",
    "getEdoc",
    "downloadEdoc",
    "updateStatus",
    "getSentEdocList",
    "countReceiveEdoc",
    "countReceiveStatus",
    "getAgenciesList",
    "getAgenciesListQD20",
    "getSynchronizeUnit",
    "registerAgency",
    "deleteAgency",
})
#: Operations the SDK offers that the gateway refuses: the register is an operator's job.
NOT_SUPPORTED: frozenset[str] = frozenset({"registerAgency", "deleteAgency"})

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{4})")
_ANSWER_KEYS = ("status", "ErrorCode", "ErrorDesc")


# --------------------------------------------------------------------------------------------- headers


class ReceivedHeaders(Mapping[str, str]):
    """Every header as received, read case-insensitively; a repeated name keeps all its values.

    As a mapping it gives a name's first value; :meth:`get_all` gives all of them in order."""

    __slots__ = ("_index", "_raw")

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self._raw = tuple((str(name), str(value)) for name, value in headers)
        index: dict[str, list[str]] = {}
        for name, value in self._raw:
            index.setdefault(name.lower(), []).append(value)
        self._index = {name: tuple(values) for name, values in index.items()}

    @property
    def raw(self) -> tuple[tuple[str, str], ...]:
        """The headers as received, names as sent, in order."""
        return self._raw

    def get_all(self, name: str) -> tuple[str, ...]:
        return self._index.get(name.lower(), ())

    def __getitem__(self, name: str) -> str:
        values = self._index.get(name.lower())
        if not values:
            raise KeyError(name)
        return values[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"ReceivedHeaders({list(self._index)!r})"


@dataclass(frozen=True)
class SignedRequest:
    """A VXP call's credentials as received. Not authenticated until :func:`verify_hmac` returned.

    ``signed`` maps each key of the sign-header JSON, without the ``XroadVnpt-`` prefix and in the case it
    was sent (``docId`` and ``docid`` are two keys), to its value."""

    system_id: str
    sign_header: str
    hash_header: str
    sign_header_key: tuple[str, ...]
    signed: Mapping[str, str]
    headers: ReceivedHeaders


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey
        out[key] = value
    return out


def _strip_prefix(name: str) -> str | None:
    """``name`` without a leading ``XroadVnpt-`` (any case), or None when it has none."""
    if name[: len(PREFIX)].lower() == PREFIX.lower():
        return name[len(PREFIX) :]
    return None


def _credential(headers: ReceivedHeaders, key: str) -> str:
    values = set(headers.get_all(PREFIX + key))
    if len(values) > 1:
        # Two different credentials in one call: none of them can be told to be the one meant.
        raise VxpHmacInvalid(f"the {PREFIX}{key} header is given twice with different values")
    value = values.pop() if values else ""
    if not value:
        raise VxpSignatureHeadersMissing(f"the {PREFIX}{key} header is missing or empty")
    return value


def _signed_map(sign_header: str) -> Mapping[str, str]:
    try:
        decoded = json.loads(sign_header, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        raise VxpHmacInvalid("the sign-header is not a JSON object with unique keys") from None
    if not isinstance(decoded, dict):
        raise VxpHmacInvalid("the sign-header is not a JSON object")
    signed: dict[str, str] = {}
    for key, value in decoded.items():
        name = _strip_prefix(key)
        if not name or not isinstance(value, str):
            raise VxpHmacInvalid(f"the sign-header may only hold {PREFIX}<key> names with string values")
        signed[name] = value
    return MappingProxyType(signed)


def parse_request(headers: Sequence[tuple[str, str]]) -> SignedRequest:
    """Read the credentials of a call from its headers as received (any name case, names may repeat).

    Raises :class:`VxpSignatureHeadersMissing` when ``XroadVnpt-systemid``, ``-sign-header``,
    ``-sign-header-key`` or ``-hash-header`` is absent or empty, and :class:`VxpHmacInvalid` when one of
    them repeats with different values or the sign-header is not a JSON object of ``XroadVnpt-`` names
    to strings (such a call can never verify)."""
    received = ReceivedHeaders(headers)
    system_id, sign_header, sign_header_key, hash_header = (_credential(received, key) for key in _CREDENTIALS)
    return SignedRequest(
        system_id=system_id,
        sign_header=sign_header,
        hash_header=hash_header,
        sign_header_key=tuple(name.strip() for name in sign_header_key.split(";")),
        signed=_signed_map(sign_header),
        headers=received,
    )


def verify_hmac(request: SignedRequest, secret: str) -> None:
    """Verify a call's signature with its system's shared secret, or raise :class:`VxpHmacInvalid`.

    The details are fixed texts: they never echo a value received."""
    if not secret:
        raise ValueError("a VXP system's secret is never empty")
    # 1. The HMAC over the sign-header exactly as received (the SDK's key order is arbitrary, so it is
    #    never rebuilt), keyed with the secret used as text.
    if _HEX64.fullmatch(request.hash_header) is None:
        raise VxpHmacInvalid("the hash-header is not a hex HMAC-SHA256")
    try:
        message = request.sign_header.encode("utf-8")
    except UnicodeEncodeError:
        raise VxpHmacInvalid("the sign-header does not verify") from None
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), request.hash_header.lower().encode("ascii")):
        raise VxpHmacInvalid("the hash-header does not verify over the sign-header")
    # 2. The signature names its system: the system id is one of the signed headers.
    if not any(name.lower() == SYSTEM_ID for name in request.signed):
        raise VxpHmacInvalid("the systemid is not among the signed headers")
    # 3. Every signed key is a header with the same value (a repeated name: one of its values), so what
    #    travels is what was signed. Extra headers are ignored: the SDK leaks keys from call to call.
    for name, value in request.signed.items():
        if value not in request.headers.get_all(PREFIX + name):
            raise VxpHmacInvalid("a signed header is missing or differs from its signed value")
    # 4. sign-header-key names exactly the signed keys.
    listed = {(_strip_prefix(name) or name).lower() for name in request.sign_header_key}
    if listed != {name.lower() for name in request.signed}:
        raise VxpHmacInvalid("the sign-header-key does not list exactly the signed headers")


# ------------------------------------------------------------------------------------------ parameters


def param(request: SignedRequest, *names: str, unanimous: bool = False) -> str | None:
    """The value of a parameter, read from the SIGNED headers only, or None when none of ``names`` is.

    ``names`` are spellings in order of preference (``"docId", "docid"``): the first one signed in exactly
    that case wins; failing that, the first one signed in another case. A spelling found in several cases
    with different values and no exact match raises :class:`VxpParameterAmbiguous`.

    ``unanimous=True``: every signed key equal to any of ``names`` in any case must carry the same value,
    else :class:`VxpParameterAmbiguous`. Use it where acting on a stale spelling does harm (updateStatus:
    the SDK never clears its header map, so a ``docid`` of an earlier call may ride along with a fresh
    ``docId``, or the reverse, and acknowledging the wrong document loses it)."""
    if not names:
        raise ValueError("param() needs at least one name")
    if unanimous:
        wanted = {name.lower() for name in names}
        values = {value for key, value in request.signed.items() if key.lower() in wanted}
        if len(values) > 1:
            raise VxpParameterAmbiguous(
                f"the signed parameter {names[0]} is given in several spellings with different values",
                parameter=names[0],
            )
    for name in names:
        if name in request.signed:
            return request.signed[name]
    for name in names:
        values = {value for key, value in request.signed.items() if key.lower() == name.lower()}
        if len(values) > 1:
            raise VxpParameterAmbiguous(
                f"the signed parameter {name} is given in several spellings with different values",
                parameter=name,
            )
        if values:
            return values.pop()
    return None


def require_param(request: SignedRequest, *names: str, unanimous: bool = False) -> str:
    """:func:`param`, refusing an absent or blank parameter with :class:`VxpParameterMissing`."""
    value = param(request, *names, unanimous=unanimous)
    if value is None or not value.strip():
        raise VxpParameterMissing(f"the signed parameter {names[0]} is required", parameter=names[0])
    return value


def resolve_operation(name: str) -> str:
    """The operation's canonical name (the SDK's spelling, matched case-insensitively), or a refusal:
    :class:`VxpOperationNotSupported` for registerAgency/deleteAgency, :class:`VxpOperationUnknown` for
    anything else. The HTTP method is not checked: SDK versions differ (count* calls went GET in some)."""
    for operation in OPERATIONS:
        if operation.lower() == name.lower():
            if operation in NOT_SUPPORTED:
                raise VxpOperationNotSupported(
                    f"{operation}: the gateway's register is kept by its operators",
                    operation=operation,
                )
            return operation
    raise VxpOperationUnknown("no such VXP operation")


# ---------------------------------------------------------------------------------------------- bodies


def strip_trailing_crlf(body: bytes) -> bytes:
    """The file of a sendEdoc body: the SDK writes the file, then one ``\\r\\n`` it does not hash."""
    return body[:-2] if body.endswith(b"\r\n") else body


def unpadded_hex(digest: bytes) -> str:
    """The SDK's hex of a digest: each byte as ``format(b, "x")``, so bytes below 0x10 lose their zero."""
    return "".join(format(b, "x") for b in digest)


def unpadded_sha256_hex(data: bytes) -> str:
    """The SDK's ``hash-file`` of ``data``."""
    return unpadded_hex(hashlib.sha256(data).digest())


def digest_matches(digest: bytes, value: str) -> bool:
    """Whether ``value`` is ``digest`` in hex, unpadded (the SDK) or standard, in any case."""
    received = value.lower()
    return received in (unpadded_hex(digest), digest.hex())


def hash_file_matches(body: bytes, value: str) -> bool:
    """Whether ``value`` is the SHA-256 of ``body``, which is the body WITHOUT its trailing CRLF (pass
    it through :func:`strip_trailing_crlf` first; this function does not strip)."""
    return digest_matches(hashlib.sha256(body).digest(), value)


def verify_hash_file(request: SignedRequest, file: bytes) -> None:
    """The file (the body after :func:`strip_trailing_crlf`) is the one the signed ``hash-file`` names.

    Raises :class:`VxpParameterMissing` without a signed ``hash-file`` (it is what binds the body to the
    HMAC), :class:`VxpHashFileMismatch` when it names other bytes."""
    value = require_param(request, HASH_FILE)
    if not hash_file_matches(file, value):
        raise VxpHashFileMismatch("the body does not match the signed hash-file")


# ---------------------------------------------------------------------------------------------- times


def parse_timestamp(value: str) -> datetime | None:
    """Read ``XroadVnpt-timestamp`` (``ddMMyyyy'T'HHmmss+SSSS``; ``+SSSS`` is milliseconds, not a zone)
    as Vietnam local time, or None when unreadable. For the record only: the SDK fixes it once per
    service object, so it says nothing about a call's freshness."""
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        return None
    day, month, year, hour, minute, second, millis = (int(part) for part in match.groups())
    try:  # out-of-range parts (a 30 February, +1000 milliseconds) are refused by datetime itself
        return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=VIETNAM)
    except ValueError:
        return None


def format_time(moment: datetime) -> str:
    """An instant in list answers (``created_time``, ``sentTime``, ``receivedTime`` ...): ISO 8601 in Vietnam
    time, to the millisecond (``2026-11-28T23:35:28.419+07:00``), so that a downstream gateway that records the
    received instant from it loses no more than that. The SDK keeps these fields as strings without parsing
    them (neither VXP.md nor the captures fix a form). A naive datetime is refused: its zone is unknown."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("format_time needs an aware datetime")
    return moment.astimezone(VIETNAM).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------- answers


def _refuse_null(value: object, where: str) -> None:
    # The SDK calls getAsString() on the fields it reads: a JSON null throws inside it and the whole
    # call returns null (or, for getReceivedEdocList, an empty OK list): a silent loss.
    if value is None:
        raise ValueError(f"an answer field is null: {where}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_null(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _refuse_null(item, f"{where}[{position}]")


def answer(*, ok: bool, error_code: str = "0", error_desc: str = "", **fields: object) -> bytes:
    """The JSON body of every answer: ``{"status": "OK"|"FAIL", "ErrorCode", "ErrorDesc", **fields}``.

    Serialised in ASCII (every non-ASCII character as ``\\uXXXX``): the SDK reads the sendEdoc answer as
    US-ASCII. ``ErrorCode`` is "0" exactly when ``ok`` (the SDK reads ``data`` only when it is "0"); no
    field may be null (the SDK would drop the whole answer)."""
    clash = sorted(set(fields) & set(_ANSWER_KEYS))
    if clash:
        raise ValueError(f"answer fields may not override {clash}")
    if ok != (error_code == "0"):
        raise ValueError('ErrorCode is "0" exactly when the answer is OK')
    _refuse_null(fields, "answer")
    body: dict[str, object] = {
        "status": "OK" if ok else "FAIL",
        "ErrorCode": error_code,
        "ErrorDesc": error_desc,
        **fields,
    }
    return json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def failure(error: GatewayError, **fields: object) -> bytes:
    """A refusal as the SDK reads it: FAIL, ``ErrorCode`` = the problem type's slug, ``ErrorDesc`` = its
    detail. sendEdoc passes ``DocId=""``: without a DocId the SDK returns every field null."""
    return answer(ok=False, error_code=error.slug, error_desc=error.detail, **fields)
