"""The offline verifier of a document's proof bundle, pure: what ``GET /v1/documents/{id}/proof`` answers.

Why this exists: issue 18 points 3 and 5. A receipt alone proves that the gateway signed a statement. The
bundle adds what lets anyone check, years later and with no database, no network and no trust in the
gateway's operator beyond its certificate, that the message's acceptance entry (its sent instant, Điều
11.1) and each recipient's ``delivery.delivered`` entry (its received instant, Điều 11.2) stand in the
ledger under a checkpoint the gateway signed, and, when the bundle carries one, that a timestamping
authority saw that checkpoint by a given time.

The bundle (JSON, UTF-8; ``format`` ``gateway-proof-bundle/v1``)::

    {"format": "gateway-proof-bundle/v1",
     "document": "<gateway document id>",
     "receipt": "<base64 of the signed receipt XML, as intake returned it>",
     "entries": [{"seq", "recorded_at", "type", "actor", "document", "document_id", "sender", "recipient",
                  "prev_hash", "details", "hash", "proof": ["<hex>", ...]}, ...],
     "tree_size": <int>,
     "checkpoint": "<C2SP signed note text of the checkpoint of tree_size entries>",
     "gateway_certificate": "<PEM>",
     "timestamp": null | {"token": "<base64 DER TimeStampToken over SHA-256 of the checkpoint note bytes>"},
     "pending": ["<recipient code>", ...]}

:func:`verify_bundle` fails closed: it returns a :class:`BundleVerdict` only when every step below held,
and otherwise raises the :class:`BundleError` of the first step that did not, naming it (``step``) and why
(``reason``, which never echoes the bundle's bytes beyond a sequence number or a recipient code).

 1. **Format.** The bytes are at most :data:`MAX_BUNDLE_BYTES`, UTF-8 JSON with no duplicate key, no NaN or
    Infinity; the object has exactly the keys above, ``format`` is ``gateway-proof-bundle/v1``, every value
    has its type and stays within its bound (:data:`MAX_ENTRIES` entries, :data:`MAX_PROOF_HASHES` hashes per
    proof, :data:`MAX_RECEIPT_BYTES`, :data:`MAX_FIELD_CHARS`, …); hashes are lowercase hex, base64 is
    canonical, ``recorded_at`` is the ledger's canonical ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. **Unknown keys are
    refused**, at every level: a verifier that skipped a member would let a reader believe it was checked;
    a bundle with more to say is a new ``format``. A mapping already parsed (``data`` not bytes) gets every
    check but the byte-level ones.
 2. **The gateway certificate.** The bundle's is one PEM certificate. When the caller gives one (learnt out
    of band: ``GET /v1/gateway/certificate`` at the time, the gateway's publication, the agency's records:
    the point of an offline proof), the bundle's must be that very certificate (the same DER). When the
    caller gives none, the bundle's own is used and the verdict says so (``signer_pinned`` False): the bundle
    is then only shown consistent and signed by a key it brought itself, which anyone can make. Only the
    key is used: no validity period or chain is judged (the proof is meant to outlive the certificate).
 3. **The checkpoint.** The note's origin is its first line; the note is opened
    (:func:`gateway.ledger.note.open_note`) with ``NoteVerifier.from_certificate(origin, certificate)`` (the
    gateway's signature line carries the origin as its key name) and its text parsed as a checkpoint
    (:func:`~gateway.ledger.note.parse_checkpoint`), whose size must be ``tree_size``. The root it signs is
    the one every inclusion proof must reach. Other signature lines (a witness's cosignatures) are counted,
    not verified.
 4. **Each entry.** Its hash is recomputed from its fields exactly as the ledger computes it
    (:func:`gateway.ledger.chain.entry_hash`) and must be ``hash``; its ``details`` must be the canonical
    JSON object text the ledger stores (so that it has one reading); then the inclusion proof must put
    ``leaf_hash(bytes.fromhex(hash))`` at leaf ``seq`` of the tree of ``tree_size`` leaves whose root the
    checkpoint signed (:func:`gateway.ledger.merkle.check_inclusion`, RFC 9162).
 5. **The document.** The first entry is the acceptance entry of ``document`` (``envelope.accepted`` or
    ``status.accepted``, its ``document`` column the bundle's); every other entry is a
    ``delivery.delivered`` entry of the same document (same ``document``, ``document_id`` and ``sender``),
    later in the ledger, in ``seq`` order, each of a distinct recipient, each with its received instant
    (``details.received_at``, an ISO 8601 instant with its offset). The acceptance entry's details name the
    envelope's SHA-256 and the message's recipients (``recipients`` for a document, ``routed_to`` for a
    status).
 6. **The receipt.** Base64 of at most :data:`MAX_RECEIPT_BYTES`, parsed with the standard library
    (``xml.etree``; no DOCTYPE, entity declaration, comment or CDATA section is admitted: the gateway writes
    none, and so no entity is ever expanded). Its elements stand in the order ``envelope.receipt``
    documents, ``version="1"``, its ``ds:Signature`` last. Its GatewayDocumentId must be ``document``, its
    Ledger/Sequence and Ledger/EntryHash the acceptance entry's ``seq`` and ``hash``, its SentAt the entry's
    ``recorded_at`` (the receipt writes it, as the ledger does, in UTC with six digits of microseconds) and
    its SentAtLocal the same instant at +07:00; its DocumentId, Sender, Kind (``document`` or ``status``) and
    EnvelopeSha256 those of the entry. Its recipients are named by the acceptance entry; every delivered
    entry's recipient is one of them, and ``pending`` is exactly the rest.

    **The receipt's own XML signature is NOT verified offline.** It needs exclusive XML canonicalisation,
    which the standard library does not have (``xmlsec1 --verify --pubkey-cert-pem gateway.pem receipt.xml``
    or :func:`gateway.envelope.verify_receipt` check it where lxml is installed). The proof does not rest on
    it: it rests on the acceptance entry (whose hash covers the sent instant, the sender, the DocumentId, the
    envelope's SHA-256 and the recipients), its inclusion under the checkpoint, and the gateway's signature
    on that checkpoint. The receipt is bound to the entry by its sequence and entry hash; what else it
    states is reported only where the entry states it too.
 7. **The timestamp,** when the bundle carries one: the token is verified by
    :func:`gateway.ledger.timestamp.verify_token` over SHA-256 of the checkpoint note's bytes (the whole
    note as the bundle holds it, UTF-8), with no nonce (a stored token), against ``tsa_certificates`` when
    given (the authority pinned) or else the certificate the token carries (the verdict says it was not
    pinned). That module needs ``asn1crypto``; it is imported only here, so a bundle without a token is
    verified with ``cryptography`` and the standard library alone, and a bundle with one, where
    ``asn1crypto`` is missing, raises :class:`BundleUnverifiable`. TSA certificates given for a bundle that
    carries no token are a refusal: the caller asked for a third party's time and the bundle has none.

What a verdict states, and only that: :class:`BundleVerdict`.

The errors (plain exceptions, not ``GatewayError``: they judge a file on someone's desk, never a request)::

    BundleError                  (.step: 1-7, .step_name, .reason)
    ├── BundleInvalid            a step failed: the bundle proves nothing
    └── BundleUnverifiable       this installation cannot run a step (asn1crypto missing for a token)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Literal, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.ledger import merkle, note
from gateway.ledger.chain import EntryFields, canonical_json, entry_hash, format_instant

__all__ = [
    "ACCEPTANCE_TYPES",
    "BUNDLE_FORMAT",
    "DELIVERED_TYPE",
    "STEPS",
    "BundleError",
    "BundleInvalid",
    "BundleUnverifiable",
    "BundleVerdict",
    "ProvenEntry",
    "ProvenTimestamp",
    "describe",
    "verify_bundle",
]

BUNDLE_FORMAT: Final = "gateway-proof-bundle/v1"
ACCEPTANCE_TYPES: Final = frozenset({"envelope.accepted", "status.accepted"})
DELIVERED_TYPE: Final = "delivery.delivered"

#: The whole bundle: a receipt at its limit in base64, and every entry with its proof, fit well within.
MAX_BUNDLE_BYTES: Final = 32 * 1024 * 1024
#: The receipt XML: the limit :func:`gateway.envelope.verify_receipt` reads receipts within.
MAX_RECEIPT_BYTES: Final = 16 * 1024 * 1024
#: The acceptance entry and one delivered entry per recipient (an envelope names 500 at most by default).
MAX_ENTRIES: Final = 10_001
#: An inclusion proof in a tree of at most 2**64 - 1 leaves has at most 64 hashes.
MAX_PROOF_HASHES: Final = 64
#: One entry column, a recipient code, the document id.
MAX_FIELD_CHARS: Final = 4096
#: One entry's details text.
MAX_DETAILS_CHARS: Final = 1024 * 1024
#: The gateway certificate's PEM.
MAX_CERTIFICATE_CHARS: Final = 64 * 1024
#: The timestamp token in base64 (a token carrying a chain is a few kB).
MAX_TOKEN_CHARS: Final = 256 * 1024

#: What each step checks, by number (the module docstring tells them in full).
STEPS: Final[Mapping[int, str]] = {
    1: "format",
    2: "gateway certificate",
    3: "checkpoint",
    4: "entries",
    5: "document",
    6: "receipt",
    7: "timestamp",
}

VN_TZ: Final = timezone(timedelta(hours=7), "+07:00")

_TOP_KEYS: Final = frozenset({"format", "document", "receipt", "entries", "tree_size", "checkpoint",
                              "gateway_certificate", "timestamp", "pending"})
_ENTRY_KEYS: Final = frozenset({"seq", "recorded_at", "type", "actor", "document", "document_id", "sender",
                                "recipient", "prev_hash", "details", "hash", "proof"})
_TIMESTAMP_KEYS: Final = frozenset({"token"})
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_INSTANT: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")
_PEM_BEGIN: Final = "-----BEGIN CERTIFICATE-----"

_RECEIPT_NS: Final = "urn:gateway:receipt:1"  # gateway.envelope.receipt.RECEIPT_NS (that package needs lxml)
_DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
_RECEIPT_ORDER: Final = ("GatewayDocumentId", "DocumentId", "Kind", "Sender", "Recipients", "EnvelopeSha256",
                         "Attachments", "Signed", "SignerCertificateSha256", "SentAt", "SentAtLocal", "Ledger")
_OPTIONAL_RECEIPT_ELEMENTS: Final = frozenset({"SignerCertificateSha256"})
_KINDS: Final[Mapping[str, str]] = {"envelope.accepted": "document", "status.accepted": "status"}
_RECIPIENTS_DETAIL: Final[Mapping[str, str]] = {"envelope.accepted": "recipients", "status.accepted": "routed_to"}


# -- errors ------------------------------------------------------------------------------------------------


class BundleError(Exception):
    """A bundle that proves nothing here; ``step`` (1-7, :data:`STEPS`) and ``reason`` say where and why."""

    def __init__(self, step: int, reason: str) -> None:
        self.step = step
        self.step_name = STEPS[step]
        self.reason = reason
        super().__init__(f"step {step} ({self.step_name}): {reason}")


class BundleInvalid(BundleError):
    """A check failed: the bundle is malformed, altered, or not what it claims to be."""


class BundleUnverifiable(BundleError):
    """This installation cannot run a step the bundle needs (``asn1crypto`` missing for a timestamp token)."""


# -- the verdict -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProvenEntry:
    """A ledger entry shown to hash from its fields and to stand at leaf ``seq`` under the signed checkpoint.

    ``recorded_at`` is the ledger's instant: for the acceptance entry, the sent instant (Điều 11.1).
    ``received_at`` is a delivered entry's received instant (Điều 11.2), read from its hashed details (the
    push answer's, the pull acknowledgement's, or the one an upstream reported); None for the acceptance.
    """

    seq: int
    type: str
    recorded_at: datetime  # aware, UTC
    actor: str
    recipient: str | None
    hash: str  # lowercase hex
    received_at: datetime | None = None  # aware, in the offset written

    @property
    def instant(self) -> datetime:
        """The instant this entry proves: the received instant of a delivered entry, else the recorded one."""
        return self.received_at if self.received_at is not None else self.recorded_at


@dataclass(frozen=True, slots=True)
class ProvenTimestamp:
    """A timestamp token verified over SHA-256 of the checkpoint note: that note existed at ``gen_time``."""

    authority: str  # the TSTInfo's TSA name, else the signer certificate's subject
    gen_time: datetime  # aware, UTC
    serial_number: int
    policy: str  # dotted OID
    accuracy: timedelta | None
    signer_certificate_sha256: str
    pinned: bool  # the signer is one of the TSA certificates the caller gave


@dataclass(frozen=True, slots=True)
class BundleVerdict:
    """Exactly what a bundle proved (:func:`verify_bundle` returns one only when every step held).

    - ``acceptance``: the message's acceptance entry; its ``recorded_at`` is the sent instant (``sent_at``);
    - ``deliveries``: one ``delivery.delivered`` entry per recipient shown delivered, in ``seq`` order;
    - ``recipients``: the message's recipients (the receipt's, each named by the acceptance entry);
      ``pending``: those with no delivered entry in the bundle, i.e. not shown received within the checkpoint;
    - ``document_id``, ``sender``, ``kind``, ``envelope_sha256``: as the acceptance entry states them (the
      sender compares ``envelope_sha256`` with the SHA-256 of the envelope it sent);
    - ``tree_size``, ``root``: the tree the entries are in; ``checkpoint_origin``, ``checkpoint_key_id``,
      ``checkpoint_algorithm``: the signed checkpoint of it and the key that signed it; ``cosignatures``: the
      other signature lines the note holds, not verified;
    - ``gateway_certificate_sha256`` / ``_subject``: the certificate whose key signed the checkpoint;
      ``signer_pinned``: it is the one the caller gave (False: the bundle's own, taken on its word);
    - ``timestamp``: the authority's time for the checkpoint, or None (then the checkpoint's time rests on
      the gateway alone);
    - ``receipt_sha256``: the receipt checked against the acceptance entry. ``receipt_signature_verified`` is
      always False: its XML signature is not checked offline (step 6 of the module docstring).
    """

    document: str
    document_id: str | None
    sender: str | None
    kind: Literal["document", "status"]
    envelope_sha256: str
    acceptance: ProvenEntry
    deliveries: tuple[ProvenEntry, ...]
    recipients: tuple[str, ...]
    pending: tuple[str, ...]
    tree_size: int
    root: bytes
    checkpoint_origin: str
    checkpoint_key_id: int
    checkpoint_algorithm: str
    cosignatures: int
    gateway_certificate_sha256: str
    gateway_certificate_subject: str
    signer_pinned: bool
    timestamp: ProvenTimestamp | None
    receipt_sha256: str
    receipt_signature_verified: Literal[False] = False

    @property
    def sent_at(self) -> datetime:
        """The sent instant (Điều 11.1): the acceptance entry's recorded instant, as the receipt states it."""
        return self.acceptance.recorded_at

    @property
    def root_hex(self) -> str:
        return self.root.hex()


