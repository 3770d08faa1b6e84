"""Checkpoints as C2SP signed notes, pure: the checkpoint text, signing it, cosignatures, opening a note.

Why this exists: issue 18 point 2. The v1 checkpoint (:mod:`gateway.ledger.checkpoint`, which stays) is a
format of the gateway's own. The transparency-log world shares one: a checkpoint (c2sp.org/tlog-checkpoint)
is the text of a signed note (c2sp.org/signed-note), and witnesses, monitors and verifiers that know the
format can read and cosign the gateway's checkpoints with no code of ours. This module makes and checks
those bytes and does no I/O; whatever publishes, stores or verifies them offline uses these functions.

A checkpoint note (:func:`checkpoint_body` then :func:`sign_note`)::

    gateway.example.gov.vn/ledger                      origin: non-empty, no control characters
    20852163                                           tree size: decimal, no leading zeros ("0" alone)
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=       root hash: base64 (RFC 4648 §4, padded), 32 bytes
    <extension lines, optional, each non-empty>
                                                       one blank line
    — gateway.example.gov.vn/ledger AbCd…             signature lines: em dash, space, key name, space,
    — witness.example.org/audit EfGh…                   base64(4-byte key ID, big-endian || signature)

Every line ends in one line feed; the note text is the lines above the last blank line, final newline
included, and is exactly what every signature signs.

Signature types and key IDs. The key ID is ``SHA-256(name || 0x0A || type || public key)[:4]`` (the
signed-note recommendation) except where the type's own specification says otherwise:

=====================  ========  ===========================================  ===========================
gateway key            type      public key encoding, key ID                  signature over the text
=====================  ========  ===========================================  ===========================
Ed25519                ``0x01``  32 raw bytes (RFC 8032); recommended ID      Ed25519 (RFC 8032)
ECDSA P-256/384/521    ``0x02``  DER SubjectPublicKeyInfo; ID is              ECDSA with **SHA-256** for
                                 ``SHA-256(DER SPKI)[:4]`` (no name, no type  every curve, ASN.1 DER
                                 byte), as github.com/transparency-dev does   ``Ecdsa-Sig-Value``
RSA (2048 bits +)      ``0xff``  :data:`RSA_IDENTIFIER` then DER SPKI;        RSASSA-PKCS1-v1_5 with
                                 recommended ID over all of it                SHA-256 (RFC 8017)
=====================  ========  ===========================================  ===========================

``0x02`` follows transparency-dev/formats ``note.NewECDSAVerifier`` (the Rekor and Pixel logs' keys):
``sha256.Sum256(der)`` for the key ID and ``ecdsa.VerifyASN1(key, sha256(msg), sig)``, so a P-384 key
signs the note's SHA-256 here, not its SHA-384 as in the v1 checkpoint (``ecdsa-p384-sha384``).

``0xff`` is the signed-note type "reserved for signature types without an identifier byte", followed, as
the specification recommends, by a longer identifier unlikely to collide: :data:`RSA_IDENTIFIER`. The
gateway's default key is RSA, and no byte is assigned to RSA. **A note signed with an RSA gateway key is a
valid signed note, but generic witness and verifier tooling (which knows 0x01, 0x02 and the cosignature
types) will not verify it**: it ignores the signature as one by an unknown key. Only verifiers that
implement the ``0xff`` type as documented here (this module, the gateway's offline verifier) check it. A
gateway key of Ed25519 or ECDSA gives standard notes that any note verifier holding the verifier key
(:attr:`NoteVerifier.verifier_key`) checks.

Cosignatures of other types (a witness's timestamped ``0x04`` cosignature/v1, c2sp.org/tlog-cosignature,
signs another message than the note text) are kept by :func:`add_signature` and handed back unverified by
:func:`open_note`: no verifier here has their key ID, so they are unknown keys' signatures.

Verifier keys (:attr:`NoteVerifier.verifier_key`, :meth:`NoteVerifier.from_verifier_key`) are written as
golang.org/x/mod/sumdb/note and transparency-dev write them: ``<name>+<key ID, 8 hex>+<base64(type ||
public key encoding)>``, for instance ``PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW``.

Opening a note fails closed (:func:`open_note`): it returns an :class:`OpenedNote` only when every step held,
and otherwise raises the :class:`NoteError` subclass of the first that did not:

 1. At most :data:`MAX_NOTE_BYTES` bytes, UTF-8, no control character (below U+0020) but the newline.
    (:class:`NoteMalformed`)
 2. Text and signatures split at the last blank line; the text ends in a newline; there is at least one
    signature line and at most :data:`MAX_SIGNATURES` (the specification asks for at least 16). Each line
    is an em dash, a space, a valid key name (non-empty, no Unicode space, no ``+``), a space, and canonical
    base64 of at least five bytes. (:class:`NoteMalformed`)
 3. A signature whose key name *and* key ID both match a given verifier is verified over the text; every
    such signature must verify, or the whole note is refused. (:class:`NoteSignatureInvalid`) Any other
    signature is an unknown key's: ignored, and handed back as unverified (a cosignature the caller may
    check with keys it learns later).
 4. At least one signature verified. (:class:`NoteUnverified`)

Only then is the text handed back: a caller reads :attr:`OpenedNote.text`, never the bytes it was given.
A checkpoint's text is then read with :func:`parse_checkpoint`, itself strict (:class:`CheckpointMalformed`).

The errors (``reason`` says why and never echoes the note's bytes; a verifier's own name may be named)::

    NoteError                        (.reason)
    ├── NoteMalformed                not a well-formed signed note (step 1, 2), or a bad signature line
    │   └── CheckpointMalformed      the text is not a well-formed checkpoint
    ├── NoteSignatureInvalid         a known key's signature does not verify (step 3) (.name, .key_id)
    ├── NoteUnverified               no known key's signature (step 4) (.signatures: the unknown ones)
    ├── NoteSignatureConflict        add_signature: the note holds another signature by that key
    └── NoteKeyInvalid               a key outside the allow-list, a bad key name or verifier key, or two
                                     verifiers with the same name and key ID

Producers (:func:`checkpoint_body`, :func:`sign_note`) raise ``ValueError`` for arguments that make no
note (a text without a final newline, a root that is not 32 bytes, …) and :class:`NoteKeyInvalid` for a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from gateway.ledger.checkpoint import ECDSA_P256_SHA256, ED25519, RSA_PKCS1V15_SHA256

#: Signature type bytes (c2sp.org/signed-note, "Signature types").
TYPE_ED25519: Final = 0x01
TYPE_ECDSA: Final = 0x02
TYPE_UNASSIGNED: Final = 0xFF

#: What follows the 0xff type byte for the gateway's RSA signatures, before the DER SubjectPublicKeyInfo:
#: the algorithm, spelled as the v1 checkpoint spells it, under a prefix that names this gateway's ledger.
RSA_IDENTIFIER: Final = b"gateway-ledger/rsa-pkcs1v15-sha256"

#: Signature lines accepted in one note: the specification asks for at least 16; golang.org/x/mod/sumdb/note
#: stops at 100, and so do we.
MAX_SIGNATURES: Final = 100

#: Bytes accepted in one note: 100 signature lines of post-quantum size (about 5 kB each, 6.7 kB in
#: base64) and a text of any reasonable checkpoint fit well within.
MAX_NOTE_BYTES: Final = 1 << 20

#: Largest tree size: the checkpoint parsers of the Go ecosystem read it as an unsigned 64-bit integer.
MAX_TREE_SIZE: Final = (1 << 64) - 1

#: Bytes of a checkpoint's root hash (SHA-256, RFC 6962 / RFC 9162).
ROOT_SIZE: Final = 32

ECDSA_P384_SHA256: Final = "ecdsa-p384-sha256"
ECDSA_P521_SHA256: Final = "ecdsa-p521-sha256"

MIN_RSA_BITS: Final = 2048

SIGNATURE_PREFIX: Final = "\u2014 "  # em dash, space
_PREFIX: Final = SIGNATURE_PREFIX.encode("utf-8")
_KEY_ID_SIZE: Final = 4

_ECDSA_ALGORITHMS: Final[dict[type[ec.EllipticCurve], str]] = {
    ec.SECP256R1: ECDSA_P256_SHA256,
    ec.SECP384R1: ECDSA_P384_SHA256,
    ec.SECP521R1: ECDSA_P521_SHA256,
}

#: Unicode White_Space, the characters Go's ``unicode.IsSpace`` answers true for: a key name holds none.
_WHITE_SPACE: Final = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_CONTROL: Final = re.compile(rb"[\x00-\x09\x0b-\x1f]")
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")
_HEX8: Final = re.compile(r"[0-9a-fA-F]{8}")

NotePublicKey: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


# -- errors ------------------------------------------------------------------------------------------------


class NoteError(Exception):
    """A note that cannot be made, read or trusted; ``reason`` says why (never the offending bytes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoteMalformed(NoteError):
    """The bytes are not a well-formed signed note, or a signature line is not one."""


class CheckpointMalformed(NoteMalformed):
    """The note text is not a well-formed checkpoint (c2sp.org/tlog-checkpoint)."""


class NoteSignatureInvalid(NoteError):
    """A signature by a known key (its name and key ID match a verifier) does not verify."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"the signature by known key {name}+{key_id:08x} does not verify")
        self.name = name
        self.key_id = key_id


class NoteUnverified(NoteError):
    """No signature by a known key: the text must be ignored. ``signatures`` are the unknown keys' ones."""

    def __init__(self, signatures: tuple[NoteSignature, ...]) -> None:
        super().__init__(f"no signature by a known key ({len(signatures)} by unknown keys)")
        self.signatures = signatures


class NoteSignatureConflict(NoteError):
    """:func:`add_signature`: the note already holds a different signature with that key name and key ID."""


class NoteKeyInvalid(NoteError):
    """A key the note format cannot use here, an invalid key name or verifier key, or ambiguous verifiers."""


# -- checkpoint text ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint's content (c2sp.org/tlog-checkpoint); :attr:`body` is its note text."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def body(self) -> bytes:
        return checkpoint_body(self.origin, self.size, self.root, self.extensions)


def checkpoint_body(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> bytes:
    """The checkpoint note text: origin, decimal size, base64 root, extension lines, each ending in "\\n"."""
    if isinstance(extensions, str):
        raise TypeError("extensions: a sequence of lines, not one string")
    _check_line(origin, "origin")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise ValueError("size: an integer from 0 to 2**64 - 1")
    if not isinstance(root, bytes) or len(root) != ROOT_SIZE:
        raise ValueError(f"root: exactly {ROOT_SIZE} bytes")
    for extension in extensions:
        _check_line(extension, "extension line")
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def parse_checkpoint(text: bytes) -> Checkpoint:
    """Read a checkpoint's note text, strictly; raise :class:`CheckpointMalformed` for anything else.

    Call it on :attr:`OpenedNote.text` (a note's text means nothing before its signature is verified).
    At least three lines, each ending in "\\n" and non-empty; the size decimal ASCII with no sign and no
    leading zero (``0`` alone for the empty tree), at most 2**64 - 1; the root canonical padded base64 of
    exactly 32 bytes; any further lines are extension lines. The text is UTF-8 with no control character.
    """
    if not isinstance(text, bytes):
        raise CheckpointMalformed("a checkpoint text is bytes")
    if len(text) > MAX_NOTE_BYTES:
        raise CheckpointMalformed("the checkpoint text is too large")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointMalformed("the checkpoint text is not UTF-8") from exc
    if _CONTROL.search(text):
        raise CheckpointMalformed("the checkpoint text holds a control character")
    if not decoded.endswith("\n"):
        raise CheckpointMalformed("the checkpoint text does not end in a newline")
    lines = decoded[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointMalformed("a checkpoint has an origin, a size and a root hash line")
    if any(line == "" for line in lines):
        raise CheckpointMalformed("a checkpoint line is empty")
    origin, size_line, root_line, *extensions = lines
    if not _DECIMAL.fullmatch(size_line):
        raise CheckpointMalformed("the tree size is not a decimal number without leading zeros")
    size = int(size_line)
    if size > MAX_TREE_SIZE:
        raise CheckpointMalformed("the tree size exceeds 2**64 - 1")
    root = _b64decode_canonical(root_line)
    if root is None:
        raise CheckpointMalformed("the root hash is not canonical padded base64")
    if len(root) != ROOT_SIZE:
        raise CheckpointMalformed(f"the root hash is not {ROOT_SIZE} bytes")
    checkpoint = Checkpoint(origin=origin, size=size, root=root, extensions=tuple(extensions))
    # What was read must write back to the very same bytes: nothing of the text escaped the reading.
    try:
        body = checkpoint.body
    except ValueError as exc:
        raise CheckpointMalformed("the checkpoint does not write back as read") from exc
    if body != text:
        raise CheckpointMalformed("the checkpoint does not write back as read")
    return checkpoint


# -- keys --------------------------------------------------------------------------------------------------


def is_valid_key_name(name: str) -> bool:
    """A key name: non-empty, no Unicode space, no ``+``, no control character (c2sp.org/signed-note)."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(ch in _WHITE_SPACE or ch < " " for ch in name)
        and _encodable(name)
    )


class NoteVerifier:
    """A known key: its name, key ID, signature type and public key; it verifies signatures over note texts.

    Build one from a public key (``NoteVerifier(name, key)`` or :meth:`from_public_key`), from a
    certificate (:meth:`from_certificate`: the gateway certificate, ``GET /v1/gateway/certificate``) or from
    a verifier key string (:meth:`from_verifier_key`: a witness's published key). The key types are the
    allow-list of the module docstring; anything else raises :class:`NoteKeyInvalid`.
    """

    __slots__ = ("_algorithm", "_encoding", "_key_id", "_name", "_public_key")

    def __init__(self, name: str, public_key: object) -> None:
        if not is_valid_key_name(name):
            raise NoteKeyInvalid("a key name is non-empty, without spaces, plus signs or control characters")
        key, algorithm, encoding, key_id = _describe(name, public_key)
        self._name = name
        self._public_key: NotePublicKey = key
        self._algorithm = algorithm
        self._encoding = encoding
        self._key_id = key_id

    @classmethod
    def from_public_key(cls, name: str, public_key: object) -> NoteVerifier:
        return cls(name, public_key)

    @classmethod
    def from_certificate(cls, name: str, certificate: x509.Certificate) -> NoteVerifier:
        """The verifier of the certificate's key (only the key is used: no validity or chain is judged)."""
        try:
            public_key = certificate.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise NoteKeyInvalid("the certificate's public key cannot be read") from exc
        return cls(name, public_key)

    @classmethod
    def from_verifier_key(cls, vkey: str) -> NoteVerifier:
        """Read ``<name>+<key ID, 8 hex digits>+<base64(type || public key)>``; the key ID must match the key."""
        # The name holds no "+", the key ID neither; the base64 key may.
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3:
            raise NoteKeyInvalid("a verifier key is <name>+<key ID>+<base64 key>")
        name, key_id_hex, key_b64 = parts
        encoded = _b64decode_canonical(key_b64)
        if not _HEX8.fullmatch(key_id_hex) or encoded is None or len(encoded) < 2:
            raise NoteKeyInvalid("a verifier key is <name>+<8 hex digits>+<canonical base64 key>")
        public_key = _decode_public_key(encoded)
        verifier = cls(name, public_key)
        if verifier._encoding != encoded:
            raise NoteKeyInvalid("the verifier key's public key is not in its canonical encoding")
        if verifier.key_id != int(key_id_hex, 16):
            raise NoteKeyInvalid("the verifier key's key ID does not match its key")
        return verifier

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        """The 32-bit key ID, as it stands big-endian in the first four bytes of each signature."""
        return self._key_id

    @property
    def algorithm(self) -> str:
        """``ed25519``, ``ecdsa-p256-sha256`` (``-p384-``, ``-p521-``: SHA-256 too) or ``rsa-pkcs1v15-sha256``."""
        return self._algorithm

    @property
    def signature_type(self) -> int:
        return self._encoding[0]

    @property
    def public_key(self) -> NotePublicKey:
        return self._public_key

    @property
    def verifier_key(self) -> str:
        """``<name>+<key ID>+<base64(type || public key)>``: what a witness or monitor is configured with."""
        return f"{self._name}+{self._key_id:08x}+{base64.b64encode(self._encoding).decode('ascii')}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is this key's over exactly ``text``. Never raises."""
        key = self._public_key
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, text)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, text, ec.ECDSA(hashes.SHA256()))
            else:
                key.verify(signature, text, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    def _same_key(self, other: NoteVerifier) -> bool:
        return (self._name, self._key_id, self._encoding) == (other._name, other._key_id, other._encoding)

    def __repr__(self) -> str:
        return f"NoteVerifier({self._name}+{self._key_id:08x}, {self._algorithm})"


def _describe(name: str, public_key: object) -> tuple[NotePublicKey, str, bytes, int]:
    """The key, its algorithm, ``type || public key encoding`` and key ID, for an allow-listed key."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        encoding = bytes([TYPE_ED25519]) + public_key.public_bytes_raw()
        return public_key, ED25519, encoding, _recommended_key_id(name, encoding)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        algorithm = _ECDSA_ALGORITHMS.get(type(public_key.curve))
        if algorithm is None:
            raise NoteKeyInvalid("an ECDSA key must be on P-256, P-384 or P-521")
        der = _spki(public_key)
        # transparency-dev/formats note.NewECDSAVerifier: keyHashECDSA(der) = SHA-256(der)[:4], big-endian.
        key_id = int.from_bytes(hashlib.sha256(der).digest()[:_KEY_ID_SIZE], "big")
        return public_key, algorithm, bytes([TYPE_ECDSA]) + der, key_id
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise NoteKeyInvalid(f"an RSA key has {MIN_RSA_BITS} bits at least")
        encoding = bytes([TYPE_UNASSIGNED]) + RSA_IDENTIFIER + _spki(public_key)
        return public_key, RSA_PKCS1V15_SHA256, encoding, _recommended_key_id(name, encoding)
    raise NoteKeyInvalid("the key type is not allow-listed (Ed25519, ECDSA P-256/P-384/P-521, RSA)")


def _decode_public_key(encoded: bytes) -> object:
    """The public key of ``type || public key encoding``, the inverse of :func:`_describe`'s encoding."""
    kind, rest = encoded[0], encoded[1:]
    try:
        if kind == TYPE_ED25519 and len(rest) == 32:
            return ed25519.Ed25519PublicKey.from_public_bytes(rest)
        if kind == TYPE_ECDSA:
            return serialization.load_der_public_key(rest)
        if kind == TYPE_UNASSIGNED and rest.startswith(RSA_IDENTIFIER):
            return serialization.load_der_public_key(rest[len(RSA_IDENTIFIER) :])
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise NoteKeyInvalid("the verifier key's public key cannot be read") from exc
    raise NoteKeyInvalid("the verifier key's signature type is not allow-listed")


def _recommended_key_id(name: str, encoding: bytes) -> int:
    """``SHA-256(key name || 0x0A || type || public key)[:4]`` as a big-endian uint32 (c2sp.org/signed-note)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8") + b"\n" + encoding).digest()[:_KEY_ID_SIZE], "big")


def _spki(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- signing -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key name, the key ID and the algorithm's signature (without the key ID)."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> bytes:
        """The line as it stands in a note: ``— <name> <base64(key ID || signature)>\\n``."""
        blob = self.key_id.to_bytes(_KEY_ID_SIZE, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n".encode()


def sign_note(text: bytes, key_name: str, private_key: PrivateKeyTypes) -> bytes:
    """The signed note: ``text``, a blank line, and the signature line of ``private_key`` named ``key_name``.

    ``text`` is non-empty UTF-8 ending in a newline with no other control character (``ValueError``
    otherwise). The key is one of the allow-list (:class:`NoteKeyInvalid` otherwise): Ed25519, ECDSA on
    P-256/P-384/P-521 (signing the text's SHA-256), RSA of 2048 bits or more (PKCS#1 v1.5, SHA-256).
    """
    _check_text(text)
    if not isinstance(private_key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise NoteKeyInvalid("the key type is not allow-listed (Ed25519, ECDSA P-256/P-384/P-521, RSA)")
    verifier = NoteVerifier(key_name, private_key.public_key())
    raw: bytes
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.sign(text)
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        raw = private_key.sign(text, ec.ECDSA(hashes.SHA256()))
    else:
        raw = private_key.sign(text, padding.PKCS1v15(), hashes.SHA256())
    note = text + b"\n" + NoteSignature(verifier.name, verifier.key_id, raw).line
    if len(note) > MAX_NOTE_BYTES:
        raise ValueError("the signed note would exceed MAX_NOTE_BYTES")
    return note


def add_signature(note: bytes, signature_line: bytes | str | NoteSignature) -> bytes:
    """The note with one more signature line appended (a cosignature); its text is left as it is.

    Only the format is checked, never a signature: the note must be well formed (:class:`NoteMalformed`)
    and so must the line (one signature line with its final newline). A line already present leaves the
    note unchanged; a different line with the name and key ID of a signature already present raises
    :class:`NoteSignatureConflict` (one signature per key, so a line claiming the gateway's own key cannot
    be slipped in beside it); the limits :data:`MAX_SIGNATURES` and :data:`MAX_NOTE_BYTES` hold.

    A caller storing a cosignature it was given checks it first, with the verifier of the cosigner it
    trusts (``open_note(add_signature(note, line), [cosigner])``): a known key's bad signature makes the
    whole note unreadable to everyone who knows that key.
    """
    if isinstance(signature_line, NoteSignature):
        line = signature_line.line
    elif isinstance(signature_line, str):
        if not _encodable(signature_line):
            raise NoteMalformed("the signature line is not UTF-8")
        line = signature_line.encode("utf-8")
    else:
        line = signature_line
    if not isinstance(line, bytes) or not line.endswith(b"\n") or line.count(b"\n") != 1:
        raise NoteMalformed("a signature line is one line ending in a newline")
    _check_note_bytes(line)
    new = _parse_signature_line(line[:-1])
    _, signatures, lines = _split(note)
    if line in lines:
        return note
    if any((s.name, s.key_id) == (new.name, new.key_id) for s in signatures):
        raise NoteSignatureConflict("the note already holds another signature with that key name and key ID")
    if len(lines) + 1 > MAX_SIGNATURES:
        raise NoteMalformed(f"a note holds at most {MAX_SIGNATURES} signatures")
    if len(note) + len(line) > MAX_NOTE_BYTES:
        raise NoteMalformed("the note would be too large")
    return note + line


# -- opening -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose signatures by known keys all verified, at least one of them.

    ``text`` is the signed text (final newline included): read it, not the bytes given to :func:`open_note`.
    ``verified`` are the known keys' signatures, ``unverified`` the unknown keys' (cosignatures the caller
    has no key for); each in note order, repeated identical lines once.
    """

    text: bytes
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def open_note(note: bytes, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Check a signed note against the known keys; raise a :class:`NoteError` unless it can be trusted.

    The steps are those of the module docstring. ``verifiers`` may not hold two different keys with the same
    name and key ID (:class:`NoteKeyInvalid`: a configuration error, whatever the note).
    """
    known = _index(verifiers)
    # 1-2. Bytes, encoding, split, signature line format and limits.
    text, signatures, _ = _split(note)
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    # 3. Every known key's signature verifies; an unknown key's (name or ID differs) is set aside.
    for signature in signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            if signature not in unverified:
                unverified.append(signature)
            continue
        if not verifier.verify(text, signature.signature):
            raise NoteSignatureInvalid(verifier.name, verifier.key_id)
        if signature not in verified:
            verified.append(signature)
    # 4. At least one did.
    if not verified:
        raise NoteUnverified(tuple(unverified))
    return OpenedNote(text=text, verified=tuple(verified), unverified=tuple(unverified))


def _index(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, int], NoteVerifier]:
    known: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        if not isinstance(verifier, NoteVerifier):
            raise TypeError("verifiers: NoteVerifier instances")
        key = (verifier.name, verifier.key_id)
        other = known.setdefault(key, verifier)
        if not other._same_key(verifier):
            raise NoteKeyInvalid(f"two verifiers share the key name and key ID {verifier.name}+{verifier.key_id:08x}")
    return known


def _split(note: bytes) -> tuple[bytes, list[NoteSignature], list[bytes]]:
    """Steps 1 and 2: the text, the parsed signatures, and their lines (each with its newline)."""
    if not isinstance(note, bytes):
        raise NoteMalformed("a note is bytes")
    if len(note) > MAX_NOTE_BYTES:
        raise NoteMalformed(f"a note holds at most {MAX_NOTE_BYTES} bytes")
    _check_note_bytes(note)
    if not note.endswith(b"\n"):
        raise NoteMalformed("a note ends in a newline")
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteMalformed("a note has no blank line between its text and its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteMalformed("a note has no signature line after its last blank line")
    raw_lines = block[:-1].split(b"\n")
    if len(raw_lines) > MAX_SIGNATURES:
        raise NoteMalformed(f"a note holds at most {MAX_SIGNATURES} signatures")
    signatures = [_parse_signature_line(line) for line in raw_lines]
    return text, signatures, [line + b"\n" for line in raw_lines]


def _parse_signature_line(line: bytes) -> NoteSignature:
    """``— <name> <base64(key ID || signature)>`` (without its newline), or :class:`NoteMalformed`."""
    if not line.startswith(_PREFIX):
        raise NoteMalformed("a signature line starts with an em dash and a space")
    name_bytes, space, blob_b64 = line[len(_PREFIX) :].partition(b" ")
    if not space:
        raise NoteMalformed("a signature line has a key name, a space and a signature")
    name = name_bytes.decode("utf-8")  # the whole note was decoded before: cannot fail
    if not is_valid_key_name(name):
        raise NoteMalformed("a signature line's key name is empty or holds a space or a plus sign")
    blob = _b64decode_canonical(blob_b64.decode("utf-8"))
    if blob is None:
        raise NoteMalformed("a signature is not canonical padded base64")
    if len(blob) <= _KEY_ID_SIZE:
        raise NoteMalformed("a signature holds a key ID and at least one byte")
    return NoteSignature(name=name, key_id=int.from_bytes(blob[:_KEY_ID_SIZE], "big"), signature=blob[_KEY_ID_SIZE:])


# -- helpers -----------------------------------------------------------------------------------------------


def _check_note_bytes(data: bytes) -> None:
    """UTF-8, and no ASCII control character but the newline (a UTF-8 sequence never holds a byte < 0x80)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteMalformed("a note is UTF-8") from exc
    if _CONTROL.search(data):
        raise NoteMalformed("a note holds no control character but the newline")


def _check_text(text: bytes) -> None:
    if not isinstance(text, bytes) or not text.endswith(b"\n"):
        raise ValueError("a note text is bytes ending in a newline")
    try:
        _check_note_bytes(text)
    except NoteMalformed as exc:
        raise ValueError(f"note text: {exc.reason}") from exc


def _check_line(value: str, what: str) -> None:
    if not isinstance(value, str) or value == "":
        raise ValueError(f"{what}: a non-empty string")
    if not _encodable(value) or any(ch < " " for ch in value):
        raise ValueError(f"{what}: UTF-8 text with no control character or newline")


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64decode_canonical(value: str) -> bytes | None:
    """Standard padded base64 (RFC 4648 §4) in its one canonical spelling, or None."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != value:
        return None
    return raw
