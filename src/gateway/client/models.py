"""What the gateway answers, as plain typed values (read from the JSON of the HTTP contract).

Every value keeps the JSON it was read from in ``raw``, so fields the gateway adds later are reachable
without a new client release.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gateway.envelope import ReceiptData

from .errors import UnexpectedResponse

__all__ = [
    "AckResult",
    "DocumentState",
    "FetchResult",
    "InboxEntry",
    "InboxPage",
    "LedgerVerification",
    "RecipientState",
    "SavedFile",
    "SendResult",
]

def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise UnexpectedResponse(200, "an instant is missing from the answer")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UnexpectedResponse(200, "an instant in the answer is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise UnexpectedResponse(200, "an instant in the answer has no offset")
    return parsed


def _opt_instant(value: Any) -> datetime | None:
    return None if value is None else _instant(value)


def _opt_date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise UnexpectedResponse(200, f"the answer lacks {key!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RecipientState:
    """Where a document is for one recipient."""

    code: str
    state: str
    received_at: datetime | None
    #: the latest edXML status code the recipient reported, or None
    status: str | None
    mode: str | None
    delivery_id: str | None
    attempts: int | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecipientState:
        attempts = data.get("attempts")
        return cls(code=_str(data, "code"), state=_str(data, "state"),
                   received_at=_opt_instant(data.get("received_at")), status=_opt_str(data, "status"),
                   mode=_opt_str(data, "mode"),
                   delivery_id=_opt_str(data, "delivery_id"), attempts=attempts if isinstance(attempts, int) else None)

    @property
    def received(self) -> bool:
        """The received instant is fixed (Điều 11.2)."""
        return self.received_at is not None


@dataclass(frozen=True)
class DocumentState:
    """``GET /v1/documents/{id}``: a document (or status message) and, per recipient, its delivery."""

    id: str
    document_id: str
    kind: str
    sender: str
    sent_at: datetime
    signed: bool
    recipients: tuple[RecipientState, ...]
    subject: str | None = None
    code: str | None = None
    promulgation_date: date | None = None
    status_code: str | None = None
    refers_to: str | None = None
    envelope_sha256: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DocumentState:
        recipients = data.get("recipients")
        if not isinstance(recipients, list):
            raise UnexpectedResponse(200, "the document view lacks its recipients")
        return cls(
            id=_str(data, "id"), document_id=_str(data, "document_id"), kind=_opt_str(data, "kind") or "document",
            sender=_str(data, "sender"), sent_at=_instant(data.get("sent_at")), signed=bool(data.get("signed")),
            recipients=tuple(RecipientState.from_json(r) for r in recipients), subject=_opt_str(data, "subject"),
            code=_opt_str(data, "code"), promulgation_date=_opt_date(data.get("promulgation_date")),
            status_code=_opt_str(data, "status_code"), refers_to=_opt_str(data, "refers_to"),
            envelope_sha256=_opt_str(data, "envelope_sha256"), raw=dict(data),
        )

    def recipient(self, code: str) -> RecipientState:
        for r in self.recipients:
            if r.code == code:
                return r
        raise KeyError(code)

    @property
    def all_received(self) -> bool:
        return all(r.received for r in self.recipients)


@dataclass(frozen=True)
class InboxEntry:
    """One item of ``GET /v1/inbox``: a document or status waiting for the caller."""

    delivery_id: str
    id: str
    document_id: str
    kind: str
    sender: str
    sent_at: datetime
    priority: int
    state: str | None = None
    status_code: str | None = None
    refers_to: str | None = None
    multipart: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InboxEntry:
        priority = data.get("priority")
        return cls(
            delivery_id=_str(data, "delivery_id"), id=_str(data, "id"), document_id=_str(data, "document_id"),
            kind=_str(data, "kind"), sender=_str(data, "sender"), sent_at=_instant(data.get("sent_at")),
            priority=priority if isinstance(priority, int) else 0, state=_opt_str(data, "state"),
            status_code=_opt_str(data, "status_code"), refers_to=_opt_str(data, "refers_to"),
            multipart=bool(data.get("multipart")), raw=dict(data),
        )


@dataclass(frozen=True)
class InboxPage:
    items: tuple[InboxEntry, ...]
    #: the cursor of the next page, or None on the last one
    next: str | None


@dataclass(frozen=True)
class AckResult:
    """The answer to ``POST /v1/inbox/{delivery_id}/ack``."""

    delivery_id: str
    state: str
    #: the received instant, set by a ``done`` acknowledgement
    received_at: datetime | None
    #: False: a repeat of an acknowledgement already recorded
    changed: bool
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AckResult:
        return cls(delivery_id=_str(data, "delivery_id"), state=_str(data, "state"),
                   received_at=_opt_instant(data.get("received_at")), changed=bool(data.get("changed", True)),
                   raw=dict(data))


@dataclass(frozen=True)
class SendResult:
    """A document or status accepted by the gateway, with its verified, signed receipt."""

    receipt: ReceiptData
    #: the receipt XML exactly as signed by the gateway: keep it, it is the proof of sending
    receipt_xml: bytes = field(repr=False)
    #: False: an identical resubmission (the gateway answered 200 with the first receipt)
    created: bool
    #: the edXML bytes that were sent
    envelope: bytes = field(repr=False)

    @property
    def document(self) -> str:
        """The gateway's id of the accepted document (for ``document()``, statuses, the ledger)."""
        return self.receipt.gateway_document_id


@dataclass(frozen=True)
class SavedFile:
    """An attachment written to disk by :meth:`GatewayClient.fetch`."""

    content_id: str
    name: str
    path: Path
    sha256: str
    size: int
    content_type: str | None
    #: "inline" (decoded from the envelope) or "large" (a multipart part)
    kind: str


@dataclass(frozen=True)
class FetchResult:
    """A delivery downloaded, verified and written out."""

    delivery_id: str
    #: the gateway document id
    document: str
    kind: str
    sender: str
    recipient: str
    sent_at: datetime
    refers_to: str | None
    #: the original edXML bytes, unchanged
    envelope: bytes = field(repr=False)
    envelope_path: Path | None
    files: tuple[SavedFile, ...]
    #: for a status message: its code and description
    status_code: str | None = None
    description: str | None = None
    #: the SHA-256 of the certificate that signed the envelope's XML signature, if signed
    signer_certificate_sha256: str | None = None


@dataclass(frozen=True)
class LedgerVerification:
    """``GET /v1/ledger/verify``."""

    ok: bool
    size: int
    first_bad_seq: int | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LedgerVerification:
        size = data.get("size")
        bad = data.get("first_bad_seq")
        return cls(ok=data.get("ok") is True, size=size if isinstance(size, int) else 0,
                   first_bad_seq=bad if isinstance(bad, int) else None, raw=dict(data))