# -- the verifier ------------------------------------------------------------------------------------------


def verify_bundle(
    data: bytes | Mapping[str, Any],
    *,
    gateway_certificate: x509.Certificate | None,
    tsa_certificates: Sequence[x509.Certificate] | None = None,
) -> BundleVerdict:
    """Verify a proof bundle (its JSON bytes, or the mapping they parse to); see the module docstring.

    ``gateway_certificate``: the gateway's certificate as the caller knows it, or None to use the bundle's
    own (the verdict then says the signer was not pinned). ``tsa_certificates``: the timestamping
    authority's certificates to pin, or None to trust the one a token carries (the verdict says which).
    Raises :class:`BundleInvalid` (or :class:`BundleUnverifiable`) naming the first step that failed.
    """
    if gateway_certificate is not None and not isinstance(gateway_certificate, x509.Certificate):
        raise TypeError("gateway_certificate: an x509.Certificate or None")
    if tsa_certificates is not None and not all(isinstance(c, x509.Certificate) for c in tsa_certificates):
        raise TypeError("tsa_certificates: x509.Certificate instances")
    # 1. The JSON and its format, every value typed and bounded.
    bundle = _read_bundle(data)
    # 2. The gateway certificate: the caller's, which the bundle's must be; else the bundle's, not pinned.
    certificate = _certificate(bundle.gateway_certificate, gateway_certificate)
    # 3. The checkpoint note, opened with that certificate's key under the origin's name; its size.
    checkpoint, key_id, algorithm, cosignatures = _checkpoint(bundle, certificate)
    # 4. Each entry hashes from its fields and stands at leaf seq under the signed root.
    for entry in bundle.entries:
        _check_entry(entry, bundle.tree_size, checkpoint.root)
    # 5. The acceptance entry of the document first, then delivered entries of distinct recipients.
    acceptance, deliveries, envelope_sha256, named = _document(bundle)
    # 6. The receipt, bound to the acceptance entry; the recipients, the delivered and the pending.
    receipt = _receipt(bundle, named, deliveries)
    # 7. The timestamp of the checkpoint note, when there is one.
    timestamp = _timestamp(bundle, tsa_certificates)
    first = bundle.entries[0].fields
    der = certificate.public_bytes(serialization.Encoding.DER)
    return BundleVerdict(
        document=bundle.document,
        document_id=first.document_id,
        sender=first.sender,
        kind="status" if first.type == "status.accepted" else "document",
        envelope_sha256=envelope_sha256,
        acceptance=acceptance,
        deliveries=deliveries,
        recipients=receipt.recipients,
        pending=receipt.pending,
        tree_size=bundle.tree_size,
        root=checkpoint.root,
        checkpoint_origin=checkpoint.origin,
        checkpoint_key_id=key_id,
        checkpoint_algorithm=algorithm,
        cosignatures=cosignatures,
        gateway_certificate_sha256=hashlib.sha256(der).hexdigest(),
        gateway_certificate_subject=certificate.subject.rfc4514_string(),
        signer_pinned=gateway_certificate is not None,
        timestamp=timestamp,
        receipt_sha256=hashlib.sha256(bundle.receipt).hexdigest(),
    )


