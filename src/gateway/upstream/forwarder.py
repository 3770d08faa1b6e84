"""The delivery worker's forwarder (:class:`gateway.delivery.forward.Forwarder`) over the upstream client.

One call per document: sendEdoc of the original bytes, ``messagetype`` ``edoc`` for a document and ``status``
for a status message, ``from`` the sending agency. How each failure of :mod:`gateway.upstream.errors` is read:

- :class:`UpstreamUnavailable` (no connection, a timeout, a 5xx/429/408 without JSON): ``retry``. When the
  request may have reached the upstream (``request_sent``), the retry may hand it the same bytes twice: the
  gateway's own face answers an identical resubmission with the DocId it gave the first time, and the axis
  SDK's software resends the same way after a timeout;
- :class:`UpstreamRefused` (``FAIL``): ``retry`` when it says "not now" (an HTTP 408, 429 or 5xx, or an
  ``ErrorCode`` of :data:`RETRYABLE_CODES`), else ``dead`` (``refused``, with the upstream's code and text),
  which an operator sees and can re-queue;
- :class:`UpstreamAnswerInvalid` (an answer that cannot be read: no DocId, an HTML page): ``retry``, bounded
  by the same attempts and age as every delivery; it never counts as forwarded.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from gateway.delivery.forward import ForwardOutcome, ForwardResult
from gateway.upstream.client import UpstreamClient
from gateway.upstream.errors import UpstreamAnswerInvalid, UpstreamRefused, UpstreamUnavailable

#: ErrorCodes of a FAIL that mean "not now" (the gateway's own face's slugs for those)
RETRYABLE_CODES = frozenset({
    "too-many-requests", "overloaded", "database-unavailable", "service-unavailable", "upstream-unavailable",
})


def _retryable(error: UpstreamRefused) -> bool:
    status = error.http_status
    return error.error_code in RETRYABLE_CODES or status in (408, 429) or (status is not None and status >= 500)


class UpstreamForwarder:
    def __init__(self, client: UpstreamClient) -> None:
        self.client = client

    @property
    def upstream(self) -> str:
        return self.client.base_url

    async def forward(self, data: bytes, sender: str, kind: str) -> ForwardResult:
        started = time.perf_counter()

        def result(outcome: ForwardOutcome, doc_id: str | None, error: str, http_status: int | None) -> ForwardResult:
            return ForwardResult(outcome, doc_id, error, http_status,
                                 datetime.now(UTC), time.perf_counter() - started)

        try:
            doc_id = await self.client.send_edoc(data, sender, "status" if kind == "status" else "edoc")
        except UpstreamUnavailable as error:
            return result("retry", None, f"upstream unavailable: {error.detail}", error.http_status)
        except UpstreamRefused as error:
            text = f"upstream refused ({error.error_code or 'no ErrorCode'}): {error.error_desc}"[:900]
            return result("retry" if _retryable(error) else "dead", None, text, error.http_status)
        except UpstreamAnswerInvalid as error:
            return result("retry", None, f"upstream answer unreadable: {error.detail}", error.http_status)
        return result("forwarded", doc_id, "", 200)
