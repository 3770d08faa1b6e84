"""What a document's signed receipt states, read from its stored rows (intake gives it; the proof bundle repeats
it). The same rows always give the same receipt bytes (RSA PKCS#1 v1.5 signing is deterministic)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.documents.models import Attachment, Delivery, Document
from gateway.envelope import ReceiptAttachment, ReceiptData


def receipt_data_of(
    document: Document, attachments: Sequence[Attachment], deliveries: Sequence[Delivery]
) -> ReceiptData:
    """What a receipt states: the document's row, its attachments in manifest order, its recipients."""
    return ReceiptData(
        gateway_document_id=document.id,
        document_id=document.document_id,
        sender=document.sender,
        recipients=tuple(sorted(d.recipient for d in deliveries)),
        envelope_sha256=document.envelope_sha256,
        attachments=tuple(ReceiptAttachment(a.content_id, a.name, a.sha256, a.size)
                          for a in sorted(attachments, key=lambda a: a.ordinal)),
        signed=document.signed,
        sent_at=document.sent_at,
        ledger_sequence=document.ledger_seq,
        ledger_entry_hash=document.ledger_hash,
        signer_certificate_sha256=document.signer_certificate,
        kind="status" if document.kind == "status" else "document",
    )