# -- 1. format ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    fields: EntryFields
    recorded_at: str  # as written, canonical
    hash: str
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _Bundle:
    document: str
    receipt: bytes
    entries: tuple[_Entry, ...]
    tree_size: int
    checkpoint: bytes
    gateway_certificate: str
    token: bytes | None
    pending: tuple[str, ...]


def _invalid(step: int, reason: str) -> NoReturn:
    raise BundleInvalid(step, reason)


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate key")
        out[key] = value
    return out


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _read_bundle(data: bytes | Mapping[str, Any]) -> _Bundle:
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > MAX_BUNDLE_BYTES:
            _invalid(1, f"the bundle is larger than {MAX_BUNDLE_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
            parsed = json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
        except UnicodeDecodeError:
            _invalid(1, "the bundle is not UTF-8")
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so are duplicate keys
            _invalid(1, "the bundle is not JSON (or holds a duplicate key, NaN or a number too large)")
    elif isinstance(data, Mapping):
        parsed = data
    else:
        _invalid(1, "a bundle is JSON bytes or the mapping they parse to")
    top = _object(parsed, _TOP_KEYS, "the bundle")
    if top["format"] != BUNDLE_FORMAT:
        _invalid(1, f"the format is not {BUNDLE_FORMAT}")
    raw_entries = top["entries"]
    if not isinstance(raw_entries, list) or not raw_entries:
        _invalid(1, "entries: a non-empty list")
    if len(raw_entries) > MAX_ENTRIES:
        _invalid(1, f"entries: at most {MAX_ENTRIES}")
    tree_size = _integer(top["tree_size"], "tree_size", minimum=1, maximum=note.MAX_TREE_SIZE)
    timestamp = top["timestamp"]
    token: bytes | None = None
    if timestamp is not None:
        token = _base64(_object(timestamp, _TIMESTAMP_KEYS, "timestamp")["token"], "timestamp.token",
                        MAX_TOKEN_CHARS)
    raw_pending = top["pending"]
    if not isinstance(raw_pending, list) or len(raw_pending) > MAX_ENTRIES:
        _invalid(1, f"pending: a list of at most {MAX_ENTRIES} recipient codes")
    receipt_b64_limit = 4 * ((MAX_RECEIPT_BYTES + 2) // 3)
    return _Bundle(
        document=_string(top["document"], "document"),
        receipt=_base64(top["receipt"], "receipt", receipt_b64_limit),
        entries=tuple(_read_entry(e, i) for i, e in enumerate(raw_entries)),
        tree_size=tree_size,
        checkpoint=_string(top["checkpoint"], "checkpoint", note.MAX_NOTE_BYTES).encode("utf-8"),
        gateway_certificate=_string(top["gateway_certificate"], "gateway_certificate", MAX_CERTIFICATE_CHARS),
        token=token,
        pending=tuple(_string(p, "pending") for p in raw_pending),
    )


def _read_entry(value: Any, index: int) -> _Entry:
    where = f"entries[{index}]"
    entry = _object(value, _ENTRY_KEYS, where)
    recorded_at = _string(entry["recorded_at"], f"{where}.recorded_at")
    if not _INSTANT.fullmatch(recorded_at):
        _invalid(1, f"{where}.recorded_at: not the ledger's YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        instant = datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        _invalid(1, f"{where}.recorded_at: not a calendar instant")
    raw_proof = entry["proof"]
    if not isinstance(raw_proof, list) or len(raw_proof) > MAX_PROOF_HASHES:
        _invalid(1, f"{where}.proof: a list of at most {MAX_PROOF_HASHES} hashes")
    fields = EntryFields(
        seq=_integer(entry["seq"], f"{where}.seq", minimum=0, maximum=note.MAX_TREE_SIZE - 1),
        recorded_at=instant,
        type=_string(entry["type"], f"{where}.type"),
        actor=_string(entry["actor"], f"{where}.actor"),
        document=_optional_string(entry["document"], f"{where}.document"),
        document_id=_optional_string(entry["document_id"], f"{where}.document_id"),
        sender=_optional_string(entry["sender"], f"{where}.sender"),
        recipient=_optional_string(entry["recipient"], f"{where}.recipient"),
        prev_hash=_hex64(entry["prev_hash"], f"{where}.prev_hash"),
        details=_string(entry["details"], f"{where}.details", MAX_DETAILS_CHARS),
    )
    proof = tuple(bytes.fromhex(_hex64(p, f"{where}.proof")) for p in raw_proof)
    return _Entry(fields=fields, recorded_at=recorded_at, hash=_hex64(entry["hash"], f"{where}.hash"), proof=proof)


def _object(value: Any, keys: frozenset[str], what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _invalid(1, f"{what}: a JSON object")
    present = set(value)
    if not all(isinstance(k, str) for k in present):
        _invalid(1, f"{what}: keys are strings")
    if present - keys:
        _invalid(1, f"{what}: unknown member(s) {', '.join(sorted(present - keys))[:200]}")
    if keys - present:
        _invalid(1, f"{what}: missing member(s) {', '.join(sorted(keys - present))}")
    return value


def _string(value: Any, what: str, limit: int = MAX_FIELD_CHARS) -> str:
    if not isinstance(value, str):
        _invalid(1, f"{what}: a string")
    if len(value) > limit:
        _invalid(1, f"{what}: at most {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, written as an escape in the JSON
        _invalid(1, f"{what}: not encodable as UTF-8")
    return value


def _optional_string(value: Any, what: str) -> str | None:
    return None if value is None else _string(value, what)


def _integer(value: Any, what: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        _invalid(1, f"{what}: an integer from {minimum} to {maximum}")
    return value


def _hex64(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        _invalid(1, f"{what}: 64 lowercase hex digits")
    return value


def _base64(value: Any, what: str, limit: int) -> bytes:
    text = _string(value, what, limit)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        _invalid(1, f"{what}: not base64")
    if base64.b64encode(raw).decode("ascii") != text:
        _invalid(1, f"{what}: not canonical padded base64")
    if not raw:
        _invalid(1, f"{what}: empty")
    return raw


# -- 2. gateway certificate --------------------------------------------------------------------------------


def _certificate(pem: str, given: x509.Certificate | None) -> x509.Certificate:
    if pem.count(_PEM_BEGIN) != 1:
        _invalid(2, "the bundle's gateway certificate is not exactly one PEM certificate")
    try:
        (carried,) = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except ValueError:
        _invalid(2, "the bundle's gateway certificate cannot be read")
    if given is None:
        return carried
    der = carried.public_bytes(serialization.Encoding.DER)
    if der != given.public_bytes(serialization.Encoding.DER):
        _invalid(2, "the bundle's gateway certificate is not the one given")
    return given


# -- 3. checkpoint -----------------------------------------------------------------------------------------


def _checkpoint(bundle: _Bundle, certificate: x509.Certificate) -> tuple[note.Checkpoint, int, str, int]:
    origin_bytes, newline, _ = bundle.checkpoint.partition(b"\n")
    if not newline or not origin_bytes:
        _invalid(3, "the checkpoint has no origin line")
    origin = origin_bytes.decode("utf-8")  # a str in the JSON, so UTF-8
    try:
        verifier = note.NoteVerifier.from_certificate(origin, certificate)
    except note.NoteKeyInvalid as exc:
        _invalid(3, f"no note verifier for the checkpoint's origin and the gateway certificate: {exc.reason}")
    try:
        opened = note.open_note(bundle.checkpoint, [verifier])
        checkpoint = note.parse_checkpoint(opened.text)
    except note.NoteError as exc:
        _invalid(3, f"the checkpoint note: {exc.reason}")
    if checkpoint.origin != origin:  # parse_checkpoint read the same first line; kept as a guard
        _invalid(3, "the checkpoint's origin is not its first line")
    if checkpoint.size != bundle.tree_size:
        _invalid(3, f"the checkpoint signs tree size {checkpoint.size}, not tree_size {bundle.tree_size}")
    return checkpoint, verifier.key_id, verifier.algorithm, len(opened.unverified)


# -- 4. entries --------------------------------------------------------------------------------------------


def _check_entry(entry: _Entry, tree_size: int, root: bytes) -> None:
    fields = entry.fields
    seq = fields.seq
    if format_instant(fields.recorded_at) != entry.recorded_at:  # the regex and strptime make this hold
        _invalid(4, f"entry {seq}: recorded_at does not write back as given")
    try:
        details = json.loads(fields.details, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
        canonical = isinstance(details, dict) and canonical_json(details) == fields.details
    except (ValueError, RecursionError):
        canonical = False
    if not canonical:
        _invalid(4, f"entry {seq}: details is not the canonical JSON object text the ledger stores")
    if entry_hash(fields) != entry.hash:
        _invalid(4, f"entry {seq}: its hash does not match its fields")
    try:
        merkle.check_inclusion(merkle.leaf_hash(bytes.fromhex(entry.hash)), seq, tree_size, entry.proof, root)
    except merkle.InvalidProof as exc:
        _invalid(4, f"entry {seq}: {exc.reason}")


# -- 5. document -------------------------------------------------------------------------------------------


def _details(entry: _Entry) -> dict[str, Any]:
    details: dict[str, Any] = json.loads(entry.fields.details)  # step 4 found it a canonical JSON object
    return details


def _document(bundle: _Bundle) -> tuple[ProvenEntry, tuple[ProvenEntry, ...], str, frozenset[str]]:
    first, *others = bundle.entries
    f = first.fields
    if f.type not in ACCEPTANCE_TYPES:
        _invalid(5, "the first entry is not an acceptance entry (envelope.accepted or status.accepted)")
    if f.document != bundle.document:
        _invalid(5, f"the acceptance entry {f.seq} is not the document's")
    details = _details(first)
    envelope_sha256 = details.get("envelope_sha256")
    if not isinstance(envelope_sha256, str) or not _HEX64.fullmatch(envelope_sha256):
        _invalid(5, f"the acceptance entry {f.seq} names no envelope SHA-256")
    named = details.get(_RECIPIENTS_DETAIL[f.type])
    if not isinstance(named, list) or not all(isinstance(code, str) for code in named):
        _invalid(5, f"the acceptance entry {f.seq} names no recipients ({_RECIPIENTS_DETAIL[f.type]})")
    acceptance = ProvenEntry(seq=f.seq, type=f.type, recorded_at=f.recorded_at, actor=f.actor,
                             recipient=f.recipient, hash=first.hash)
    deliveries: list[ProvenEntry] = []
    seen: set[str] = set()
    previous = f.seq
    for entry in others:
        d = entry.fields
        if d.type != DELIVERED_TYPE:
            _invalid(5, f"entry {d.seq} is not a {DELIVERED_TYPE} entry")
        if (d.document, d.document_id, d.sender) != (f.document, f.document_id, f.sender):
            _invalid(5, f"entry {d.seq} is not about the document (document, DocumentId or sender differ)")
        if d.seq <= previous:
            _invalid(5, f"entry {d.seq} is not after the entry before it (entries go by seq, acceptance first)")
        previous = d.seq
        if d.recipient is None:
            _invalid(5, f"entry {d.seq} names no recipient")
        if d.recipient in seen:
            _invalid(5, f"a second delivered entry for recipient {d.recipient}")
        seen.add(d.recipient)
        received = _details(entry).get("received_at")
        received_at = _received_at(received)
        if received_at is None:
            _invalid(5, f"entry {d.seq} states no readable received instant (details.received_at)")
        deliveries.append(ProvenEntry(seq=d.seq, type=d.type, recorded_at=d.recorded_at, actor=d.actor,
                                      recipient=d.recipient, hash=entry.hash, received_at=received_at))
    return acceptance, tuple(deliveries), envelope_sha256, frozenset(named)


def _received_at(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if instant.tzinfo is not None and instant.utcoffset() is not None else None


# -- 6. receipt --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Recipients:
    recipients: tuple[str, ...]
    pending: tuple[str, ...]


def _r(local: str) -> str:
    return f"{{{_RECEIPT_NS}}}{local}"


def _parse_receipt(raw: bytes) -> ET.Element:
    if len(raw) > MAX_RECEIPT_BYTES:
        _invalid(6, f"the receipt is larger than {MAX_RECEIPT_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _invalid(6, "the receipt is not UTF-8")
    # No DOCTYPE, so no entity is declared and none expanded; comments and CDATA go with it (none written).
    if "<!" in text:
        _invalid(6, "the receipt holds a DOCTYPE, a declaration, a comment or a CDATA section")
    if text.startswith("<?xml"):
        declaration = text[: text.find("?>") + 2]
        if re.search(r"encoding\s*=", declaration) and not re.search(r"""encoding\s*=\s*["']UTF-8["']""",
                                                                       declaration, re.IGNORECASE):
            _invalid(6, "the receipt's XML declaration names another encoding than UTF-8")
    try:
        return ET.fromstring(raw)  # noqa: S314 - bounded, UTF-8, no DTD (checked above)
    except (ET.ParseError, ValueError, RecursionError):
        _invalid(6, "the receipt is not well-formed XML")


def _elements(parent: ET.Element) -> list[ET.Element]:
    return list(parent)


def _text(element: ET.Element, what: str) -> str:
    if len(element) or element.text is None or not element.text:
        _invalid(6, f"the receipt's {what} is not a text element")
    return element.text


def _receipt(bundle: _Bundle, named: frozenset[str], deliveries: tuple[ProvenEntry, ...]) -> _Recipients:
    root = _parse_receipt(bundle.receipt)
    if root.tag != _r("Receipt") or root.attrib != {"version": "1"}:
        _invalid(6, "not a gateway receipt of version 1")
    children = _elements(root)
    if not children or children[-1].tag != f"{{{_DS_NS}}}Signature":
        _invalid(6, "the receipt does not end in its ds:Signature (its signature is not verified offline)")
    found = {child.tag: child for child in children[:-1]}
    expected = [_r(name) for name in _RECEIPT_ORDER if name not in _OPTIONAL_RECEIPT_ELEMENTS or _r(name) in found]
    if [child.tag for child in children[:-1]] != expected:
        _invalid(6, "the receipt's elements are not those of a gateway receipt, in their order")
    first = bundle.entries[0]
    f = first.fields

    def element(name: str) -> str:
        return _text(found[_r(name)], name)

    if element("GatewayDocumentId") != bundle.document:
        _invalid(6, "the receipt's GatewayDocumentId is not the bundle's document")
    ledger = _elements(found[_r("Ledger")])
    if [child.tag for child in ledger] != [_r("Sequence"), _r("EntryHash")]:
        _invalid(6, "the receipt's Ledger is not a Sequence and an EntryHash")
    sequence = _text(ledger[0], "Ledger/Sequence")
    if not _DECIMAL.fullmatch(sequence) or len(sequence) > 20 or int(sequence) != f.seq:
        _invalid(6, f"the receipt's ledger sequence is not the acceptance entry's ({f.seq})")
    if _text(ledger[1], "Ledger/EntryHash") != first.hash:
        _invalid(6, f"the receipt's ledger entry hash is not the acceptance entry's ({f.seq})")
    if element("SentAt") != first.recorded_at:
        _invalid(6, f"the receipt's SentAt is not the recorded instant of the acceptance entry {f.seq}")
    local = f.recorded_at.astimezone(VN_TZ).strftime("%Y-%m-%dT%H:%M:%S.%f+07:00")
    if element("SentAtLocal") != local:
        _invalid(6, "the receipt's SentAtLocal is not its SentAt at +07:00")
    if element("DocumentId") != f.document_id or element("Sender") != f.sender:
        _invalid(6, "the receipt's DocumentId or Sender is not the acceptance entry's")
    if element("Kind") != _KINDS[f.type]:
        _invalid(6, f"the receipt's Kind is not {_KINDS[f.type]} ({f.type})")
    if element("EnvelopeSha256") != _details(first)["envelope_sha256"]:
        _invalid(6, "the receipt's EnvelopeSha256 is not the one the acceptance entry states")
    recipient_elements = _elements(found[_r("Recipients")])
    if any(child.tag != _r("Recipient") for child in recipient_elements):
        _invalid(6, "the receipt's Recipients holds something other than Recipient elements")
    recipients = tuple(_text(child, "Recipient") for child in recipient_elements)
    if len(set(recipients)) != len(recipients):
        _invalid(6, "the receipt names a recipient twice")
    unnamed = [code for code in recipients if code not in named]
    if unnamed:
        _invalid(6, f"the receipt names recipient(s) the acceptance entry does not: {', '.join(unnamed)[:200]}")
    delivered = {d.recipient for d in deliveries}
    stray = [d.recipient for d in deliveries if d.recipient not in recipients]
    if stray:
        _invalid(6, f"delivered entry for a recipient the receipt does not name: {stray[0]}")
    pending = tuple(code for code in recipients if code not in delivered)
    if len(set(bundle.pending)) != len(bundle.pending) or set(bundle.pending) != set(pending):
        _invalid(6, "pending is not exactly the receipt's recipients without a delivered entry in the bundle")
    return _Recipients(recipients=recipients, pending=pending)


# -- 7. timestamp ------------------------------------------------------------------------------------------


@contextmanager
def _unverifiable_without_asn1crypto() -> Iterator[None]:
    try:
        yield
    except ModuleNotFoundError as exc:
        raise BundleUnverifiable(
            7, f"verifying the timestamp token needs asn1crypto (module {exc.name!r} is not installed)"
        ) from exc


def _timestamp(bundle: _Bundle, tsa_certificates: Sequence[x509.Certificate] | None) -> ProvenTimestamp | None:
    if bundle.token is None:
        if tsa_certificates:
            _invalid(7, "TSA certificates were given, and the bundle carries no timestamp")
        return None
    with _unverifiable_without_asn1crypto():
        # Here and only here: a bundle without a token needs cryptography and the standard library alone.
        from gateway.ledger import timestamp as rfc3161
    trusted = list(tsa_certificates) if tsa_certificates else None  # none given (or an empty list): not pinned
    try:
        result = rfc3161.verify_token(
            bundle.token, digest=hashlib.sha256(bundle.checkpoint).digest(), nonce=None, tsa_certificates=trusted
        )
    except rfc3161.TimestampError as exc:
        _invalid(7, f"the timestamp token: {exc.reason}")
    authority = result.tsa_name or result.signer_certificate.subject.rfc4514_string()
    return ProvenTimestamp(
        authority=authority,
        gen_time=result.gen_time,
        serial_number=result.serial_number,
        policy=result.policy,
        accuracy=result.accuracy,
        signer_certificate_sha256=result.signer_certificate_sha256,
        pinned=trusted is not None,
    )


# -- saying what was proven --------------------------------------------------------------------------------


def _instant(value: datetime) -> str:
    """An instant at +07:00 (Vietnam's legal time) and in UTC, to the microsecond."""
    local = value.astimezone(VN_TZ).strftime("%Y-%m-%dT%H:%M:%S.%f+07:00")
    return f"{local} ({value.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')})"


def describe(verdict: BundleVerdict) -> list[str]:
    """What ``verdict`` proved, in plain lines (``gateway verify-proof`` prints them)."""
    kind = "status message" if verdict.kind == "status" else "document"
    a = verdict.acceptance
    lines = [
        f"verified: {kind} {verdict.document} (DocumentId {verdict.document_id}, sender {verdict.sender})",
        f"envelope sha256: {verdict.envelope_sha256}",
        f"sent: {_instant(a.recorded_at)}, ledger entry {a.seq} ({a.type}, actor {a.actor})",
    ]
    for d in verdict.deliveries:
        assert d.received_at is not None  # every delivered entry has one (step 5)
        lines.append(f"received by {d.recipient}: {_instant(d.received_at)}, ledger entry {d.seq} "
                     f"({d.type}, recorded {_instant(d.recorded_at)})")
    for code in verdict.pending:
        lines.append(f"pending: {code} (no delivered entry within this checkpoint)")
    lines.append(f"ledger: {len(verdict.deliveries) + 1} entries included in the tree of {verdict.tree_size} "
                 f"entries, root {verdict.root_hex}")
    cosigned = f", {verdict.cosignatures} other signature(s) not verified" if verdict.cosignatures else ""
    lines.append(f"checkpoint: origin {verdict.checkpoint_origin}, key id {verdict.checkpoint_key_id:08x} "
                 f"({verdict.checkpoint_algorithm}){cosigned}")
    lines.append(f"signer: gateway certificate sha256 {verdict.gateway_certificate_sha256} "
                 f"({verdict.gateway_certificate_subject})")
    if verdict.signer_pinned:
        lines.append("signer pinned: yes (the certificate given out of band)")
    else:
        lines.append("signer pinned: NO (the bundle's own certificate was used: compare its sha256 with the "
                     "gateway's published certificate, or give that certificate)")
    t = verdict.timestamp
    if t is None:
        lines.append("timestamp: none (the checkpoint's time rests on the gateway alone)")
    else:
        pinned = "pinned" if t.pinned else "NOT pinned (the certificate the token carries)"
        lines.append(f"timestamp: the checkpoint existed at {_instant(t.gen_time)}, per {t.authority} "
                     f"(serial {t.serial_number}, policy {t.policy}, TSA certificate sha256 "
                     f"{t.signer_certificate_sha256}, {pinned})")
    lines.append(f"receipt: sha256 {verdict.receipt_sha256}, bound to ledger entry {a.seq}; its XML signature "
                 "is not verified offline")
    return lines
