"""Every way a call to the upstream axis can fail, as types (no bare ``httpx`` error escapes the client).

The gateway calls its upstream (another gateway's ``/vxp`` face, or the national axis) with
:class:`gateway.upstream.client.UpstreamClient`. What a caller does next depends only on which of these it
got, so each says how to read it:

- :class:`UpstreamUnavailable`: the upstream could not be asked, or gave no readable answer in a way that
  says "not now" (connection refused, a timeout, a 5xx/429/408 answer that is not JSON). Retryable.
  ``request_sent`` is False when the request surely never reached the upstream (the connection was never
  made) and True when it may have: after a sendEdoc that timed out, the upstream may hold the document.
- :class:`UpstreamRefused`: the upstream answered ``FAIL`` (or an ``ErrorCode`` other than ``0``). Its
  ``error_code`` and ``error_desc`` are the answer's ``ErrorCode`` and ``ErrorDesc`` as text; whether to
  retry is the caller's decision (``too-many-requests`` is worth a retry; ``vxp-hmac-invalid`` is not).
- :class:`UpstreamAnswerInvalid`: an answer the client cannot read where one is required (an HTML page, an
  empty body, a sendEdoc ``OK`` without a ``DocId``, a getEdoc without readable base64). Never a success.

The tree::

    GatewayError                                     (gateway.problems)
    └── UpstreamError             502 upstream-error            (never raised itself)
        ├── UpstreamUnavailable   503 upstream-unavailable      retryable; request_sent
        ├── UpstreamRefused       502 upstream-refused          error_code, error_desc
        └── UpstreamAnswerInvalid 502 upstream-answer-invalid   the answer cannot be read

Every one carries, as problem extensions, ``operation`` (the VXP operation called) and ``http_status``
(the answer's HTTP status, None when there was no answer): the axis SDK ignores the status and reads only
the body, and so does the client, but an operator reading a failure needs it. ``detail`` never holds the
secret, a header or the body; ``error_desc`` is the upstream's own text, cut to a bounded length.

None of these is answered over the gateway's HTTP API yet: they are raised to the forwarder and the poller.
"""

from __future__ import annotations

from typing import Any

from gateway.problems import GatewayError

__all__ = ["UpstreamAnswerInvalid", "UpstreamError", "UpstreamRefused", "UpstreamUnavailable"]

#: the most of an upstream's ErrorCode / ErrorDesc kept (an upstream's text is not trusted to be short)
MAX_CODE_CHARS = 200
MAX_DESC_CHARS = 2000


class UpstreamError(GatewayError):
    """A call to the upstream axis failed. Never raised itself: catch it for "any upstream failure"."""

    status = 502
    slug = "upstream-error"
    title = "The call to the upstream axis failed"

    def __init__(self, detail: str | None = None, *, operation: str, http_status: int | None = None,
                 **extensions: Any) -> None:
        super().__init__(detail, operation=operation, http_status=http_status, **extensions)
        self.operation = operation
        self.http_status = http_status


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset, a timeout, or a 5xx/429/408 answer without a JSON body: retry later."""

    status = 503
    slug = "upstream-unavailable"
    title = "The upstream axis is unavailable"

    def __init__(self, detail: str | None = None, *, operation: str, http_status: int | None = None,
                 request_sent: bool) -> None:
        super().__init__(detail, operation=operation, http_status=http_status, request_sent=request_sent)
        self.request_sent = request_sent


class UpstreamRefused(UpstreamError):
    """The upstream answered FAIL: ``error_code`` is its ``ErrorCode`` ("" when it gave none), ``error_desc``
    its ``ErrorDesc`` (both as text, bounded)."""

    status = 502
    slug = "upstream-refused"
    title = "The upstream axis refused the call"

    def __init__(self, *, operation: str, http_status: int | None, error_code: str, error_desc: str) -> None:
        error_code = error_code[:MAX_CODE_CHARS]
        error_desc = error_desc[:MAX_DESC_CHARS]
        super().__init__(f"{operation}: the upstream answered FAIL ({error_code or 'no ErrorCode'})",
                         operation=operation, http_status=http_status, error_code=error_code,
                         error_desc=error_desc)
        self.error_code = error_code
        self.error_desc = error_desc


class UpstreamAnswerInvalid(UpstreamError):
    """The upstream's answer cannot be read as the answer the operation requires; never taken as success."""

    status = 502
    slug = "upstream-answer-invalid"
    title = "The upstream axis gave an answer that cannot be read"
