"""Forwarding to the upstream axis, as the delivery worker sees it: one call per document, its outcome typed.

A delivery of mode ``upstream`` is carried by forwarding the document's original bytes to the upstream axis
(VXP sendEdoc), once per document however many of its recipients are reached there: the upstream fans out.
The worker claims a document's upstream deliveries together (:mod:`gateway.delivery.repository`), calls
:meth:`Forwarder.forward` outside any transaction, and records the outcome on every one of them:

- ``forwarded``: the upstream accepted the document and named it ``upstream_doc_id``; that answer's arrival
  is the hand-off instant (``forwarded_at``, ledger ``upstream.forwarded``). The delivery is ``delivered``
  once the upstream reports the recipient's received instant (getSentEdocList, asked by the upstream poller);
- ``retry``: the upstream could not be reached or answered "not now"; retried with the push backoff (the
  same attempts and age bounds, the state visible per delivery);
- ``dead``: the upstream refused it for good; visible to operators and re-queueable like a dead push.

The implementation (:class:`gateway.upstream.forwarder.UpstreamForwarder`) lives with the upstream client;
this package only knows the protocol below, so that delivery does not depend on the upstream package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

ForwardOutcome = Literal["forwarded", "retry", "dead"]


@dataclass(frozen=True)
class ForwardResult:
    outcome: ForwardOutcome
    #: the upstream's DocId of the forward (``forwarded`` only)
    upstream_doc_id: str | None
    #: for the ledger and ``last_error``: what went wrong (empty when forwarded)
    error: str
    http_status: int | None
    #: the instant the upstream's answer arrived
    at: datetime
    duration: float


class Forwarder(Protocol):
    @property
    def upstream(self) -> str:
        """The upstream's base URL (named in the ledger)."""

    async def forward(self, data: bytes, sender: str, kind: str) -> ForwardResult:
        """Forward ``data`` (a document, or a status when ``kind`` is ``status``) from ``sender``; never raises
        for anything the upstream does."""
