"""Fixed test vectors of the ledger's entry hash (canonical encoding version 1).

THESE ARE THE PUBLISHED v1 VECTORS. THEY MUST NEVER CHANGE. An auditor's independent verifier is written
against them; a ledger written today must verify with the code of any later release. If a change to
``gateway.ledger.chain`` (or to what the writer hands it) makes a test here fail, the change is wrong:
fix the change, not the vectors. A new encoding gets a new version number and vectors of its own.

The three entries form a chain from genesis:

0. the genesis entry, as the writer makes it (details ``{"encoding":1,"hash":"sha256"}``);
1. an entry whose details hold Vietnamese text twice, as stored: precomposed (NFC) and with combining marks
   (NFD, the spelling a sender may have used); the ledger never normalises, so the two spellings are
   different bytes and both are pinned;
2. an entry with every field set (type, actor, document, document_id, sender, recipient), nested details
   given with unsorted keys, JSON escapes (quote, backslash, controls, U+2028, an astral character) and a
   recorded instant with microseconds given in +07:00.

Checked against the vectors: the canonical encoding bytes (``encode``), the writer's hash (``entry_hash``
and the ledger service's row builder), the reference verifier (``verify_entries``), the verifier's fast
loop (``ChainWalker``) and its slow twin (``row_hash``), and, on both databases, the whole verify path over
the three rows stored (``LedgerVerifier``).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import create_database
from gateway.ledger.chain import (
    GENESIS_PREV_HASH,
    GENESIS_TYPE,
    ChainBroken,
    ChainRow,
    ChainWalker,
    EntryFields,
    StoredEntry,
    canonical_json,
    encode,
    entry_hash,
    format_instant,
    genesis_details,
    row_hash,
    verify_entries,
)
from gateway.ledger.models import LedgerEntry
from gateway.ledger.service import _make as make_entry  # the writer: what append() inserts
from gateway.ledger.verify import LedgerVerifier

# -- inputs --------------------------------------------------------------------------------------------------

# Written with escapes so that no editor can normalise them. NFC: precomposed letters.
SUBJECT_NFC = (
    "C\u00f4ng v\u0103n s\u1ed1 15/UBND-VP v\u1ec1 vi\u1ec7c tri\u1ec3n khai Ngh\u1ecb \u0111\u1ecbnh \u2026"
)
# NFD: base letters followed by combining marks (U+0302 circumflex, U+0306 breve, U+0301/0300/0309/0323 tones).
SUBJECT_NFD = (
    "Co\u0302ng va\u0306n so\u0302\u0301 15/UBND-VP ve\u0302\u0300 vie\u0323\u0302c "
    "trie\u0302\u0309n khai Nghi\u0323 \u0111i\u0323nh \u2026"
)

Meta = tuple[datetime, str, str, str | None, str | None, str | None, str | None]

#: (recorded_at, type, actor, document, document_id, sender, recipient) and details, per seq
INPUTS: list[tuple[Meta, dict[str, Any]]] = [
    (
        (datetime(2026, 11, 21, 0, 0, 0, tzinfo=UTC), "ledger.genesis", "gateway", None, None, None, None),
        {"encoding": 1, "hash": "sha256"},
    ),
    (
        (datetime(2026, 11, 21, 14, 0, 0, 7, tzinfo=UTC), "envelope.refused", "agency:000.00.00.G22",
         None, None, "000.00.00.G22", None),
        {"subject": SUBJECT_NFC, "subject_as_received": SUBJECT_NFD, "rule": "document-changed", "status": 409},
    ),
    (
        (datetime(2026, 11, 21, 21, 37, 31, 948932, tzinfo=timezone(timedelta(hours=7))), "envelope.accepted",
         "agency:000.00.00.G22", "a4b96bcc-4a08-4bc2-8288-97ffcaea9a12", "000.00.00.G22,2026/11/21,15/VPCP-KSTT",
         "000.00.00.G22", "000.00.00.H41"),
        {
            "recipients": ["000.00.00.H41", "001.00.10.H47"],
            "envelope_sha256": "2e344047" * 8,
            "signed": True,
            "attachments": [{"size": 631, "content_id": "cid:1", "name": "C\u00f4ng v\u0103n 15.pdf",
                             "sha256": "ab" * 32}],
            "priority": 0,
            "signer_certificate": None,
            "note": "quote \" backslash \\ newline \n tab \t nul \x00 \u2028 \U0001f4c4",
            "nested": {"z": {"b": [1, {"y": False, "x": None}]}, "a": -7},
        },
    ),
]

# -- the published v1 vectors: never change these ------------------------------------------------------------

DETAILS = [
    b'{"encoding":1,"hash":"sha256"}',
    (
        b'{"rule":"document-changed","status":409,'
        b'"subject":"C\xc3\xb4ng v\xc4\x83n s\xe1\xbb\x91 15/UBND-VP v\xe1\xbb\x81 vi\xe1\xbb\x87c '
        b'tri\xe1\xbb\x83n khai Ngh\xe1\xbb\x8b \xc4\x91\xe1\xbb\x8bnh \xe2\x80\xa6",'
        b'"subject_as_received":"Co\xcc\x82ng va\xcc\x86n so\xcc\x82\xcc\x81 15/UBND-VP ve\xcc\x82\xcc\x80 '
        b'vie\xcc\xa3\xcc\x82c trie\xcc\x82\xcc\x89n khai Nghi\xcc\xa3 \xc4\x91i\xcc\xa3nh \xe2\x80\xa6"}'
    ),
    (
        b'{"attachments":[{"content_id":"cid:1","name":"C\xc3\xb4ng v\xc4\x83n 15.pdf",'
        b'"sha256":"abababababababababababababababababababababababababababababababab","size":631}],'
        b'"envelope_sha256":"2e3440472e3440472e3440472e3440472e3440472e3440472e3440472e344047",'
        b'"nested":{"a":-7,"z":{"b":[1,{"x":null,"y":false}]}},'
        b'"note":"quote \\" backslash \\\\ newline \\n tab \\t nul \\u0000 \xe2\x80\xa8 \xf0\x9f\x93\x84",'
        b'"priority":0,"recipients":["000.00.00.H41","001.00.10.H47"],"signed":true,'
        b'"signer_certificate":null}'
    ),
]

ENCODINGS = [
    (
        b'[1,0,"2026-11-21T00:00:00.000000Z","ledger.genesis","gateway",null,null,null,null,'
        b'"0000000000000000000000000000000000000000000000000000000000000000",' + DETAILS[0] + b"]"
    ),
    (
        b'[1,1,"2026-11-21T14:00:00.000007Z","envelope.refused","agency:000.00.00.G22",null,null,'
        b'"000.00.00.G22",null,"98fc19eb7b3fc2eb148dcf576356d7357dc85ba42ede653ce430650a8e46cb98",'
        + DETAILS[1] + b"]"
    ),
    (
        b'[1,2,"2026-11-21T14:37:31.948932Z","envelope.accepted","agency:000.00.00.G22",'
        b'"a4b96bcc-4a08-4bc2-8288-97ffcaea9a12","000.00.00.G22,2026/11/21,15/VPCP-KSTT",'
        b'"000.00.00.G22","000.00.00.H41",'
        b'"f880733dc2563f0321a2a25067b89b5b3a9ba8d18081491e2aeebe8f20175f25",' + DETAILS[2] + b"]"
    ),
]

HASHES = [
    "98fc19eb7b3fc2eb148dcf576356d7357dc85ba42ede653ce430650a8e46cb98",
    "f880733dc2563f0321a2a25067b89b5b3a9ba8d18081491e2aeebe8f20175f25",
    "b21b24f595964d0a4ec36b17be166f288622d43902cb61b7803d0871e65d0b2a",
]

RECORDED_AT = ["2026-11-21T00:00:00.000000Z", "2026-11-21T14:00:00.000007Z", "2026-11-21T14:37:31.948932Z"]

# -------------------------------------------------------------------------------------------------------------


def _fields() -> list[EntryFields]:
    """The entries as the chain module sees them: ``details`` and ``prev_hash`` taken from the vectors, so
    that the verifier is checked against the vectors alone, not against the writer's canonical JSON."""
    out = []
    for seq, ((at, type_, actor, document, document_id, sender, recipient), _) in enumerate(INPUTS):
        prev = GENESIS_PREV_HASH if seq == 0 else HASHES[seq - 1]
        out.append(EntryFields(seq, at, type_, actor, document, document_id, sender, recipient, prev,
                               DETAILS[seq].decode("utf-8")))
    return out


