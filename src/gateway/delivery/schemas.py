"""Inbox, acknowledgement and delivery documents: the inbox names are fixed by the HTTP contract."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.documents.schemas import DeliveryState


class InboxItem(BaseModel):
    delivery_id: str
    id: str = Field(description="the gateway document id (the idempotency key)")
    document_id: str = Field(description="the edXML DocumentId (for a status: the document it is about)")
    kind: Literal["document", "status"]
    sender: str = Field(description="for a status: the agency reporting it")
    sent_at: datetime
    priority: int = Field(description="0 Thường, 1 Khẩn, 2 Thượng khẩn, 3 Hỏa tốc, 4 Hỏa tốc hẹn giờ")
    state: Literal["pending", "fetched"]
    status_code: str | None = Field(description="for a status: its edXML StatusCode")
    refers_to: str | None = Field(description="for a status: the gateway id of the document it is about; for a "
                                  "recall, update or replacement (BussinessDocType 1-3): the original's")
    envelope_sha256: str
    multipart: bool = Field(description="true: the download is multipart/form-data (envelope + large parts)")


class Inbox(BaseModel):
    items: list[InboxItem]
    next: str | None = Field(description="cursor for the next page, or null")


class Ack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Literal["done", "fail"]
    reason: str | None = Field(default=None, min_length=1, max_length=1000,
                               description="why the recipient's system could not take it (required with fail)")

    @model_validator(mode="after")
    def _reason_with_fail(self) -> Ack:
        if self.result == "fail" and not (self.reason and self.reason.strip()):
            raise ValueError("a fail acknowledgement needs a reason")
        return self


class AckOut(BaseModel):
    delivery_id: str
    state: DeliveryState
    received_at: datetime | None = Field(description="the received instant (set by done)")
    changed: bool = Field(description="false: a repeat of an acknowledgement already recorded")


class Requeue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class DeliveryOut(BaseModel):
    id: str
    document: str
    recipient: str
    mode: Literal["push", "pull", "upstream"]
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    received_at: datetime | None
    last_error: str | None
    requeued_at: datetime | None


class DeliverySummary(BaseModel):
    """One row of a delivery search (``GET /v1/deliveries``, ``gateway.delivery.search``)."""

    id: str
    document: str = Field(description="the gateway document id")
    document_id: str = Field(description="the document's edXML DocumentId")
    sender: str
    recipient: str
    mode: Literal["push", "pull", "upstream"]
    state: DeliveryState
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime = Field(description="the last change of state (the order of the listing)")
    received_at: datetime | None


class DeliveryList(BaseModel):
    items: list[DeliverySummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")
