"""The hash chain, pure: canonical encoding, entry hashes and chain verification.

Canonical encoding of an entry (version 1). The entry hash is the lowercase hex SHA-256 of the UTF-8
bytes of the JSON array::

    [1, seq, recorded_at, type, actor, document, document_id, sender, recipient, prev_hash, details]

written with no insignificant whitespace, strings escaped as by ``json.dumps(..., ensure_ascii=False)``,
``null`` for absent values, ``recorded_at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, always six digits of
microseconds), and ``details`` as its canonical JSON (object keys sorted, no whitespace, no NaN). The
details column stores exactly that canonical text, so verification splices it in without re-parsing.

Genesis. The first entry has ``seq`` 0, type ``ledger.genesis``, actor ``gateway`` and
``prev_hash`` = 64 zeros; its details name the encoding version. Every later entry's ``prev_hash`` is
the hash of the entry before it and ``seq`` increases by exactly one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ENCODING_VERSION = 1
GENESIS_PREV_HASH = "0" * 64
GENESIS_TYPE = "ledger.genesis"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_instant(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError("ledger instants must be timezone-aware")
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class EntryFields:
    """What an entry hash covers (everything but the hash itself)."""

    seq: int
    recorded_at: datetime
    type: str
    actor: str
    document: str | None
    document_id: str | None
    sender: str | None
    recipient: str | None
    prev_hash: str
    details: str  # canonical JSON text


def encode(fields: EntryFields) -> bytes:
    head = json.dumps(
        [
            ENCODING_VERSION,
            fields.seq,
            format_instant(fields.recorded_at),
            fields.type,
            fields.actor,
            fields.document,
            fields.document_id,
            fields.sender,
            fields.recipient,
            fields.prev_hash,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return (head[:-1] + "," + fields.details + "]").encode("utf-8")


def entry_hash(fields: EntryFields) -> str:
    return hashlib.sha256(encode(fields)).hexdigest()


def genesis_details() -> Mapping[str, Any]:
    return {"encoding": ENCODING_VERSION, "hash": "sha256"}


@dataclass(frozen=True, slots=True)
class StoredEntry:
    fields: EntryFields
    hash: str


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    ok: bool
    size: int
    first_bad_seq: int | None
    reason: str | None = None


def verify_entries(
    entries: Iterable[StoredEntry], *, expected_seq: int = 0, expected_prev_hash: str = GENESIS_PREV_HASH
) -> ChainVerdict:
    """Recompute the chain from ``expected_seq`` on; the first entry that breaks it is named.

    A deleted row shows as a gap in ``seq`` (or a ``prev_hash`` that no longer matches); an edited row as
    a hash mismatch; swapped rows as a ``prev_hash`` mismatch at the first of them.
    """
    count = 0
    seq = expected_seq
    prev = expected_prev_hash
    for entry in entries:
        f = entry.fields
        if f.seq != seq:
            return ChainVerdict(False, count, seq, "sequence gap")
        if f.prev_hash != prev:
            return ChainVerdict(False, count, f.seq, "previous hash does not match")
        if hashlib.sha256(encode(f)).hexdigest() != entry.hash:
            return ChainVerdict(False, count, f.seq, "entry hash does not match its content")
        prev = entry.hash
        seq += 1
        count += 1
    return ChainVerdict(True, count, None)