def _rows() -> list[ChainRow]:
    """The entries as the verifier reads them from the database."""
    return [(f.seq, format_instant(f.recorded_at), f.type, f.actor, f.document, f.document_id, f.sender,
             f.recipient, f.prev_hash, f.details, HASHES[f.seq]) for f in _fields()]


def test_the_inputs_are_what_the_vectors_say() -> None:
    assert unicodedata.is_normalized("NFC", SUBJECT_NFC)
    assert unicodedata.normalize("NFD", SUBJECT_NFC) == SUBJECT_NFD
    assert SUBJECT_NFC != SUBJECT_NFD
    assert INPUTS[0][0][1] == GENESIS_TYPE
    assert INPUTS[0][1] == dict(genesis_details())
    assert all(value is not None for value in INPUTS[2][0])  # every field set
    assert INPUTS[2][0][0].microsecond == 948932
    # Each vector hash is the SHA-256 of its vector bytes: the vectors are consistent on their own.
    assert [hashlib.sha256(e).hexdigest() for e in ENCODINGS] == HASHES


@pytest.mark.parametrize("seq", range(3))
def test_canonical_encoding_matches_the_vector(seq: int) -> None:
    fields = _fields()[seq]
    assert canonical_json(INPUTS[seq][1]).encode("utf-8") == DETAILS[seq]
    assert format_instant(fields.recorded_at) == RECORDED_AT[seq]
    assert encode(fields) == ENCODINGS[seq]


