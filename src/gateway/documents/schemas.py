"""The document view (``GET /v1/documents…``): fixed names from the HTTP contract, fields added freely."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

#: a delivery's life: push ``pending → in_flight → delivered`` (``retry_wait`` between attempts, ``dead`` when
#: given up); pull ``pending → fetched → delivered | failed``; upstream ``pending → in_flight → forwarded →
#: delivered`` (``forwarded``: the upstream axis accepted the forward; ``delivered`` once it reports the
#: recipient's received instant), or ``retry_wait`` / ``dead`` like push
DeliveryState = Literal["pending", "in_flight", "retry_wait", "delivered", "dead", "fetched", "failed", "forwarded"]
DeliveryMode = Literal["push", "pull", "upstream"]


class RecipientView(BaseModel):
    code: str
    state: DeliveryState = Field(
        description="pending, in_flight, retry_wait, delivered, dead (push and upstream); pending, fetched, "
        "delivered, failed (pull); forwarded (upstream: the upstream axis accepted the forward, the recipient "
        "has not yet received it)"
    )
    mode: DeliveryMode = Field(
        description="push or pull: a local recipient, delivered by this gateway; upstream: a recipient reached "
        "through the upstream axis, to which this gateway forwards the document"
    )
    attempts: int
    received_at: datetime | None = Field(
        description="the recipient's received instant (Điều 11.2); for mode upstream, as the upstream axis "
        "reported it"
    )
    status: str | None = Field(description="the latest edXML status code this recipient reported, or null")
    delivery_id: str
    upstream_doc_id: str | None = Field(
        description="mode upstream: the upstream axis's DocId of the forward, once it accepted it; null otherwise"
    )
    forwarded_at: datetime | None = Field(
        description="mode upstream: the instant the upstream axis accepted the forward (the hand-off instant); "
        "null otherwise"
    )


class AttachmentView(BaseModel):
    content_id: str
    name: str
    content_type: str | None
    sha256: str
    size: int
    pdf_signature: Literal["none", "valid", "invalid"] | None


class DeviationView(BaseModel):
    code: str = Field(description="a stable deviation code (README, Interoperability)", examples=["legacy-signature"])
    where: str = Field(description="where in the envelope it was seen", examples=["edXMLHeader/Signature"])


class StatusRef(BaseModel):
    id: str = Field(description="the gateway id of the status message")
    sender: str = Field(description="the agency the status is about or from (the recipient, or the sender for 13)")
    status_code: str
    sent_at: datetime
    automatic: bool = Field(
        description="written by the gateway when the document arrived (the received instant's evidence), "
        "not by the agency's software"
    )


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
    refers_to: str | None = Field(description="for a status: the document it is about; for a recall, update or "
                                  "replacement (business_doc_type 1-3): the original document")
    envelope_sha256: str
    ledger_seq: int
    ledger_hash: str
    attachments: list[AttachmentView]
    recipients: list[RecipientView]
    deviations: list[DeviationView] = Field(
        description="what the envelope does differently from the standard, tolerated and recorded (README, "
        "Interoperability)"
    )
    automatic: bool = Field(description="a status 01 the gateway wrote itself when the document arrived")
    arrived_from_upstream: bool = Field(
        description="the message arrived from the upstream axis (fetched by the poller) rather than being "
        "submitted here by a local agency's software"
    )
    upstream_doc_id: str | None = Field(
        description="for a message that arrived from the upstream axis: the upstream's DocId of it; null for a "
        "message submitted here"
    )
    statuses: list[StatusRef] = Field(
        description="the status messages about this document, oldest first (the gateway's own 01 and the "
        "agencies' own statuses alike, told apart by automatic)"
    )


class DocumentList(BaseModel):
    items: list[DocumentView] = Field(description="newest first (sent instant, then id, descending)")
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page; null on the "
                                                              "last page")


class DocumentSummary(BaseModel):
    """One row of a document search (``gateway.documents.search.search_documents``): what a result list shows,
    read in a few queries for a whole page."""

    id: str = Field(description="the gateway document id")
    document_id: str = Field(description="the edXML DocumentId")
    kind: Literal["document", "status"]
    sender: str
    subject: str | None
    code: str | None
    sent_at: datetime
    recipients: list[str] = Field(description="the recipients' agency codes, in code order")
    states: dict[str, DeliveryState] = Field(description="per recipient code: its delivery's state")
    status_code: str | None
    multipart: bool
    deviations: int = Field(description="how many deviations were recorded for the envelope")


class ProofEntry(BaseModel):
    """A ledger entry as stored (its hash is recomputed from these fields, gateway.ledger.chain), with its
    inclusion proof in the tree of ``tree_size`` leaves (RFC 9162 §2.1.3)."""

    seq: int
    recorded_at: str = Field(description="canonical UTC instant: the sent instant of the acceptance entry, the "
                                         "received instant of a delivered entry")
    type: str
    actor: str
    document: str | None
    document_id: str | None
    sender: str | None
    recipient: str | None
    prev_hash: str
    details: str = Field(description="the details JSON text exactly as stored")
    hash: str
    proof: list[str]


class ProofTimestamp(BaseModel):
    token: str = Field(description="base64 DER RFC 3161 TimeStampToken over SHA-256 of the checkpoint note")


class ProofBundle(BaseModel):
    """Everything needed to check offline that the document was sent (and received) at the ledger's instants:
    verify it with `gateway verify-proof BUNDLE --gateway-cert PEM` (README, "The ledger")."""

    format: Literal["gateway-proof-bundle/v1"]
    document: str
    receipt: str = Field(description="base64 of the signed receipt XML intake gave")
    entries: list[ProofEntry] = Field(description="the acceptance entry first, then each recipient's "
                                                  "delivery.delivered entry inside the checkpoint")
    tree_size: int
    checkpoint: str = Field(description="the C2SP signed note of the checkpoint of tree_size entries")
    gateway_certificate: str = Field(description="PEM; pin it out of band (GET /v1/gateway/certificate)")
    timestamp: ProofTimestamp | None
    pending: list[str] = Field(description="recipients with no delivered entry inside the checkpoint yet")
