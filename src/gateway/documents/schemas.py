"""The document view (``GET /v1/documents…``): fixed names from the HTTP contract, fields added freely."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

DeliveryState = Literal["pending", "in_flight", "retry_wait", "delivered", "dead", "fetched", "failed"]


class RecipientView(BaseModel):
    code: str
    state: DeliveryState
    mode: Literal["push", "pull"]
    attempts: int
    received_at: datetime | None
    status: str | None = Field(description="the latest edXML status code this recipient reported, or null")
    delivery_id: str


class AttachmentView(BaseModel):
    content_id: str
    name: str
    content_type: str | None
    sha256: str
    size: int
    pdf_signature: Literal["none", "valid", "invalid"] | None


class DocumentView(BaseModel):
    id: str = Field(description="the gateway document id")
    document_id: str = Field(description="the edXML DocumentId")
    kind: Literal["document", "status"]
    sender: str
    sent_at: datetime
    sent_at_local: datetime = Field(description="the sent instant in Asia/Ho_Chi_Minh (+07:00)")
    signed: bool
    subject: str | None
    type_name: str | None
    code: str | None
    promulgation_date: date | None
    priority: int
    business_doc_type: int
    status_code: str | None
    refers_to: str | None
    envelope_sha256: str
    ledger_seq: int
    ledger_hash: str
    attachments: list[AttachmentView]
    recipients: list[RecipientView]


class DocumentList(BaseModel):
    items: list[DocumentView]
