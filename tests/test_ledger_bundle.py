"""The offline proof bundle (``gateway.ledger.bundle``, ``gateway verify-proof``): real bundles built here, with no
server, verified, then refused after one byte changes anywhere that carries the proof.

Each bundle is built from the parts the gateway itself uses: a small ledger of 30 entries hashed with
``gateway.ledger.chain`` (a document accepted at entry 10, delivered to two of its three recipients at 15 and
22), the RFC 9162 tree over their hashes (``gateway.ledger.merkle``), a checkpoint signed as a C2SP note with
the gateway key (``gateway.ledger.note``), the signed receipt (``gateway.envelope.build_receipt``) naming the
acceptance entry, and, for the timestamped ones, a token from a real ``openssl ts`` authority
(``tests/tsa_support.py``) over the checkpoint note.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from certs import KeyPair, make_keypair
from gateway.envelope import ReceiptAttachment, ReceiptData, build_receipt, verify_receipt
from gateway.ledger.bundle import (
    BUNDLE_FORMAT,
    MAX_BUNDLE_BYTES,
    BundleError,
    BundleInvalid,
    BundleUnverifiable,
    describe,
    verify_bundle,
)
from gateway.ledger.chain import GENESIS_PREV_HASH, EntryFields, canonical_json, entry_hash, format_instant
from gateway.ledger.merkle import MerkleTree, inclusion_proof
from gateway.ledger.note import NoteVerifier, add_signature, checkpoint_body, sign_note
from gateway.ledger.timestamp import build_request, verify_token
from tsa_support import Issued, OpensslTsa, make_ca, make_tsa, parts

DOCUMENT = "6f1d2c3b-8a4e-4b1f-9c7d-2e5a0b9c8d71"
OTHER_DOCUMENT = "0c9b8a7d-1e2f-4a3b-8c5d-6e7f8a9b0c1d"
DOCUMENT_ID = "000.00.00.G22,2026/11/29,123/QĐ-UBND"
SENDER = "000.00.00.G22"
RECIPIENTS = ("000.00.00.H41", "000.00.01.H41", "000.00.02.H41")
ENVELOPE_SHA256 = hashlib.sha256(b"the envelope as the sender sent it").hexdigest()
ACCEPTED = 10
#: entry seq -> recipient of its delivery.delivered entry
DELIVERED = {15: "000.00.00.H41", 22: "000.00.01.H41"}
SIZE = 30
# An hour ago, not a fixed date: the receipt's signature is checked at the sent instant, and the test keys are
# valid from a day before the run (a fixed date went out of their validity a week after it was written).
BASE = datetime.now(UTC).replace(microsecond=123456) - timedelta(hours=1)


# -- the ledger --------------------------------------------------------------------------------------------


def _instant(seq: int) -> datetime:
    return BASE + timedelta(seconds=1.5 * seq, microseconds=seq)


def _both(instant: datetime) -> str:
    """How ``gateway verify-proof`` prints an instant: Việt Nam time, then UTC."""
    vn = instant.astimezone(timezone(timedelta(hours=7))).isoformat()
    return f"{vn} ({instant.isoformat().replace('+00:00', 'Z')})"


def _received(seq: int) -> datetime:
    return _instant(seq) - timedelta(milliseconds=250)


@dataclass(frozen=True)
class Entry:
    fields: EntryFields
    hash: str


def make_ledger(
    size: int = SIZE,
    *,
    delivered: dict[int, str] | None = None,
    other_document: frozenset[int] = frozenset(),
    without_received_at: frozenset[int] = frozenset(),
) -> list[Entry]:
    """``size`` entries as the gateway appends them: genesis, register and token entries, the document's
    acceptance at ACCEPTED, push attempts, its deliveries (``delivered``: seq -> recipient)."""
    delivered = DELIVERED if delivered is None else delivered
    entries: list[Entry] = []
    prev = GENESIS_PREV_HASH
    for seq in range(size):
        document: str | None = None
        document_id = sender = recipient = None
        details: dict[str, Any]
        actor = "gateway"
        if seq == 0:
            kind, details = "ledger.genesis", {"encoding": 1, "hash": "sha256"}
        elif seq == ACCEPTED:
            kind, actor = "envelope.accepted", f"agency:{SENDER}"
            document, document_id, sender = DOCUMENT, DOCUMENT_ID, SENDER
            details = {
                "envelope_sha256": ENVELOPE_SHA256, "envelope_size": 48213, "signed": True,
                "signer_certificate": "ab" * 32, "recipients": list(RECIPIENTS),
                "attachments": [{"content_id": "qd-123.pdf", "sha256": "cd" * 32, "size": 40960}],
                "priority": 0, "business_doc_type": 0, "refers_to": None, "deviations": [],
            }
        elif seq in delivered:
            kind, recipient = "delivery.delivered", delivered[seq]
            document, document_id, sender = DOCUMENT, DOCUMENT_ID, SENDER
            if seq in other_document:
                document = OTHER_DOCUMENT
            details = {"delivery": f"d-{seq}", "mode": "pull", "received_at": _received(seq).isoformat()}
            if seq in without_received_at:
                del details["received_at"]
        elif seq > ACCEPTED and seq % 4 == 1:
            kind, recipient = "delivery.in_flight", RECIPIENTS[2]
            document, document_id, sender = DOCUMENT, DOCUMENT_ID, SENDER
            details = {"delivery": "d-push", "attempt": seq // 4, "worker": "w1"}
        else:
            kind, actor = "token.issued", "console:văn-thư"
            sender = "000.00.00.H41"
            details = {"token_id": f"t{seq}", "ghi chú": 'Văn phòng "UBND"'}
        fields = EntryFields(seq=seq, recorded_at=_instant(seq), type=kind, actor=actor, document=document,
                             document_id=document_id, sender=sender, recipient=recipient, prev_hash=prev,
                             details=canonical_json(details))
        prev = entry_hash(fields)
        entries.append(Entry(fields, prev))
    return entries


def entry_json(entry: Entry, size: int, tree: MerkleTree) -> dict[str, Any]:
    f = entry.fields
    return {
        "seq": f.seq, "recorded_at": format_instant(f.recorded_at), "type": f.type, "actor": f.actor,
        "document": f.document, "document_id": f.document_id, "sender": f.sender, "recipient": f.recipient,
        "prev_hash": f.prev_hash, "details": f.details, "hash": entry.hash,
        "proof": [h.hex() for h in inclusion_proof(f.seq, size, tree.get)],
    }


def receipt_data(entries: list[Entry]) -> ReceiptData:
    accepted = entries[ACCEPTED]
    return ReceiptData(
        gateway_document_id=DOCUMENT, document_id=DOCUMENT_ID, sender=SENDER, recipients=RECIPIENTS,
        envelope_sha256=ENVELOPE_SHA256,
        attachments=(ReceiptAttachment("qd-123.pdf", "Quyết định 123.pdf", "cd" * 32, 40960),),
        signed=True, signer_certificate_sha256="ab" * 32, sent_at=accepted.fields.recorded_at,
        ledger_sequence=ACCEPTED, ledger_entry_hash=accepted.hash,
    )


def origin_of(gateway: KeyPair) -> str:
    return f"gateway-ledger/{gateway.sha256[:16]}"


def make_bundle(
    gateway: KeyPair,
    size: int = SIZE,
    *,
    entries: list[Entry] | None = None,
    receipt: ReceiptData | None = None,
    origin: str | None = None,
    certificate: x509.Certificate | None = None,
) -> dict[str, Any]:
    """The bundle ``GET /v1/documents/{id}/proof`` answers for DOCUMENT at tree size ``size``."""
    entries = make_ledger() if entries is None else entries
    tree = MerkleTree(bytes.fromhex(e.hash) for e in entries[:size])
    origin = origin or origin_of(gateway)
    note = sign_note(checkpoint_body(origin, size, tree.root(size)), origin, gateway.key)
    ours = [e for e in entries[:size] if e.fields.document == DOCUMENT]
    chosen = [ours[0] if ours[0].fields.seq == ACCEPTED else entries[ACCEPTED],
              *(e for e in ours if e.fields.type == "delivery.delivered")]
    delivered = {e.fields.recipient for e in chosen[1:]}
    algorithm = "rsa-sha256" if isinstance(gateway.key, rsa.RSAPrivateKey) else "ecdsa-sha256"
    xml = build_receipt(receipt or receipt_data(entries), gateway.key, gateway.cert, algorithm=algorithm)
    return {
        "format": BUNDLE_FORMAT,
        "document": DOCUMENT,
        "receipt": base64.b64encode(xml).decode("ascii"),
        "entries": [entry_json(e, size, tree) for e in chosen],
        "tree_size": size,
        "checkpoint": note.decode("utf-8"),
        "gateway_certificate": (certificate or gateway.cert).public_bytes(serialization.Encoding.PEM).decode("ascii"),
        "timestamp": None,
        "pending": sorted(set(RECIPIENTS) - delivered),
    }


def encode(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle, ensure_ascii=False).encode("utf-8")


def receipt_of(bundle: dict[str, Any]) -> bytes:
    return base64.b64decode(bundle["receipt"])


def with_receipt(bundle: dict[str, Any], xml: bytes) -> dict[str, Any]:
    return {**bundle, "receipt": base64.b64encode(xml).decode("ascii")}


def refused(bundle: dict[str, Any] | bytes, gateway: KeyPair | None, **options: Any) -> BundleInvalid:
    data = bundle if isinstance(bundle, bytes) else encode(bundle)
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(data, gateway_certificate=gateway.cert if gateway else None, **options)
    return caught.value


def flip_char(text: str, index: int) -> str:
    """``text`` with the one character at ``index`` changed: a hex digit to another hex digit, a decimal
    digit to another, any other ASCII character by its lowest bit."""
    c = text[index]
    new = format(int(c, 16) ^ 1, "x") if c in "0123456789abcdef" else chr(ord(c) ^ 1)
    return text[:index] + new + text[index + 1:]


def ascii_positions(text: str) -> list[int]:
    return [i for i, c in enumerate(text) if ord(c) < 0x80]


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway() -> KeyPair:
    """The gateway's key: RSA, as ``gateway.signing`` generates it."""
    return make_keypair("Cổng trục liên thông (test)", kind="rsa")


