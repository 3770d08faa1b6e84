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

Two implementations of the one encoding live here. :func:`encode` is the reference, written for the
reader. :class:`ChainWalker` is the verifier's hot loop over raw rows (the repository hands it
``recorded_at`` already in its canonical text form, so no datetime is built per row); it writes the same
bytes, because the JSON string escaping is the very function ``json.dumps(..., ensure_ascii=False)``
calls (``json.encoder.encode_basestring``). The tests compare the two on hostile strings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, Final

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


# One stored entry as verification reads it, every column as the database holds it, except
# ``recorded_at``, already in its canonical text form (``YYYY-MM-DDTHH:MM:SS.ffffffZ``):
# (seq, recorded_at, type, actor, document, document_id, sender, recipient, prev_hash, details, hash)
ChainRow = tuple[int, str, str, str, str | None, str | None, str | None, str | None, str, str, str]

# What the repository hands over for an instant it cannot read back exactly; it never matches a hash.
UNREADABLE_INSTANT: Final = "unreadable"


class ChainBroken(Exception):
    """The entry ``seq`` does not follow from the one before it (or is missing: then ``seq`` is the gap)."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"entry {seq}: {reason}")
        self.seq = seq
        self.reason = reason


def _quote(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def row_hash(row: ChainRow) -> str:
    """The hash of a raw row's content (the same bytes as :func:`encode`; kept slow and obvious)."""
    seq, recorded_at, type_, actor, document, document_id, sender, recipient, prev_hash, details, _ = row
    text = (
        f"[{ENCODING_VERSION},{int(seq)},{_quote(recorded_at)},{_quote(type_)},{_quote(actor)},{_quote(document)},"
        f"{_quote(document_id)},{_quote(sender)},{_quote(recipient)},{_quote(prev_hash)},{details}]"
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ChainWalker:
    """Recompute the chain over raw rows fed in ``seq`` order, batch after batch.

    :meth:`feed` raises :class:`ChainBroken` at the first entry that does not follow: a ``seq`` other than
    the next one (a deleted row shows here, named by the missing number), a ``prev_hash`` other than the
    hash of the entry before (swapped rows show here, at the first of them), a stored ``hash`` other than
    the one its content gives (an edited row), or a recorded instant earlier than the one before (append
    never writes one: queries by time rely on instants never going backwards). After a successful feed,
    ``next_seq`` is the size of the chain verified so far and ``prev_hash`` the hash of its last entry.
    """

    __slots__ = ("next_seq", "prev_hash", "prev_instant")

    def __init__(self, next_seq: int = 0, prev_hash: str = GENESIS_PREV_HASH) -> None:
        self.next_seq = next_seq
        self.prev_hash = prev_hash
        # Canonical instants are fixed-width, so text order is time order; "" precedes them all.
        self.prev_instant = ""

    def feed(self, rows: Iterable[ChainRow]) -> None:
        # The hot loop of `gateway ledger verify`: locals only, one f-string, one hash per entry.
        sha256 = hashlib.sha256
        quote = encode_basestring
        version = ENCODING_VERSION
        expected = self.next_seq
        prev = self.prev_hash
        prev_instant = self.prev_instant
        try:
            for seq, recorded_at, type_, actor, document, document_id, sender, recipient, prev_hash, details, hash_ in (
                rows
            ):
                if seq != expected:
                    if isinstance(seq, int) and seq > expected:
                        raise ChainBroken(expected, "sequence gap: this entry is missing")
                    raise ChainBroken(expected, "an entry out of sequence stands here")
                if prev_hash != prev:
                    raise ChainBroken(seq, "previous hash does not match the entry before")
                # ``prev_hash`` equals ``prev``, a hex digest this loop computed (or the genesis zeros), so it
                # needs no escaping; ``recorded_at`` is canonical text made by the repository (digits only).
                text = (
                    f'[{version},{seq},"{recorded_at}",{quote(type_)},{quote(actor)},'
                    f'{"null" if document is None else quote(document)},'
                    f'{"null" if document_id is None else quote(document_id)},'
                    f'{"null" if sender is None else quote(sender)},'
                    f'{"null" if recipient is None else quote(recipient)},"{prev}",{details}]'
                )
                if recorded_at == UNREADABLE_INSTANT or sha256(text.encode("utf-8")).hexdigest() != hash_:
                    raise ChainBroken(seq, "entry hash does not match its content")
                if recorded_at < prev_instant:
                    raise ChainBroken(seq, "recorded instant is earlier than the entry before")
                prev = hash_
                prev_instant = recorded_at
                expected += 1
        except (TypeError, ValueError, UnicodeError) as exc:
            # A value of the wrong type or an unencodable string: the row was not written by append().
            raise ChainBroken(expected, f"entry is unreadable ({type(exc).__name__})") from exc
        finally:
            self.next_seq = expected
            self.prev_hash = prev
            self.prev_instant = prev_instant
