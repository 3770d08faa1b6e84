"""The verifier's fast encoding writes exactly the reference bytes, for hostile strings too, and an
unreadable row fails verification rather than being interpreted."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest

from gateway.ledger.chain import (
    GENESIS_PREV_HASH,
    UNREADABLE_INSTANT,
    ChainBroken,
    ChainRow,
    ChainWalker,
    EntryFields,
    canonical_json,
    entry_hash,
    format_instant,
    row_hash,
)
from gateway.ledger.repository import _sqlite_instant

HOSTILE = [
    'quote " and backslash \\ and slash /',
    "controls \x00\x01\x08\t\n\x0b\x0c\r\x1f and delete \x7f",
    "line separators \u2028 \u2029",
    "astral \U0001d518\U0001d505 \U0001f1fb\U0001f1f3",
    unicodedata.normalize("NFD", "Ủy ban nhân dân"),
    unicodedata.normalize("NFC", "Ủy ban nhân dân"),
    '","injected":"',
    "</script><!--",
    "",
]


def chain(values: list[str | None]) -> list[tuple[EntryFields, str]]:
    out: list[tuple[EntryFields, str]] = []
    prev = GENESIS_PREV_HASH
    for seq, value in enumerate(values):
        fields = EntryFields(seq, datetime(2026, 11, 22, 3, 4, 5, seq, tzinfo=UTC), value or "t", value or "actor",
                             value, value, value, value, prev, canonical_json({"v": value, "n": [seq, 1.5]}))
        digest = entry_hash(fields)
        out.append((fields, digest))
        prev = digest
    return out


def raw(fields: EntryFields, digest: str) -> ChainRow:
    return (fields.seq, format_instant(fields.recorded_at), fields.type, fields.actor, fields.document,
            fields.document_id, fields.sender, fields.recipient, fields.prev_hash, fields.details, digest)


def test_fast_walker_agrees_with_the_reference_encoding_on_hostile_strings() -> None:
    entries = chain([*HOSTILE, None])
    rows = [raw(f, h) for f, h in entries]
    assert all(row_hash(row) == row[10] for row in rows)
    walker = ChainWalker()
    walker.feed(rows[:4])
    walker.feed(rows[4:])
    assert walker.next_seq == len(rows)
    assert walker.prev_hash == entries[-1][1]


def test_nfc_and_nfd_spellings_hash_differently() -> None:
    # The ledger hashes what it was given; normalising would silently change a recorded value.
    nfd, nfc = chain([HOSTILE[4]]), chain([HOSTILE[5]])
    assert nfd[0][1] != nfc[0][1]


@pytest.mark.parametrize(("position", "value", "reason"), [
    (2, 12345, "unreadable"),  # a number where text belongs (possible in SQLite)
    (4, b"bytes", "unreadable"),
    (1, UNREADABLE_INSTANT, "does not match"),
    (9, '{"v":1}', "does not match"),
])
def test_unreadable_or_altered_values_fail_verification(position: int, value: object, reason: str) -> None:
    rows = [raw(f, h) for f, h in chain(["a", "b", "c"])]
    altered = list(rows[1])
    altered[position] = value
    rows[1] = tuple(altered)  # type: ignore[assignment]  # deliberately ill-typed: what a tampered row holds
    with pytest.raises(ChainBroken, match=reason) as broken:
        ChainWalker().feed(rows)
    assert broken.value.seq == 1


def test_row_before_genesis_is_out_of_sequence() -> None:
    rows = [raw(f, h) for f, h in chain(["a", "b"])]
    intruder = (-1, *rows[0][1:])
    with pytest.raises(ChainBroken, match="out of sequence") as broken:
        ChainWalker().feed([intruder, *rows])  # type: ignore[list-item]
    assert broken.value.seq == 0


@pytest.mark.parametrize(("stored", "canonical"), [
    ("2026-11-22 03:04:05.000007", "2026-11-22T03:04:05.000007Z"),
    ("2026-11-22 03:04:05", UNREADABLE_INSTANT),  # not the form SQLAlchemy writes: never interpreted
    ("2026-11-22 03:04:05.000007+07:00", UNREADABLE_INSTANT),
    ("2026-02-30 03:04:05.000007", UNREADABLE_INSTANT),
    ("2026-11-22T03:04:05.000007", UNREADABLE_INSTANT),
    (20261122, UNREADABLE_INSTANT),
])
def test_sqlite_instants_are_read_only_in_the_exact_stored_form(stored: object, canonical: str) -> None:
    assert _sqlite_instant(stored) == canonical


def test_an_instant_going_back_in_time_fails_verification() -> None:
    # Queries by time turn a range into a seq range; that needs instants that never go backwards.
    entries = chain(["a", "b", "c"])
    earlier = EntryFields(2, datetime(2026, 11, 22, 3, 4, 4, tzinfo=UTC), *(
        getattr(entries[2][0], name) for name in ("type", "actor", "document", "document_id", "sender", "recipient",
                                                  "prev_hash", "details")))
    rows = [raw(f, h) for f, h in entries[:2]] + [raw(earlier, entry_hash(earlier))]
    with pytest.raises(ChainBroken, match="earlier than the entry before") as broken:
        ChainWalker().feed(rows)
    assert broken.value.seq == 2