@pytest.fixture(scope="module")
def impostor() -> KeyPair:
    return make_keypair("Cổng trục liên thông (test)", kind="ec")


@pytest.fixture(scope="module")
def bundle(gateway: KeyPair) -> dict[str, Any]:
    return make_bundle(gateway)


@pytest.fixture(scope="module")
def tsa_ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def tsa(tsa_ca: Issued) -> Issued:
    return make_tsa(tsa_ca, common_name="Test TSA (bundle)")


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory, tsa_ca: Issued, tsa: Issued) -> OpensslTsa:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed: it is the test timestamping authority (README, OS packages)")
    return OpensslTsa(tmp_path_factory.mktemp("tsa-bundle"), tsa_ca, tsa)


def stamp(bundle: dict[str, Any], authority: OpensslTsa) -> dict[str, Any]:
    """``bundle`` with a real RFC 3161 token over SHA-256 of its checkpoint note, as the checkpointer stores it."""
    digest = hashlib.sha256(bundle["checkpoint"].encode("utf-8")).digest()
    reply = authority.reply(build_request(digest, nonce=0x5EED))
    token = verify_token(reply, digest=digest, nonce=0x5EED, tsa_certificates=[authority.tsa.cert]).token
    return {**bundle, "timestamp": {"token": base64.b64encode(token).decode("ascii")}}


@pytest.fixture(scope="module")
def stamped(bundle: dict[str, Any], authority: OpensslTsa) -> dict[str, Any]:
    return stamp(bundle, authority)


# -- what a good bundle proves -----------------------------------------------------------------------------


