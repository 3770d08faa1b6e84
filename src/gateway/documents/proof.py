"""A document's offline proof bundle (issue 18): its receipt, its ledger entries, their inclusion proofs and the
signed checkpoint they are proven against — everything a court, an auditor or the sender needs to check, years
later and without the gateway, that the document was sent (and received) at the instants the ledger fixed.

The bundle (format ``gateway-proof-bundle/v1``, verified by :func:`gateway.ledger.bundle.verify_bundle` and
``gateway verify-proof``):

- ``receipt``: the signed receipt intake gave (rebuilt from the stored rows: the same bytes);
- ``entries``: the message's acceptance entry (its instant is the sent instant, Điều 11.1), then each
  recipient's ``delivery.delivered`` entry (the received instant, Điều 11.2), every field as stored, each with
  its inclusion proof in the tree of ``tree_size`` leaves;
- ``checkpoint``: the C2SP signed note of the latest checkpoint (``tree_size`` entries, its Merkle root),
  ``gateway_certificate`` its signer;
- ``timestamp``: the RFC 3161 token over SHA-256 of that checkpoint's note, once the authority gave it (null
  without ``GATEWAY_TSA_URL``, or until then);
- ``pending``: recipients whose delivered entry is not inside the checkpoint yet (completed by a later bundle).

A bundle exists once a checkpoint covers the acceptance entry: before that the answer is the 422
``ledger-proof-unavailable`` that says when to ask again.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.documents.receipts import receipt_data_of
from gateway.documents.repository import DocumentRepository
from gateway.documents.service import DocumentService
from gateway.envelope import build_receipt
from gateway.ledger import tree
from gateway.ledger.chain import format_instant
from gateway.ledger.errors import ProofUnavailable
from gateway.ledger.models import LedgerEntry
from gateway.ledger.repository import CheckpointRepository, LedgerRepository
from gateway.principal import Principal
from gateway.signing import GatewayKey

FORMAT = "gateway-proof-bundle/v1"
DELIVERED = "delivery.delivered"


def _entry(entry: LedgerEntry, proof: list[bytes]) -> dict[str, Any]:
    return {
        "seq": entry.seq, "recorded_at": format_instant(entry.recorded_at), "type": entry.type,
        "actor": entry.actor, "document": entry.document, "document_id": entry.document_id,
        "sender": entry.sender, "recipient": entry.recipient, "prev_hash": entry.prev_hash,
        "details": entry.details, "hash": entry.hash, "proof": [p.hex() for p in proof],
    }


class ProofBundles:
    def __init__(self, session: AsyncSession, key: GatewayKey) -> None:
        self.session = session
        self.key = key

    async def bundle(self, document_id: str, principal: Principal) -> dict[str, Any]:
        document = await DocumentService(self.session).visible(document_id, principal)
        checkpoint = await CheckpointRepository(self.session).latest()
        if checkpoint is None or checkpoint.note is None or checkpoint.root_hash is None:
            raise ProofUnavailable("no checkpoint with a Merkle root has been signed yet: ask again after the next")
        size = checkpoint.size
        if document.ledger_seq >= size:
            raise ProofUnavailable(f"the document's ledger entry {document.ledger_seq} is not yet covered by a "
                                   f"checkpoint (the latest covers {size} entries): ask again after the next one")
        ledger = LedgerRepository(self.session)
        accepted = await ledger.get(document.ledger_seq)
        assert accepted is not None  # the ledger is append-only and the document's entry committed with it
        delivered = list(await ledger.of_document(document.id, DELIVERED, size))
        repo = DocumentRepository(self.session)
        attachments, deliveries = await repo.attachments(document.id), await repo.deliveries(document.id)
        entries = []
        for entry in (accepted, *delivered):
            entries.append(_entry(entry, await tree.inclusion_proof(self.session, entry.seq, size)))
        receipt = await asyncio.to_thread(
            build_receipt, receipt_data_of(document, attachments, deliveries),
            self.key.private_key, self.key.certificate,  # type: ignore[arg-type]
        )
        received = {e.recipient for e in delivered}
        stamp = await CheckpointRepository(self.session).timestamp(size)
        return {
            "format": FORMAT,
            "document": document.id,
            "receipt": base64.b64encode(receipt).decode("ascii"),
            "entries": entries,
            "tree_size": size,
            "checkpoint": checkpoint.note,
            "gateway_certificate": self.key.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "timestamp": {"token": stamp.token} if stamp is not None else None,
            "pending": sorted(d.recipient for d in deliveries if d.recipient not in received),
        }
