"""The ledger's JSON shapes. Names are part of the HTTP contract (DESIGN.md): add fields, never rename."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.ledger.chain import format_instant
from gateway.ledger.checkpoint import SignedCheckpoint
from gateway.ledger.models import LedgerEntry
from gateway.ledger.verify import VerifyReport

Instant = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time"},
        examples=["2026-11-22T03:04:05.123456Z"],
        description="RFC 3339, UTC, always six digits of microseconds: the exact form the hash covers",
    ),
]
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]


def _details(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    # Never written by the gateway (details are canonical JSON objects); shown as stored, and verification
    # will name the entry.
    return {"_unreadable": text}


class LedgerEntryOut(BaseModel):
    seq: int
    recorded_at: Instant
    type: str = Field(description="an event type from gateway.ledger.events")
    actor: str = Field(description="agency:<code>, operator:<name>, console:<user> or gateway")
    document: str | None = Field(description="the gateway's document id")
    document_id: str | None = Field(description="the edXML DocumentId")
    sender: str | None
    recipient: str | None
    details: dict[str, Any] = Field(description="the details object (hashed as its canonical JSON)")
    prev_hash: Hash
    hash: Hash

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerEntryOut:
        return cls(
            seq=entry.seq,
            recorded_at=format_instant(entry.recorded_at),
            type=entry.type,
            actor=entry.actor,
            document=entry.document,
            document_id=entry.document_id,
            sender=entry.sender,
            recipient=entry.recipient,
            details=_details(entry.details),
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut]
    next: str | None = Field(description="opaque cursor for the next page (`cursor=`), null on the last page")


class VerifyOut(BaseModel):
    ok: bool
    size: int = Field(description="entries from genesis that verified; the ledger's length when ok")
    first_bad_seq: int | None = Field(description="the first entry that does not verify, null when ok (or when "
                                                  "only a checkpoint is at fault: see bad_checkpoint)")
    reason: str | None
    mode: str = Field(description="genesis: every entry recomputed; checkpoint: from the last good checkpoint")
    verified_from: int = Field(description="the seq recomputation started at")
    checkpoints_checked: int = Field(description="checkpoints whose signature and head checked out")
    bad_checkpoint: int | None = Field(description="size of the checkpoint at fault, if one is")
    latest_checkpoint: int | None
    roots_checked: int = Field(default=0, description="checkpoints whose Merkle root was recomputed from the "
                                                      "verified entries and matched")

    @classmethod
    def of(cls, report: VerifyReport) -> VerifyOut:
        return cls(
            ok=report.ok,
            size=report.size,
            first_bad_seq=report.first_bad_seq,
            reason=report.reason,
            mode=report.mode,
            verified_from=report.verified_from,
            checkpoints_checked=report.checkpoints_checked,
            roots_checked=report.roots_checked,
            bad_checkpoint=report.bad_checkpoint,
            latest_checkpoint=report.latest_checkpoint,
        )


class CheckpointOut(BaseModel):
    size: int = Field(description="entries covered: seq 0 … size-1")
    head_hash: Hash = Field(description="hash of entry size-1")
    signed_at: Instant
    algorithm: str = Field(examples=["rsa-pkcs1v15-sha256"],
                           description="rsa-pkcs1v15-sha256 | ecdsa-p256-sha256 | ecdsa-p384-sha384 | ed25519")
    signature: str = Field(description="base64 (RFC 4648 §4) signature over `statement`")
    certificate_sha256: Hash = Field(description="SHA-256 of the DER of the signing certificate "
                                                 "(GET /v1/gateway/certificate)")
    statement: str = Field(description="the exact signed text (UTF-8 = ASCII), rebuilt from the fields above: "
                                       "'gateway-ledger-checkpoint/v1\\nsize <size>\\nhead <head_hash>\\n"
                                       "time <signed_at>\\n'")
    root_hash: Hash | None = Field(default=None, description="the root of the ledger's Merkle tree (RFC 9162; "
                                   "leaf i = entry seq i, leaf data = its 32-byte hash) at `size`; null for a "
                                   "checkpoint signed before the tree existed")

    note: str | None = Field(default=None, description="the same checkpoint as a C2SP signed note "
                             "(c2sp.org/tlog-checkpoint: origin, size, base64 root, then the gateway's signature "
                             "line; GET /v1/ledger/checkpoint serves it as text); null before the Merkle tree")

    @classmethod
    def of(cls, checkpoint: SignedCheckpoint, root_hash: str | None = None, note: str | None = None
           ) -> CheckpointOut:
        return cls(
            root_hash=root_hash,
            note=note,
            size=checkpoint.size,
            head_hash=checkpoint.head_hash,
            signed_at=format_instant(checkpoint.signed_at),
            algorithm=checkpoint.algorithm,
            signature=checkpoint.signature,
            certificate_sha256=checkpoint.certificate_sha256,
            statement=checkpoint.statement.decode("ascii"),
        )


class CheckpointPage(BaseModel):
    items: list[CheckpointOut]
    next: str | None


class InclusionProofOut(BaseModel):
    """RFC 9162 §2.1.3: the entry's leaf is in the tree of ``size`` leaves whose root is ``root_hash``."""

    seq: int = Field(description="the entry (leaf index)")
    size: int = Field(description="the tree size the proof is for (a checkpointed size)")
    entry_hash: Hash = Field(description="the entry's chain hash: the leaf data")
    leaf_hash: Hash = Field(description="SHA-256(0x00 || entry hash bytes)")
    root_hash: Hash
    proof: list[Hash] = Field(description="the audit path, leaf to root (RFC 9162 §2.1.3.1)")


class ConsistencyProofOut(BaseModel):
    """RFC 9162 §2.1.4: the tree of ``from_size`` leaves is a prefix of the tree of ``to_size`` leaves."""

    from_size: int
    to_size: int
    from_root: Hash
    to_root: Hash
    proof: list[Hash] = Field(description="RFC 9162 §2.1.4.1 PROOF(from_size, D[to_size])")


class WitnessIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verifier_key: str = Field(max_length=2000, description="C2SP verifier key: <name>+<key ID hex>+<base64 of the "
                                                           "type byte and public key> (Ed25519 or ECDSA)")


class WitnessOut(BaseModel):
    name: str
    verifier_key: str
    added_at: datetime