@pytest.mark.parametrize("seq", range(3))
def test_writer_hash_matches_the_vector(seq: int) -> None:
    fields = _fields()[seq]
    assert entry_hash(fields) == HASHES[seq]
    # The row the ledger service inserts (details given as a mapping, canonicalised by the writer).
    (at, type_, actor, document, document_id, sender, recipient), details = INPUTS[seq]
    row = make_entry(seq, at, type_, actor, document, document_id, sender, recipient, fields.prev_hash, details)
    assert row.hash == HASHES[seq]
    assert row.details.encode("utf-8") == DETAILS[seq]
    assert row.prev_hash == (GENESIS_PREV_HASH if seq == 0 else HASHES[seq - 1])


def test_reference_verifier_accepts_the_vector_chain() -> None:
    entries = [StoredEntry(f, HASHES[f.seq]) for f in _fields()]
    verdict = verify_entries(entries)
    assert verdict.ok, verdict.reason
    assert verdict.size == 3
    # ... and is really checking: one vector hash swapped for another fails at that entry.
    wrong = [entries[0], StoredEntry(entries[1].fields, HASHES[2]), entries[2]]
    assert verify_entries(wrong).first_bad_seq == 1
    # The other spelling of the same Vietnamese text is other bytes, hence another hash.
    nfc_only = replace(entries[1].fields, details=canonical_json({**INPUTS[1][1], "subject_as_received": SUBJECT_NFC}))
    assert entry_hash(nfc_only) != HASHES[1]


def test_fast_and_slow_verifier_encodings_match_the_vectors() -> None:
    rows = _rows()
    assert [row_hash(row) for row in rows] == HASHES
    walker = ChainWalker()
    walker.feed(rows)
    assert walker.next_seq == 3
    assert walker.prev_hash == HASHES[2]
    # One row per feed (batch boundaries) gives the same result.
    stepwise = ChainWalker()
    for row in rows:
        stepwise.feed([row])
    assert (stepwise.next_seq, stepwise.prev_hash) == (3, HASHES[2])
    tampered = list(rows)
    tampered[2] = (*rows[2][:10], HASHES[1])
    with pytest.raises(ChainBroken) as broken:
        ChainWalker().feed(tampered)
    assert broken.value.seq == 2


async def test_the_vector_chain_stored_verifies_on_the_database(db_url: str) -> None:
    """The three entries inserted as rows (a fresh database has no ledger yet), then the verify path as
    ``GET /v1/ledger/verify`` and ``gateway ledger verify`` run it: the repository's reading of each stored
    instant and the fast loop, on SQLite and PostgreSQL."""
    db = create_database(db_url)
    try:
        async with db.transaction() as session:
            assert (await session.execute(select(LedgerEntry))).first() is None
            for seq, ((at, type_, actor, document, document_id, sender, recipient), details) in enumerate(INPUTS):
                prev = GENESIS_PREV_HASH if seq == 0 else HASHES[seq - 1]
                session.add(make_entry(seq, at, type_, actor, document, document_id, sender, recipient, prev,
                                       details))
        async with db.transaction() as session:
            stored = list((await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq))).scalars())
        assert [e.hash for e in stored] == HASHES
        assert [e.details.encode("utf-8") for e in stored] == DETAILS
        assert [format_instant(e.recorded_at) for e in stored] == RECORDED_AT
        assert [encode(e.to_stored().fields) for e in stored] == ENCODINGS
        report = await LedgerVerifier(db, None).run()
        assert report.ok, report.reason
        assert report.size == 3
    finally:
        await db.dispose()