def test_bundle_verifies_and_says_exactly_what_it_proved(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    entries = make_ledger()
    verdict = verify_bundle(encode(bundle), gateway_certificate=gateway.cert)

    assert verdict.document == DOCUMENT
    assert (verdict.document_id, verdict.sender, verdict.kind) == (DOCUMENT_ID, SENDER, "document")
    assert verdict.envelope_sha256 == ENVELOPE_SHA256
    assert verdict.acceptance.seq == ACCEPTED
    assert verdict.acceptance.type == "envelope.accepted"
    assert verdict.sent_at == verdict.acceptance.recorded_at == _instant(ACCEPTED)
    assert verdict.acceptance.hash == entries[ACCEPTED].hash
    assert [(d.seq, d.type, d.recipient, d.received_at, d.recorded_at) for d in verdict.deliveries] == [
        (seq, "delivery.delivered", code, _received(seq), _instant(seq)) for seq, code in DELIVERED.items()
    ]
    assert [d.instant for d in verdict.deliveries] == [_received(seq) for seq in DELIVERED]
    assert verdict.recipients == RECIPIENTS
    assert verdict.pending == ("000.00.02.H41",)
    assert verdict.tree_size == SIZE
    assert verdict.root == MerkleTree(bytes.fromhex(e.hash) for e in entries).root()
    assert verdict.checkpoint_origin == origin_of(gateway)
    assert verdict.checkpoint_key_id == NoteVerifier.from_certificate(origin_of(gateway), gateway.cert).key_id
    assert verdict.checkpoint_algorithm == "rsa-pkcs1v15-sha256"
    assert verdict.cosignatures == 0
    assert verdict.gateway_certificate_sha256 == gateway.sha256
    assert verdict.signer_pinned is True
    assert verdict.timestamp is None
    assert verdict.receipt_sha256 == hashlib.sha256(receipt_of(bundle)).hexdigest()
    assert verdict.receipt_signature_verified is False
    # what the receipt says, verified with its XML signature where lxml is at hand, is what the bundle proved
    receipt = verify_receipt(receipt_of(bundle), gateway.cert, at=verdict.sent_at)
    assert (receipt.ledger_sequence, receipt.ledger_entry_hash, receipt.sent_at) == (
        verdict.acceptance.seq, verdict.acceptance.hash, verdict.sent_at)


def test_the_same_bundle_as_a_parsed_mapping_verifies_alike(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    from_bytes = verify_bundle(encode(bundle), gateway_certificate=gateway.cert)
    assert verify_bundle(json.loads(encode(bundle)), gateway_certificate=gateway.cert) == from_bytes


@pytest.mark.parametrize("size", [23, 24, 25, 29, 31, 32, 33])
def test_bundles_at_other_tree_sizes_verify(gateway: KeyPair, size: int) -> None:
    entries = make_ledger(40)
    verdict = verify_bundle(encode(make_bundle(gateway, size, entries=entries)), gateway_certificate=gateway.cert)
    assert verdict.tree_size == size
    assert [d.recipient for d in verdict.deliveries] == list(DELIVERED.values())


def test_a_recipient_delivered_after_the_checkpoint_is_pending(gateway: KeyPair) -> None:
    """At tree size 20 only the first delivery is inside the checkpoint: the second recipient is pending."""
    verdict = verify_bundle(encode(make_bundle(gateway, 20)), gateway_certificate=gateway.cert)
    assert [d.recipient for d in verdict.deliveries] == ["000.00.00.H41"]
    assert verdict.pending == ("000.00.01.H41", "000.00.02.H41")


def test_a_bundle_just_past_the_acceptance_proves_the_sent_instant_alone(gateway: KeyPair) -> None:
    verdict = verify_bundle(encode(make_bundle(gateway, ACCEPTED + 1)), gateway_certificate=gateway.cert)
    assert verdict.deliveries == ()
    assert verdict.pending == RECIPIENTS
    assert verdict.sent_at == _instant(ACCEPTED)


def test_an_ecdsa_gateway_key_and_a_configured_origin_verify(impostor: KeyPair) -> None:
    origin = "gateway.example.gov.vn/ledger"
    verdict = verify_bundle(encode(make_bundle(impostor, origin=origin)), gateway_certificate=impostor.cert)
    assert verdict.checkpoint_origin == origin
    assert verdict.checkpoint_algorithm == "ecdsa-p256-sha256"


def test_a_witness_cosignature_is_counted_and_not_verified(gateway: KeyPair, impostor: KeyPair,
                                                           bundle: dict[str, Any]) -> None:
    witness_note = sign_note(b"anything\n", "witness.example.org/audit", impostor.key)
    line = witness_note.split(b"\n\n")[1]
    cosigned = {**bundle, "checkpoint": add_signature(bundle["checkpoint"].encode(), line).decode()}
    verdict = verify_bundle(encode(cosigned), gateway_certificate=gateway.cert)
    assert verdict.cosignatures == 1


# -- the signer: pinned or not -----------------------------------------------------------------------------


def test_without_a_certificate_the_bundle_verifies_but_not_pinned(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    verdict = verify_bundle(encode(bundle), gateway_certificate=None)
    assert verdict.signer_pinned is False
    assert verdict.gateway_certificate_sha256 == gateway.sha256
    assert "signer pinned: NO" in "\n".join(describe(verdict))


def test_refuses_a_bundle_when_another_gateway_certificate_is_given(impostor: KeyPair,
                                                                    bundle: dict[str, Any]) -> None:
    error = refused(bundle, impostor)
    assert (error.step, error.step_name) == (2, "gateway certificate")
    assert "not the one given" in error.reason


def test_a_forger_with_its_own_key_is_caught_only_by_pinning(gateway: KeyPair, impostor: KeyPair) -> None:
    """The attack: someone builds a whole consistent bundle (ledger, tree, note, receipt) with a key of its own
    and ships its certificate inside. Unpinned it is consistent, and the verdict names the forger's
    certificate and says it was not pinned; given the gateway's certificate, it is refused."""
    forged = make_bundle(impostor)
    verdict = verify_bundle(encode(forged), gateway_certificate=None)
    assert verdict.signer_pinned is False
    assert verdict.gateway_certificate_sha256 == impostor.sha256 != gateway.sha256
    assert refused(forged, gateway).step == 2


def test_refuses_a_bundle_certificate_swapped_for_another(gateway: KeyPair, impostor: KeyPair,
                                                          bundle: dict[str, Any]) -> None:
    """The gateway's note with the impostor's certificate in the bundle: unpinned, its key opens no signature."""
    swapped = {**bundle, "gateway_certificate": impostor.cert_pem}
    assert refused(swapped, None).step == 3
    assert refused(swapped, gateway).step == 2


@pytest.mark.parametrize(
    "pem", ["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_refuses_an_unreadable_bundle_certificate(pem: str, bundle: dict[str, Any]) -> None:
    assert refused({**bundle, "gateway_certificate": pem}, None).step == 2


def test_refuses_two_certificates_where_one_is_expected(gateway: KeyPair, impostor: KeyPair,
                                                        bundle: dict[str, Any]) -> None:
    two = {**bundle, "gateway_certificate": gateway.cert_pem + impostor.cert_pem}
    assert refused(two, None).step == 2


# -- one byte changed --------------------------------------------------------------------------------------


ENTRY_STRINGS = ("recorded_at", "type", "actor", "document", "document_id", "sender", "recipient", "prev_hash",
                 "details", "hash")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_one_character_changed_in_any_entry_field_is_refused(gateway: KeyPair, bundle: dict[str, Any],
                                                             index: int) -> None:
    """Every ASCII character of every field of the acceptance entry and of each delivered entry, one at a
    time: the entry no longer hashes to its hash (step 4), or no longer reads as an entry at all (step 1)."""
    entry = bundle["entries"][index]
    tried = 0
    for name in ENTRY_STRINGS:
        value = entry[name]
        if value is None:
            continue
        for position in ascii_positions(value):
            changed = copy.deepcopy(bundle)
            changed["entries"][index][name] = flip_char(value, position)
            error = refused(changed, gateway)
            assert error.step in (1, 4), (name, position, error)
            tried += 1
    for delta in (-1, 1):
        changed = copy.deepcopy(bundle)
        changed["entries"][index]["seq"] += delta
        assert refused(changed, gateway).step == 4
    assert tried > 300


@pytest.mark.parametrize("name", ["recorded_at", "type", "actor", "prev_hash", "details", "hash", "document_id"])
def test_a_well_formed_change_to_an_entry_breaks_its_hash(gateway: KeyPair, bundle: dict[str, Any],
                                                          name: str) -> None:
    """The cryptographic check itself, not the format: a change that leaves the field well formed (the last
    microsecond digit, a hex digit inside the details) is caught by the recomputed hash."""
    changed = copy.deepcopy(bundle)
    value = changed["entries"][0][name]
    if name == "recorded_at":
        position = len(value) - 2  # the last digit of the microseconds
    elif name == "details":
        position = value.index(ENVELOPE_SHA256) + 5
    else:
        position = len(value) - 1
    changed["entries"][0][name] = flip_char(value, position)
    error = refused(changed, gateway)
    assert error.step == 4
    assert "hash does not match" in error.reason


def test_one_hex_digit_changed_in_any_proof_element_is_refused(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    tried = 0
    for index, entry in enumerate(bundle["entries"]):
        assert entry["proof"], "a tree of 30 leaves gives every leaf a path"
        for element in range(len(entry["proof"])):
            for position in range(64):
                changed = copy.deepcopy(bundle)
                proof = changed["entries"][index]["proof"]
                proof[element] = flip_char(proof[element], position)
                error = refused(changed, gateway)
                assert error.step == 4
                assert "does not lead to the root" in error.reason
                tried += 1
    assert tried >= 3 * 4 * 64


def test_proof_elements_reordered_dropped_or_added_are_refused(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    proof = bundle["entries"][0]["proof"]
    for other in (proof[::-1], proof[:-1], [*proof, proof[0]], []):
        changed = copy.deepcopy(bundle)
        changed["entries"][0]["proof"] = other
        assert refused(changed, gateway).step == 4


def test_one_character_changed_anywhere_in_the_checkpoint_note_is_refused(gateway: KeyPair,
                                                                          bundle: dict[str, Any]) -> None:
    note = bundle["checkpoint"]
    for position in ascii_positions(note):
        error = refused({**bundle, "checkpoint": flip_char(note, position)}, gateway)
        assert error.step == 3, (position, error)
    assert len(ascii_positions(note)) > 300


def test_refuses_a_checkpoint_of_another_size(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    """A real checkpoint note of 31 entries, with the proofs of 30: the signed size is not tree_size."""
    other = make_bundle(gateway, 31, entries=make_ledger(31))
    error = refused({**bundle, "checkpoint": other["checkpoint"]}, gateway)
    assert error.step == 3
    assert "tree size 31" in error.reason
    error = refused({**bundle, "tree_size": 31}, gateway)
    assert error.step == 3


def test_refuses_a_tree_size_the_entries_are_not_in(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    """A genuine checkpoint of 20 entries, and a delivered entry (22) that is past it."""
    small = make_bundle(gateway, 20)
    changed = {**small, "entries": [*small["entries"], bundle["entries"][2]], "pending": ["000.00.02.H41"]}
    error = refused(changed, gateway)
    assert error.step == 4
    assert "not below tree size 20" in error.reason


def test_refuses_an_entry_of_another_ledger(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    """A ledger rewritten before the acceptance (one entry's details changed): every hash after it changes,
    its acceptance entry hashes right, and its proof does not reach the root the gateway signed."""
    rewritten = make_ledger()
    f = rewritten[3].fields
    rewritten[3] = Entry(replace(f, details=canonical_json({"token_id": "forged"})), "")
    prev = GENESIS_PREV_HASH
    for i, e in enumerate(rewritten):
        fields = replace(e.fields, prev_hash=prev)
        prev = entry_hash(fields)
        rewritten[i] = Entry(fields, prev)
    forged = make_bundle(gateway, entries=rewritten)
    changed = {**bundle, "entries": [forged["entries"][0], *bundle["entries"][1:]]}
    assert refused(changed, gateway).step == 4
    # and with its own (genuinely signed-looking) receipt, the same: the checkpoint decides
    changed = {**changed, "receipt": forged["receipt"]}
    assert refused(changed, gateway).step == 4


BOUND_ELEMENTS = ("GatewayDocumentId", "DocumentId", "Kind", "Sender", "Recipient", "EnvelopeSha256", "SentAt",
                  "SentAtLocal", "Sequence", "EntryHash")


@pytest.mark.parametrize("element", BOUND_ELEMENTS)
def test_one_byte_changed_in_what_the_receipt_binds_is_refused(gateway: KeyPair, bundle: dict[str, Any],
                                                               element: str) -> None:
    """Each byte of each element the receipt is checked on, and of its tags: step 6."""
    xml = receipt_of(bundle)
    spans = [m.span() for m in re.finditer(rb"<r:%s>.*?</r:%s>" % (element.encode(), element.encode()), xml)]
    assert spans
    for start, end in spans:
        for position in range(start, end):
            changed = bytearray(xml)
            changed[position] ^= 0x01
            error = refused(with_receipt(bundle, bytes(changed)), gateway)
            assert error.step == 6, (element, position, error)


def test_receipt_bytes_outside_what_it_binds_are_not_checked_offline(gateway: KeyPair,
                                                                     bundle: dict[str, Any]) -> None:
    """Said plainly, and kept true by this test: the receipt's XML signature is not verified offline (no
    exclusive c14n in the standard library), so a byte changed in an attachment's name or in the signature
    value itself passes ``verify-proof``; its verdict names another receipt SHA-256. What the proof rests on,
    the acceptance entry (which states the envelope's SHA-256, its recipients, the sent instant), is
    untouched. ``verify_receipt`` (lxml, signxml) refuses both receipts."""
    xml = receipt_of(bundle)
    for marker in (b"Quy", b"<ds:SignatureValue>"):
        position = xml.index(marker) + len(marker) + 2
        changed = bytearray(xml)
        changed[position] ^= 0x01
        verdict = verify_bundle(encode(with_receipt(bundle, bytes(changed))), gateway_certificate=gateway.cert)
        assert verdict.receipt_signature_verified is False
        assert verdict.receipt_sha256 == hashlib.sha256(bytes(changed)).hexdigest()
        assert verdict.envelope_sha256 == ENVELOPE_SHA256
        with pytest.raises(Exception, match=r"does not verify|signature"):
            verify_receipt(bytes(changed), gateway.cert, at=verdict.sent_at)


def test_refuses_a_genuine_receipt_of_another_entry_or_instant(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    """Receipts signed by the gateway itself, each stating one thing other than the acceptance entry."""
    entries = make_ledger()
    good = receipt_data(entries)
    for other in (
        replace(good, ledger_sequence=ACCEPTED + 1),
        replace(good, ledger_entry_hash=entries[ACCEPTED + 1].hash),
        replace(good, sent_at=good.sent_at + timedelta(microseconds=1)),
        replace(good, gateway_document_id=OTHER_DOCUMENT),
        replace(good, document_id="000.00.00.G22,2026/11/29,124/QĐ-UBND"),
        replace(good, sender="000.00.00.G23"),
        replace(good, envelope_sha256="00" * 32),
        replace(good, kind="status"),
        replace(good, recipients=(*RECIPIENTS, "000.00.03.H41")),
        replace(good, recipients=RECIPIENTS[:1]),
    ):
        xml = build_receipt(other, gateway.key, gateway.cert)
        error = refused(with_receipt(bundle, xml), gateway)
        assert error.step == 6, (other, error)


HOSTILE_RECEIPTS = {
    "billion_laughs": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;'
                      b'&a;&a;&a;&a;&a;">]><r:Receipt xmlns:r="urn:gateway:receipt:1" version="1">&b;</r:Receipt>',
    "external_entity": b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    "utf16_declared": '<?xml version="1.0" encoding="UTF-16"?><r/>'.encode("utf-16"),
    "latin1_declared": b'<?xml version="1.0" encoding="ISO-8859-1"?><r/>',
    "not_xml": b"\x00\x01not xml",
    "truncated": b'<r:Receipt xmlns:r="urn:gateway:receipt:1" version="1"><r:GatewayDocumentId>',
    "unsigned": b'<r:Receipt xmlns:r="urn:gateway:receipt:1" version="1"/>',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_RECEIPTS))
def test_refuses_hostile_receipts(gateway: KeyPair, bundle: dict[str, Any], name: str) -> None:
    assert refused(with_receipt(bundle, HOSTILE_RECEIPTS[name]), gateway).step == 6


def test_refuses_a_receipt_with_a_comment_slipped_in(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    xml = receipt_of(bundle).replace(b"<r:SentAt>", b"<!-- --><r:SentAt>", 1)
    assert refused(with_receipt(bundle, xml), gateway).step == 6


# -- the timestamp -----------------------------------------------------------------------------------------


def test_a_timestamped_bundle_names_the_authority_and_its_time(gateway: KeyPair, tsa: Issued,
                                                               stamped: dict[str, Any]) -> None:
    before = datetime.now(UTC)
    verdict = verify_bundle(encode(stamped), gateway_certificate=gateway.cert, tsa_certificates=[tsa.cert])
    assert verdict.timestamp is not None
    assert verdict.timestamp.pinned is True
    assert "Test TSA (bundle)" in verdict.timestamp.authority
    assert before - timedelta(minutes=10) <= verdict.timestamp.gen_time <= before + timedelta(seconds=5)
    assert verdict.timestamp.signer_certificate_sha256 == hashlib.sha256(tsa.cert_der).hexdigest()
    unpinned = verify_bundle(encode(stamped), gateway_certificate=gateway.cert)
    assert unpinned.timestamp is not None
    assert unpinned.timestamp.pinned is False
    assert unpinned.timestamp.gen_time == verdict.timestamp.gen_time


def test_one_byte_changed_in_the_token_is_refused(gateway: KeyPair, tsa: Issued, tsa_ca: Issued,
                                                  stamped: dict[str, Any]) -> None:
    """The signed TSTInfo, the signature and the TSA certificate (first, middle, last bytes of each), and
    every 7th byte of the token besides, except inside the CA certificate the authority adds to it unasked
    (never used to verify: the TSA certificate is pinned or named; ``test_ledger_timestamp`` says so)."""
    token = base64.b64decode(stamped["timestamp"]["token"])
    unused_start = token.find(tsa_ca.cert_der)
    unused = range(unused_start, unused_start + len(tsa_ca.cert_der)) if unused_start >= 0 else range(0)
    positions = set(range(0, len(token), 7)) - set(unused)
    for start, end in parts(token).values():
        positions |= {start, (start + end) // 2, end - 1}
    for position in sorted(positions):
        changed = bytearray(token)
        changed[position] ^= 0x01
        tampered = {**stamped, "timestamp": {"token": base64.b64encode(bytes(changed)).decode("ascii")}}
        for pinned in ([tsa.cert], None):
            error = refused(tampered, gateway, tsa_certificates=pinned)
            assert error.step == 7, (position, error)


def test_refuses_a_token_over_another_checkpoint(gateway: KeyPair, authority: OpensslTsa, tsa: Issued,
                                                 stamped: dict[str, Any]) -> None:
    other = stamp(make_bundle(gateway, 29, entries=make_ledger(29)), authority)
    changed = {**stamped, "timestamp": other["timestamp"]}
    error = refused(changed, gateway, tsa_certificates=[tsa.cert])
    assert error.step == 7
    assert "imprint" in error.reason


def test_a_token_changes_nothing_of_the_checkpoint_it_stamps(gateway: KeyPair, tsa: Issued,
                                                             stamped: dict[str, Any]) -> None:
    """A byte of the note changed under a good token: the note's signature fails first (step 3); and the token
    covers the very note bytes, so a note that still opened would fail step 7 (here: a cosignature added)."""
    note = stamped["checkpoint"]
    assert refused({**stamped, "checkpoint": flip_char(note, 0)}, gateway).step == 3
    extra = sign_note(b"x\n", "witness.example.org/audit", make_keypair(kind="ec").key).split(b"\n\n")[1]
    cosigned = {**stamped, "checkpoint": add_signature(note.encode(), extra).decode()}
    assert refused(cosigned, gateway, tsa_certificates=[tsa.cert]).step == 7


def test_refuses_a_token_signed_by_another_authority_than_the_pinned_one(
    gateway: KeyPair, tsa_ca: Issued, stamped: dict[str, Any]
) -> None:
    other = make_tsa(tsa_ca, common_name="Another TSA")
    error = refused(stamped, gateway, tsa_certificates=[other.cert])
    assert error.step == 7


def test_refuses_pinned_tsa_certificates_for_a_bundle_without_a_token(gateway: KeyPair, tsa: Issued,
                                                                       bundle: dict[str, Any]) -> None:
    error = refused(bundle, gateway, tsa_certificates=[tsa.cert])
    assert error.step == 7
    assert "no timestamp" in error.reason


# -- the document: which entries ---------------------------------------------------------------------------


def test_refuses_entries_out_of_their_order(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    a, d1, d2 = bundle["entries"]
    for entries in ([d1, a, d2], [a, d2, d1], [a, d1, d1]):
        error = refused({**bundle, "entries": entries}, gateway)
        assert error.step == 5


def test_refuses_a_bundle_of_another_document(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    error = refused({**bundle, "document": OTHER_DOCUMENT}, gateway)
    assert error.step == 5


def test_refuses_a_first_entry_that_is_not_an_acceptance(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    tree = MerkleTree(bytes.fromhex(e.hash) for e in make_ledger())
    in_flight = entry_json(make_ledger()[13], SIZE, tree)
    assert in_flight["type"] == "delivery.in_flight"
    assert refused({**bundle, "entries": [in_flight, *bundle["entries"][1:]]}, gateway).step == 5
    assert refused({**bundle, "entries": [*bundle["entries"], in_flight]}, gateway).step == 5


def test_refuses_a_delivered_entry_of_another_document(gateway: KeyPair) -> None:
    entries = make_ledger(other_document=frozenset({22}))
    tree = MerkleTree(bytes.fromhex(e.hash) for e in entries)
    good = make_bundle(gateway, entries=entries)
    changed = {**good, "entries": [*good["entries"], entry_json(entries[22], SIZE, tree)],
               "pending": ["000.00.02.H41"]}
    error = refused(changed, gateway)
    assert (error.step, "not about the document" in error.reason) == (5, True)


def test_refuses_two_delivered_entries_for_one_recipient(gateway: KeyPair) -> None:
    entries = make_ledger(delivered={15: "000.00.00.H41", 22: "000.00.00.H41"})
    error = refused(make_bundle(gateway, entries=entries), gateway)
    assert error.step == 5
    assert "second delivered entry" in error.reason


def test_refuses_a_delivered_entry_without_its_received_instant(gateway: KeyPair) -> None:
    entries = make_ledger(without_received_at=frozenset({22}))
    error = refused(make_bundle(gateway, entries=entries), gateway)
    assert error.step == 5
    assert "received instant" in error.reason


def test_refuses_a_delivered_entry_for_a_recipient_the_receipt_does_not_name(gateway: KeyPair) -> None:
    entries = make_ledger(delivered={15: "000.00.00.H41", 22: "000.00.09.H41"})
    error = refused(make_bundle(gateway, entries=entries), gateway)
    assert error.step == 6


@pytest.mark.parametrize("pending", [[], ["000.00.02.H41", "000.00.02.H41"], ["000.00.01.H41", "000.00.02.H41"],
                                     ["000.00.02.H41", "000.00.09.H41"]])
def test_refuses_a_pending_list_that_is_not_the_undelivered_recipients(gateway: KeyPair, bundle: dict[str, Any],
                                                                       pending: list[str]) -> None:
    assert refused({**bundle, "pending": pending}, gateway).step == 6


# -- the format --------------------------------------------------------------------------------------------


def test_refuses_unknown_members_at_every_level(gateway: KeyPair, stamped: dict[str, Any]) -> None:
    top = {**stamped, "witness": None}
    entry = copy.deepcopy(stamped)
    entry["entries"][1]["note"] = "x"
    stamp_extra = {**stamped, "timestamp": {**stamped["timestamp"], "nonce": 1}}
    for changed in (top, entry, stamp_extra):
        error = refused(changed, gateway)
        assert error.step == 1
        assert "unknown member" in error.reason


@pytest.mark.parametrize("member", ["format", "document", "receipt", "entries", "tree_size", "checkpoint",
                                    "gateway_certificate", "timestamp", "pending"])
def test_refuses_a_missing_member(gateway: KeyPair, bundle: dict[str, Any], member: str) -> None:
    changed = dict(bundle)
    del changed[member]
    assert refused(changed, gateway).step == 1


def test_refuses_bytes_that_are_no_bundle(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    text = encode(bundle).decode("utf-8")
    cases = [
        b"", b"null", b"[]", b"\xff\xfe{}", encode(bundle).decode().encode("utf-16"),
        text.replace('"tree_size": 30', '"tree_size": 30, "tree_size": 30').encode(),  # duplicate key
        text.replace('"tree_size": 30', '"tree_size": NaN').encode(),
        text.replace('"tree_size": 30', '"tree_size": 30.0').encode(),
        text.replace('"tree_size": 30', '"tree_size": true').encode(),
        text.replace('"tree_size": 30', '"tree_size": ' + "9" * 5000).encode(),
        text.replace(BUNDLE_FORMAT, "gateway-proof-bundle/v2").encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b" " * (MAX_BUNDLE_BYTES + 1),
    ]
    for data in cases:
        with pytest.raises(BundleInvalid) as caught:
            verify_bundle(data, gateway_certificate=gateway.cert)
        assert caught.value.step == 1


def test_refuses_values_of_the_wrong_type_or_form(gateway: KeyPair, bundle: dict[str, Any]) -> None:
    entry = bundle["entries"][0]
    bad_entries: list[tuple[str, Any]] = [
        ("seq", True), ("seq", -1), ("seq", "10"), ("seq", 2**64), ("recorded_at", "2026-11-29T05:00:00Z"),
        ("recorded_at", "2026-02-30T05:00:00.000000Z"), ("hash", entry["hash"].upper()), ("prev_hash", None),
        ("proof", "x"), ("proof", [1]), ("proof", ["00" * 32] * 65), ("type", None), ("details", {}),
        ("actor", "a" * 5000), ("document", "\ud800"),
    ]
    for name, value in bad_entries:
        changed = copy.deepcopy(bundle)
        changed["entries"][0][name] = value
        # ASCII JSON: a lone surrogate travels as its \u escape, as it would from a hostile producer
        assert refused(json.dumps(changed).encode("ascii"), gateway).step == 1, (name, value)
    bad_top: list[tuple[str, Any]] = [
        ("entries", []), ("entries", {}), ("tree_size", 0), ("receipt", "not base64!"), ("receipt", "QQ"),
        ("receipt", ""), ("pending", "000.00.02.H41"), ("timestamp", "token"), ("timestamp", {"token": 1}),
        ("checkpoint", None), ("document", 1),
    ]
    for name, value in bad_top:
        assert refused({**bundle, name: value}, gateway).step == 1, (name, value)
    assert refused(copy.deepcopy(bundle) | {"entries": [entry] * 10_002}, gateway).step == 1


def test_refuses_details_that_are_not_the_canonical_text(gateway: KeyPair) -> None:
    """Details hashed as written but not canonical (a space, keys out of order) is not what the ledger stores:
    it is refused even where its hash would hold."""
    entries = make_ledger()
    f = entries[ACCEPTED].fields
    spaced = replace(f, details=f.details.replace(",", ", ", 1))
    entries[ACCEPTED] = Entry(spaced, entry_hash(spaced))
    error = refused(make_bundle(gateway, entries=entries, receipt=replace(receipt_data(make_ledger()),
                                                                          ledger_entry_hash=entries[ACCEPTED].hash)),
                    gateway)
    assert error.step == 4
    assert "canonical" in error.reason


def test_mangled_bundles_raise_only_bundle_errors(gateway: KeyPair, stamped: dict[str, Any]) -> None:
    """Random single-byte changes anywhere in the JSON, and every member replaced by values of every JSON type:
    each ends in a verdict or a BundleError, never another exception."""
    data = encode(stamped)
    rng = random.Random(18)
    for _ in range(400):
        changed = bytearray(data)
        changed[rng.randrange(len(changed))] = rng.randrange(256)
        with contextlib.suppress(BundleError):
            verify_bundle(bytes(changed), gateway_certificate=gateway.cert)
    values: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x", [], [None], {}, {"token": None}]
    paths: list[tuple[Any, ...]] = [(k,) for k in stamped] + [("entries", 0, k) for k in stamped["entries"][0]]
    paths += [("timestamp", "token"), ("entries", 1), ("pending", 0)]
    for path in paths:
        for value in values:
            changed_bundle = copy.deepcopy(stamped)
            target = changed_bundle
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            with contextlib.suppress(BundleError):
                verify_bundle(changed_bundle, gateway_certificate=gateway.cert)
    with pytest.raises(BundleInvalid):
        verify_bundle("a string is not a bundle", gateway_certificate=gateway.cert)  # type: ignore[arg-type]


# -- needs: cryptography and the standard library ----------------------------------------------------------


_BLOCKED_RUNNER = """
import importlib.abc, json, sys
BLOCKED = {"asn1crypto", "lxml", "signxml", "sqlalchemy", "fastapi", "starlette", "httpx", "pydantic",
           "pydantic_settings", "typer", "pyhanko", "structlog"}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
        return None
sys.meta_path.insert(0, Refuse())
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gateway.ledger.bundle import BundleUnverifiable, verify_bundle
cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
verdict = verify_bundle(open(sys.argv[2], "rb").read(), gateway_certificate=cert)
out = {"plain": [verdict.tree_size, verdict.signer_pinned, verdict.timestamp is None]}
try:
    verify_bundle(open(sys.argv[3], "rb").read(), gateway_certificate=cert)
except BundleUnverifiable as exc:
    out["stamped"] = [exc.step, exc.reason]
out["loaded"] = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
print(json.dumps(out))
"""


def test_a_bundle_without_a_token_needs_only_cryptography_and_the_standard_library(
    gateway: KeyPair, bundle: dict[str, Any], stamped: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 18 point 5: the verifier runs with asn1crypto, lxml and the server's packages refused; a bundle
    with a token then says it needs asn1crypto (BundleUnverifiable, step 7) rather than failing obscurely."""
    (tmp_path / "gateway.pem").write_text(gateway.cert_pem)
    (tmp_path / "plain.json").write_bytes(encode(bundle))
    (tmp_path / "stamped.json").write_bytes(encode(stamped))
    (tmp_path / "runner.py").write_text(_BLOCKED_RUNNER)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), *(str(tmp_path / n) for n in
                                                         ("gateway.pem", "plain.json", "stamped.json"))],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["plain"] == [SIZE, True, True]
    assert out["stamped"][0] == 7
    assert "asn1crypto" in out["stamped"][1]
    assert out["loaded"] == []


def test_bundle_unverifiable_is_a_bundle_error() -> None:
    error = BundleUnverifiable(7, "needs asn1crypto")
    assert isinstance(error, BundleError)
    assert not isinstance(error, BundleInvalid)
    assert str(error) == "step 7 (timestamp): needs asn1crypto"


# -- gateway verify-proof ----------------------------------------------------------------------------------


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which nothing of the server can work: the data directory lies under a regular file
    (unreadable and uncreatable, even for root), the database is a port nobody listens on, and one setting is
    invalid, so that anything calling Settings() fails."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({
        "GATEWAY_DATA_DIR": str(blocker / "data"),
        "GATEWAY_DATABASE_URL": "postgresql+asyncpg://gateway@127.0.0.1:9/none",
        "GATEWAY_PORT": "not-a-port",
        "NO_PROXY": "*", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
    })
    return env


def run_gateway(env: dict[str, str], *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, timeout=120,
                          check=False, input=stdin)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("utf-8"),
                                       done.stderr.decode("utf-8"))


def test_the_environment_would_break_any_command_that_reads_settings(offline_env: dict[str, str]) -> None:
    """The control for the tests below: `gateway migrate` (which builds Settings) fails in this environment."""
    done = run_gateway(offline_env, "migrate")
    assert done.returncode != 0


def test_verify_proof_prints_what_was_proven(gateway: KeyPair, tsa: Issued, stamped: dict[str, Any],
                                            offline_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_bytes(encode(stamped))
    (tmp_path / "gateway.pem").write_text(gateway.cert_pem)
    (tmp_path / "tsa.pem").write_bytes(tsa.cert_pem)
    done = run_gateway(offline_env, "verify-proof", str(tmp_path / "bundle.json"), "--gateway-cert",
                       str(tmp_path / "gateway.pem"), "--tsa-cert", str(tmp_path / "tsa.pem"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"verified: document {DOCUMENT} (DocumentId {DOCUMENT_ID}, sender {SENDER})"
    assert f"envelope sha256: {ENVELOPE_SHA256}" in lines
    assert lines[2] == (f"sent: {_both(_instant(ACCEPTED))}, ledger entry "
                        f"{ACCEPTED} (envelope.accepted, actor agency:{SENDER})")
    received = [line for line in lines if line.startswith("received by ")]
    assert received[0].startswith(f"received by 000.00.00.H41: {_both(_received(15))}, ledger entry 15 "
                                  "(delivery.delivered")
    assert len(received) == 2
    assert "pending: 000.00.02.H41 (no delivered entry within this checkpoint)" in lines
    assert any(line.startswith(f"ledger: 3 entries included in the tree of {SIZE} entries, root ") for line in lines)
    assert f"signer: gateway certificate sha256 {gateway.sha256}" in done.stdout
    assert "signer pinned: yes (the certificate given out of band)" in lines
    timestamp = next(line for line in lines if line.startswith("timestamp: "))
    assert "Test TSA (bundle)" in timestamp
    assert "+07:00 (" in timestamp
    assert "Z)" in timestamp
    assert ", pinned)" in timestamp
    assert lines[-1].startswith("receipt: sha256 ")
    assert "not verified offline" in lines[-1]
    assert done.stderr == ""


def test_verify_proof_reads_stdin_and_says_when_the_signer_is_not_pinned(
    bundle: dict[str, Any], offline_env: dict[str, str]
) -> None:
    done = run_gateway(offline_env, "verify-proof", "-", stdin=encode(bundle))
    assert done.returncode == 0, done.stderr
    assert "signer pinned: NO" in done.stdout
    assert "timestamp: none (the checkpoint's time rests on the gateway alone)" in done.stdout


def test_verify_proof_names_the_step_that_failed_and_exits_1(
    gateway: KeyPair, impostor: KeyPair, bundle: dict[str, Any], offline_env: dict[str, str], tmp_path: Path
) -> None:
    changed = copy.deepcopy(bundle)
    changed["entries"][1]["recorded_at"] = flip_char(changed["entries"][1]["recorded_at"], -2)
    (tmp_path / "changed.json").write_bytes(encode(changed))
    (tmp_path / "good.json").write_bytes(encode(bundle))
    (tmp_path / "gateway.pem").write_text(gateway.cert_pem)
    (tmp_path / "impostor.pem").write_text(impostor.cert_pem)
    done = run_gateway(offline_env, "verify-proof", str(tmp_path / "changed.json"), "--gateway-cert",
                       str(tmp_path / "gateway.pem"))
    assert done.returncode == 1
    assert done.stdout == "NOT VERIFIED: step 4 (entries): entry 15: its hash does not match its fields\n"
    done = run_gateway(offline_env, "verify-proof", str(tmp_path / "good.json"), "--gateway-cert",
                       str(tmp_path / "impostor.pem"))
    assert done.returncode == 1
    assert done.stdout.startswith("NOT VERIFIED: step 2 (gateway certificate): ")


def test_verify_proof_refuses_files_it_cannot_read(gateway: KeyPair, bundle: dict[str, Any],
                                                   offline_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "good.json").write_bytes(encode(bundle))
    (tmp_path / "junk.pem").write_text("no certificate here")
    for args, message in (
        ((str(tmp_path / "missing.json"),), "cannot read"),
        ((str(tmp_path / "good.json"), "--gateway-cert", str(tmp_path / "junk.pem")), "no readable PEM"),
        ((str(tmp_path / "good.json"), "--tsa-cert", str(tmp_path / "missing.pem")), "cannot read"),
    ):
        done = run_gateway(offline_env, "verify-proof", *args)
        assert done.returncode == 1, (args, done.stdout)
        assert done.stderr.startswith("error: "), done.stderr
        assert message in done.stderr, done.stderr

