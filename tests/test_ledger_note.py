"""Checkpoints as C2SP signed notes (``gateway.ledger.note``): known answers, round trips, tampering, hostile notes.

Where the fixed vectors come from (each checked here byte for byte, none produced by this module first):

- golang.org/x/mod/sumdb/note, ``note_test.go`` (github.com/golang/mod, BSD-3-Clause, commit
  02c991387e35f9e4c0a9b7ce137717055f8d716d): the PeterNeumann Ed25519 signer and verifier keys, the
  exact note ``TestSign`` expects, the EnochRoot key and signature and the malformed notes of ``TestOpen``;
- transparency-dev/formats, ``note/note_verifier_test.go`` (Apache-2.0, commit
  0c1bd728d082e49a9b209848f1de68cc44d47289): the ECDSA (type 0x02) verifier keys of the Sigstore Rekor log
  and of the Pixel 6 transparency log, and one real checkpoint note signed by each;
- c2sp.org/signed-note and c2sp.org/tlog-checkpoint (github.com/C2SP/C2SP, ``signed-note.md`` at commit
  055287621bf3cd13ff4394418a3e8efc2d5e8ed7, ``tlog-checkpoint.md`` at commit
  2793893976c835db049c194d8f2c4f946dcb70ba): their example notes; they publish no key, so they are checked
  for form only.

Then, with keys made here: Ed25519, ECDSA P-256 and P-384 and RSA notes round-trip and are refused after
any one byte changes; unknown keys are ignored, a known key's bad signature refuses the note; hostile notes
are malformed; checkpoint text is read strictly.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from certs import make_keypair
from gateway.ledger import note as note_module
from gateway.ledger.note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    MAX_TREE_SIZE,
    RSA_IDENTIFIER,
    Checkpoint,
    CheckpointMalformed,
    NoteError,
    NoteKeyInvalid,
    NoteMalformed,
    NoteSignature,
    NoteSignatureConflict,
    NoteSignatureInvalid,
    NoteUnverified,
    NoteVerifier,
    add_signature,
    checkpoint_body,
    open_note,
    parse_checkpoint,
    sign_note,
)

DASH = "\u2014"  # em dash, the first character of every signature line

# -- golang.org/x/mod/sumdb/note note_test.go ----------------------------------------------------------------
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    f"{DASH} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
ENOCH_SIG = (
    f"{DASH} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
).encode()

# -- transparency-dev/formats note/note_verifier_test.go -----------------------------------------------------
REKOR_VKEY = (
    "rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l"
    "+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc="
)
REKOR_NOTE = (
    "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n"
    f"{DASH} rekor.sigstore.dev wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3+GKVClgqq20uDLet7MCoTU"
    "RUCRdxwWBHHufk=\n"
).encode()
PIXEL_VKEY = (
    "pixel6_transparency_log+91c16e30+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN+4x0Jk1yTwvLFI9A4NDdGZcX0aiWVdWM5XJVy0"
    "M4VWD3AvyW5Q6Hs9A0mcDkpUoYgn+KKPNzFC0H3nN3q6JQ8="
)
PIXEL_NOTE = (
    "DEFAULT\n10\nbsWRucJU5xJPHb5eBdOm6+DM+VelCZBuvtI3sHERJ9Y=\n\n"
    f"{DASH} pixel6_transparency_log kcFuMDBFAiEAhqMAP8P6qf6QxtUJhzMhbN+MbZ9dwfUHzGQJmffJHtoCIGD0cNe47dHWBoPwYdgBCepB"
    "06/+g5O1FmYjXl06owL4\n"
).encode()

# -- C2SP examples (no key published) ------------------------------------------------------------------------
SPEC_NOTE = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u00e8 subito sera.\n\n"
    f"{DASH} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ih"
    "AQwaqP3ZekRwNtIc=\n"
).encode()
SPEC_CHECKPOINT_TEXT = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_CHECKPOINT_NOTE = (
    SPEC_CHECKPOINT_TEXT
    + (
        f"\n{DASH} example.com/behind-the-sofa "
        "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    ).encode()
)

ORIGIN = "gateway.example.gov.vn/ledger"
ROOT = hashlib.sha256(b"the root of some tree").digest()


def peter_private_key() -> ed25519.Ed25519PrivateKey:
    """The seed inside Go's signer key: ``PRIVATE+KEY+<name>+<hash>+base64(0x01 || 32-byte seed)``."""
    encoded = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert encoded[0] == 0x01
    return ed25519.Ed25519PrivateKey.from_private_bytes(encoded[1:])


def make_key(kind: str) -> PrivateKeyTypes:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KINDS = ["ed25519", "p256", "p384", "rsa"]


@pytest.fixture(scope="module", params=KINDS)
def signer(request: pytest.FixtureRequest) -> tuple[PrivateKeyTypes, NoteVerifier]:
    key = make_key(request.param)
    return key, NoteVerifier(ORIGIN, key.public_key())


def checkpoint_note(key: PrivateKeyTypes, *, size: int = 1000) -> bytes:
    return sign_note(checkpoint_body(ORIGIN, size, ROOT), ORIGIN, key)


def blob_of(line: bytes) -> bytes:
    return base64.b64decode(line.rstrip(b"\n").rsplit(b" ", 1)[1])


def line_with(name: str, blob: bytes) -> bytes:
    return f"{DASH} {name} {base64.b64encode(blob).decode()}\n".encode()


def split(note: bytes) -> tuple[bytes, list[bytes]]:
    """The text and the signature lines, split the simple way (for notes built by the tests)."""
    at = note.rindex(b"\n\n")
    return note[: at + 1], note[at + 2 :].splitlines(keepends=True)


def ed25519_certificate(key: ed25519.Ed25519PrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway ledger")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, None)
    )


# -- known answers: Ed25519 (golang.org/x/mod/sumdb/note) ----------------------------------------------------


def test_ed25519_key_id_and_verifier_key_match_the_go_reference_vector() -> None:
    verifier = NoteVerifier("PeterNeumann", peter_private_key().public_key())
    assert verifier.key_id == 0xC74F20A3
    assert verifier.signature_type == 0x01
    assert verifier.verifier_key == PETER_VKEY
    # and the recommended formula, written out independently
    raw = peter_private_key().public_key().public_bytes_raw()
    assert hashlib.sha256(b"PeterNeumann\n\x01" + raw).digest()[:4] == bytes.fromhex("c74f20a3")
    assert NoteVerifier.from_verifier_key(ENOCH_VKEY).key_id == 0xAF0CFE78


def test_ed25519_signed_note_is_byte_for_byte_the_go_reference_note() -> None:
    # note_test.go TestSign: Sign(&Note{Text: text}, NewSigner(skey)) == text + "\n" + peterSig
    assert sign_note(GO_TEXT, "PeterNeumann", peter_private_key()) == GO_TEXT + b"\n" + PETER_SIG


def test_go_reference_note_opens_with_one_known_and_one_unknown_key() -> None:
    peter = NoteVerifier.from_verifier_key(PETER_VKEY)
    opened = open_note(GO_TEXT + b"\n" + PETER_SIG + ENOCH_SIG, [peter])
    assert opened.text == GO_TEXT
    assert [(s.name, s.key_id) for s in opened.verified] == [("PeterNeumann", 0xC74F20A3)]
    assert [(s.name, s.key_id) for s in opened.unverified] == [("EnochRoot", 0xAF0CFE78)]
    both = open_note(GO_TEXT + b"\n" + PETER_SIG + ENOCH_SIG, [peter, NoteVerifier.from_verifier_key(ENOCH_VKEY)])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"]
    assert both.unverified == ()
    assert [s.line for s in both.verified] == [PETER_SIG, ENOCH_SIG]


def test_go_reference_note_with_no_known_key_is_unverified() -> None:
    with pytest.raises(NoteUnverified) as caught:
        open_note(GO_TEXT + b"\n" + PETER_SIG + ENOCH_SIG, [])
    assert [s.name for s in caught.value.signatures] == ["PeterNeumann", "EnochRoot"]


def test_go_reference_corrupted_signature_is_refused() -> None:
    # note_test.go TestOpen "Invalid signature": four characters inserted in the base64
    corrupt = PETER_SIG[:60] + b"ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteSignatureInvalid) as caught:
        open_note(GO_TEXT + b"\n" + corrupt, [NoteVerifier.from_verifier_key(PETER_VKEY)])
    assert (caught.value.name, caught.value.key_id) == ("PeterNeumann", 0xC74F20A3)


@pytest.mark.parametrize(
    "message",
    [
        GO_TEXT,
        GO_TEXT + b"\n",
        GO_TEXT + b"\n" + PETER_SIG[:-1],
        b"\x01" + GO_TEXT + b"\n" + PETER_SIG,
        b"\xff" + GO_TEXT + b"\n" + PETER_SIG,
        GO_TEXT + b"\n" + PETER_SIG.replace(b"PeterNeumann", b"Bad Name")[:-1],
        GO_TEXT + b"\n" + PETER_SIG + b"Unexpected line.\n",
    ],
    ids=["no-signatures", "blank-line-only", "no-final-newline", "control", "not-utf8", "name-space", "extra-line"],
)
def test_go_reference_malformed_notes_are_malformed(message: bytes) -> None:
    with pytest.raises(NoteMalformed):
        open_note(message, [NoteVerifier.from_verifier_key(PETER_VKEY)])


def test_go_reference_verifier_key_manglings_are_refused() -> None:
    # note_test.go TestNewVerifier: every proper substring and every one-byte increment is refused
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteKeyInvalid):
                    NoteVerifier.from_verifier_key(PETER_VKEY[i:j])
    for i in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(NoteKeyInvalid):
            NoteVerifier.from_verifier_key(mangled)
    # a key of the wrong length and an unknown algorithm, each with its key hash adjusted
    with pytest.raises(NoteKeyInvalid):
        NoteVerifier.from_verifier_key("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(NoteKeyInvalid):
        NoteVerifier.from_verifier_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


# -- known answers: ECDSA, type 0x02 (transparency-dev/formats) ---------------------------------------------


@pytest.mark.parametrize(
    ("vkey", "note", "origin", "size"),
    [(REKOR_VKEY, REKOR_NOTE, "Rekor", 798034), (PIXEL_VKEY, PIXEL_NOTE, "DEFAULT", 10)],
    ids=["rekor", "pixel"],
)
def test_published_ecdsa_checkpoints_verify_and_parse(vkey: str, note: bytes, origin: str, size: int) -> None:
    verifier = NoteVerifier.from_verifier_key(vkey)
    assert verifier.verifier_key == vkey
    assert verifier.signature_type == 0x02
    # the key ID is SHA-256 of the DER SubjectPublicKeyInfo alone: neither the name nor the type byte
    der = base64.b64decode(vkey.split("+", 2)[2])[1:]
    assert verifier.key_id == int.from_bytes(hashlib.sha256(der).digest()[:4], "big") == int(vkey.split("+", 2)[1], 16)
    opened = open_note(note, [verifier])
    checkpoint = parse_checkpoint(opened.text)
    assert (checkpoint.origin, checkpoint.size, len(checkpoint.root), checkpoint.extensions) == (origin, size, 32, ())
    assert checkpoint.body == opened.text


def test_published_ecdsa_checkpoint_under_another_key_name_is_unverified() -> None:
    # transparency-dev's "invalid name" case: same key and key ID, another name: an unknown key
    material = REKOR_VKEY.split("+", 1)[1]
    bananas = NoteVerifier.from_verifier_key("bananas.sigstore.dev+" + material)
    with pytest.raises(NoteUnverified):
        open_note(REKOR_NOTE, [bananas])


def test_gateway_ecdsa_key_id_is_the_truncated_sha256_of_its_spki() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    verifier = NoteVerifier(ORIGIN, key.public_key())
    assert verifier.key_id == int.from_bytes(hashlib.sha256(der).digest()[:4], "big")
    encoded = base64.b64encode(b"\x02" + der).decode()
    assert verifier.verifier_key == f"{ORIGIN}+{verifier.key_id:08x}+{encoded}"


def test_ecdsa_p384_signs_the_sha256_of_the_text_as_transparency_dev_verifies() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    text = checkpoint_body(ORIGIN, 5, ROOT)
    signature = blob_of(split(sign_note(text, ORIGIN, key))[1][0])[4:]
    key.public_key().verify(signature, text, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        key.public_key().verify(signature, text, ec.ECDSA(hashes.SHA384()))


# -- the RSA type (0xff + identifier) --------------------------------------------------------------------------


def test_rsa_key_id_and_signature_follow_the_documented_0xff_type() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    verifier = NoteVerifier(ORIGIN, key.public_key())
    encoding = b"\xff" + b"gateway-ledger/rsa-pkcs1v15-sha256" + der
    assert RSA_IDENTIFIER == b"gateway-ledger/rsa-pkcs1v15-sha256"
    assert verifier.key_id == int.from_bytes(hashlib.sha256(ORIGIN.encode() + b"\n" + encoding).digest()[:4], "big")
    assert verifier.verifier_key.endswith("+" + base64.b64encode(encoding).decode())
    assert NoteVerifier.from_verifier_key(verifier.verifier_key).key_id == verifier.key_id

    text = checkpoint_body(ORIGIN, 7, ROOT)
    blob = blob_of(split(sign_note(text, ORIGIN, key))[1][0])
    assert blob[:4] == verifier.key_id.to_bytes(4, "big")
    key.public_key().verify(blob[4:], text, padding.PKCS1v15(), hashes.SHA256())


# -- the C2SP examples ---------------------------------------------------------------------------------------


def test_spec_examples_are_well_formed_notes_and_checkpoint() -> None:
    for example, name in ((SPEC_NOTE, "quasimodo.example/salvatore"), (SPEC_CHECKPOINT_NOTE, ORIGIN)):
        with pytest.raises(NoteUnverified) as caught:
            open_note(example, [NoteVerifier(name, ed25519.Ed25519PrivateKey.generate().public_key())])
        assert len(caught.value.signatures) == 1
    checkpoint = parse_checkpoint(SPEC_CHECKPOINT_TEXT)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint_body(checkpoint.origin, checkpoint.size, checkpoint.root) == SPEC_CHECKPOINT_TEXT


# -- round trips ---------------------------------------------------------------------------------------------


def test_checkpoint_note_round_trips(signer: tuple[PrivateKeyTypes, NoteVerifier]) -> None:
    key, verifier = signer
    text = checkpoint_body(ORIGIN, 1000, ROOT, ["extension one", "2"])
    note = sign_note(text, ORIGIN, key)
    assert note.startswith(text + b"\n" + f"{DASH} {ORIGIN} ".encode())
    assert note.count(b"\n\n") == 1
    opened = open_note(note, [verifier])
    assert opened.text == text
    assert len(opened.verified) == 1
    assert opened.unverified == ()
    assert parse_checkpoint(opened.text) == Checkpoint(ORIGIN, 1000, ROOT, ("extension one", "2"))
    # and through the verifier key string, as a witness would be configured
    assert open_note(note, [NoteVerifier.from_verifier_key(verifier.verifier_key)]).text == text


@pytest.mark.parametrize("kind", ["ec", "rsa", "ed25519"])
def test_verifier_from_the_gateway_certificate_opens_its_note(kind: str) -> None:
    key: PrivateKeyTypes
    if kind == "ed25519":
        ed_key = ed25519.Ed25519PrivateKey.generate()
        key, certificate = ed_key, ed25519_certificate(ed_key)
    else:
        pair = make_keypair(kind=kind)
        key, certificate = pair.key, pair.cert
    note = checkpoint_note(key)
    verifier = NoteVerifier.from_certificate(ORIGIN, certificate)
    assert open_note(note, [verifier]).text == checkpoint_body(ORIGIN, 1000, ROOT)
    assert NoteVerifier.from_public_key(ORIGIN, certificate.public_key()).verifier_key == verifier.verifier_key
    with pytest.raises(NoteUnverified):  # another certificate is another key
        open_note(note, [NoteVerifier.from_certificate(ORIGIN, make_keypair(kind="ec").cert)])


def test_empty_tree_checkpoint_round_trips() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    empty = hashlib.sha256(b"").digest()
    opened = open_note(
        sign_note(checkpoint_body(ORIGIN, 0, empty), ORIGIN, key), [NoteVerifier(ORIGIN, key.public_key())]
    )
    assert parse_checkpoint(opened.text) == Checkpoint(ORIGIN, 0, empty)


# -- tampering -----------------------------------------------------------------------------------------------


def test_every_one_byte_change_of_a_signed_note_is_refused(signer: tuple[PrivateKeyTypes, NoteVerifier]) -> None:
    key, verifier = signer
    note = checkpoint_note(key)
    for i in range(len(note)):
        for flipped in (note[i] ^ 0x01, note[i] ^ 0x20):
            tampered = note[:i] + bytes([flipped]) + note[i + 1 :]
            with pytest.raises(NoteError):
                open_note(tampered, [verifier])


def test_changed_text_byte_is_an_invalid_signature(signer: tuple[PrivateKeyTypes, NoteVerifier]) -> None:
    key, verifier = signer
    note = checkpoint_note(key, size=1000)
    with pytest.raises(NoteSignatureInvalid):
        open_note(note.replace(b"\n1000\n", b"\n1001\n", 1), [verifier])
    with pytest.raises(NoteSignatureInvalid):
        open_note(note.replace(b"gateway.", b"gatewaz.", 1), [verifier])


def test_changed_signature_byte_is_an_invalid_signature(signer: tuple[PrivateKeyTypes, NoteVerifier]) -> None:
    key, verifier = signer
    text, (line,) = split(checkpoint_note(key))
    blob = bytearray(blob_of(line))
    for at in (4, len(blob) // 2, len(blob) - 1):
        changed = bytearray(blob)
        changed[at] ^= 0x01
        with pytest.raises(NoteSignatureInvalid):
            open_note(text + b"\n" + line_with(ORIGIN, bytes(changed)), [verifier])
    with pytest.raises(NoteSignatureInvalid):  # one byte short
        open_note(text + b"\n" + line_with(ORIGIN, bytes(blob[:-1])), [verifier])


def test_changed_key_name_or_key_id_is_an_unknown_key(signer: tuple[PrivateKeyTypes, NoteVerifier]) -> None:
    key, verifier = signer
    text, (line,) = split(checkpoint_note(key))
    blob = blob_of(line)
    with pytest.raises(NoteUnverified):
        open_note(text + b"\n" + line_with(ORIGIN + "x", blob), [verifier])
    other_id = ((verifier.key_id + 1) % 2**32).to_bytes(4, "big")
    with pytest.raises(NoteUnverified):
        open_note(text + b"\n" + line_with(ORIGIN, other_id + blob[4:]), [verifier])


# -- several signatures --------------------------------------------------------------------------------------


def test_unknown_key_signature_beside_a_valid_one_is_ignored() -> None:
    gateway, stranger = ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())
    note = checkpoint_note(gateway)
    text, (own,) = split(note)
    foreign = split(sign_note(text, "stranger.example/witness", stranger))[1][0]
    garbage = line_with("another.example", b"\x00\x00\x00\x01not a signature at all")
    for lines in ((own, foreign, garbage), (foreign, garbage, own)):
        opened = open_note(text + b"\n" + b"".join(lines), [NoteVerifier(ORIGIN, gateway.public_key())])
        assert [s.line for s in opened.verified] == [own]
        assert {s.line for s in opened.unverified} == {foreign, garbage}


def test_known_key_bad_signature_beside_a_valid_one_refuses_the_note() -> None:
    gateway, witness = ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())
    known = [NoteVerifier(ORIGIN, gateway.public_key()), NoteVerifier("witness.example", witness.public_key())]
    text, (own,) = split(checkpoint_note(gateway))
    cosignature = split(sign_note(text, "witness.example", witness))[1][0]
    assert len(open_note(text + b"\n" + own + cosignature, known).verified) == 2
    bad = line_with("witness.example", blob_of(cosignature)[:4] + b"0" * 70)
    with pytest.raises(NoteSignatureInvalid):
        open_note(text + b"\n" + own + bad, known)
    with pytest.raises(NoteSignatureInvalid):
        open_note(text + b"\n" + bad + own, known)


def test_second_bad_signature_by_the_same_known_key_refuses_the_note() -> None:
    # golang.org/x/mod/sumdb/note verifies only the first signature per key; here every one must verify
    key = ed25519.Ed25519PrivateKey.generate()
    text, (own,) = split(checkpoint_note(key))
    bad = line_with(ORIGIN, blob_of(own)[:4] + bytes(64))
    with pytest.raises(NoteSignatureInvalid):
        open_note(text + b"\n" + own + bad, [NoteVerifier(ORIGIN, key.public_key())])


def test_repeated_identical_signature_lines_are_listed_once() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    text, (own,) = split(checkpoint_note(key))
    opened = open_note(text + b"\n" + own + own + ENOCH_SIG + ENOCH_SIG, [NoteVerifier(ORIGIN, key.public_key())])
    assert (len(opened.verified), len(opened.unverified)) == (1, 1)


def test_signature_limit_accepts_the_maximum_and_refuses_one_more() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    verifier = NoteVerifier(ORIGIN, key.public_key())
    text, (own,) = split(checkpoint_note(key))
    others = [line_with(f"witness{i}.example", i.to_bytes(4, "big") + bytes(64)) for i in range(MAX_SIGNATURES)]
    assert MAX_SIGNATURES >= 16  # the specification's floor
    opened = open_note(text + b"\n" + own + b"".join(others[: MAX_SIGNATURES - 1]), [verifier])
    assert len(opened.unverified) == MAX_SIGNATURES - 1
    with pytest.raises(NoteMalformed):
        open_note(text + b"\n" + own + b"".join(others), [verifier])
    with pytest.raises(NoteMalformed):  # note_test.go: 101 copies of one valid signature
        open_note(GO_TEXT + b"\n" + PETER_SIG * 101, [NoteVerifier.from_verifier_key(PETER_VKEY)])


def test_oversized_note_is_malformed() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    text = b"x" * MAX_NOTE_BYTES + b"\n"
    with pytest.raises(NoteMalformed):
        open_note(text + b"\n" + ENOCH_SIG, [NoteVerifier(ORIGIN, key.public_key())])
    with pytest.raises(ValueError, match="MAX_NOTE_BYTES"):
        sign_note(text, ORIGIN, key)


# -- hostile notes -------------------------------------------------------------------------------------------


def _hostile_notes() -> dict[str, bytes]:
    text, sig = GO_TEXT, PETER_SIG
    name, b64 = sig[len(DASH.encode()) + 1 : -1].split(b" ")
    return {
        "no-blank-line": text + sig,
        "nothing-after-blank-line": text + b"\n",
        "blank-line-after-signatures": text + b"\n" + sig + b"\n",
        "no-final-newline": text + b"\n" + sig[:-1],
        "tab-in-text": text.replace(b" ", b"\t", 1) + b"\n" + sig,
        "carriage-return": text.replace(b"\n", b"\r\n", 1) + b"\n" + sig,
        "nul-in-signature-line": text + b"\n" + sig[:-2] + b"\x00\n",
        "not-utf8": text.replace(b"cryptography", b"crypt\xffgraphy") + b"\n" + sig,
        "overlong-utf8": text.replace(b",", b"\xc0\xac", 1) + b"\n" + sig,
        "utf8-surrogate": text.replace(b"If", b"\xed\xa0\x80", 1) + b"\n" + sig,
        "hyphen-not-em-dash": text + b"\n" + b"- " + name + b" " + b64 + b"\n",
        "no-space-after-dash": text + b"\n" + DASH.encode() + name + b" " + b64 + b"\n",
        "empty-name": text + b"\n" + DASH.encode() + b"  " + b64 + b"\n",
        "plus-in-name": text + b"\n" + DASH.encode() + b" Peter+Neumann " + b64 + b"\n",
        "nbsp-in-name": text + b"\n" + DASH.encode() + b" Peter\xc2\xa0Neumann " + b64 + b"\n",
        "ideographic-space-in-name": text + b"\n" + DASH.encode() + b" Peter\xe3\x80\x80Neumann " + b64 + b"\n",
        "no-signature": text + b"\n" + DASH.encode() + b" " + name + b"\n",
        "empty-signature": text + b"\n" + DASH.encode() + b" " + name + b" \n",
        "base64-bad-character": text + b"\n" + DASH.encode() + b" " + name + b" " + b64[:-2] + b"!=\n",
        "base64-url-alphabet": text + b"\n" + DASH.encode() + b" " + name + b" " + b64.replace(b"/", b"_") + b"\n",
        "base64-unpadded": text + b"\n" + DASH.encode() + b" " + name + b" " + b64.rstrip(b"=") + b"\n",
        "base64-noncanonical-bits": text + b"\n" + DASH.encode() + b" " + name + b" " + b64[:-2] + b"N=\n",
        "base64-trailing-space": text + b"\n" + DASH.encode() + b" " + name + b" " + b64 + b" \n",
        "signature-is-only-a-key-id": text + b"\n" + line_with("PeterNeumann", bytes.fromhex("c74f20a3")),
        "text-line-after-signatures": text + b"\n" + sig + b"not a signature\n",
    }


HOSTILE_NOTES = _hostile_notes()


@pytest.mark.parametrize("attack", sorted(HOSTILE_NOTES))
def test_hostile_note_is_malformed(attack: str) -> None:
    # the valid Go note opens; each variant differs from it in that one way
    peter = NoteVerifier.from_verifier_key(PETER_VKEY)
    open_note(GO_TEXT + b"\n" + PETER_SIG, [peter])
    with pytest.raises(NoteMalformed):
        open_note(HOSTILE_NOTES[attack], [peter])


def test_noncanonical_base64_variant_really_decodes_to_the_same_signature() -> None:
    # the non-canonical spelling is refused although a lax decoder reads the very same bytes
    _, b64 = PETER_SIG[len(DASH.encode()) + 1 : -1].split(b" ")
    assert b64.endswith(b"AM=")
    assert base64.b64decode(b64[:-2] + b"N=") == base64.b64decode(b64)


def test_text_with_blank_lines_splits_at_the_last_one() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    text = b"first\n\nsecond\n\n\nthird\n"
    opened = open_note(sign_note(text, ORIGIN, key), [NoteVerifier(ORIGIN, key.public_key())])
    assert opened.text == text


def test_errors_never_echo_the_note() -> None:
    hostile = GO_TEXT.replace(b"problem", b"<script>") + b"\n" + DASH.encode() + b" <script>+x AAAA\n"
    with pytest.raises(NoteMalformed) as caught:
        open_note(hostile, [NoteVerifier.from_verifier_key(PETER_VKEY)])
    assert "script" not in str(caught.value)


# -- cosignatures --------------------------------------------------------------------------------------------


def test_cosignature_is_appended_and_both_verify() -> None:
    gateway, witness = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    note = checkpoint_note(gateway)
    text, _ = split(note)
    cosignature = split(sign_note(text, "witness.example/audit", witness))[1][0]
    cosigned = add_signature(note, cosignature)
    assert cosigned == note + cosignature
    assert add_signature(note, cosignature.decode()) == cosigned  # as text
    signature = NoteSignature(
        "witness.example/audit", int.from_bytes(blob_of(cosignature)[:4], "big"), blob_of(cosignature)[4:]
    )
    assert add_signature(note, signature) == cosigned
    assert add_signature(cosigned, cosignature) == cosigned  # the same line twice: unchanged
    known = [NoteVerifier(ORIGIN, gateway.public_key()), NoteVerifier("witness.example/audit", witness.public_key())]
    assert len(open_note(cosigned, known).verified) == 2
    assert len(open_note(cosigned, known[:1]).unverified) == 1


def test_cosignature_claiming_the_gateway_key_is_a_conflict() -> None:
    gateway = ed25519.Ed25519PrivateKey.generate()
    note = checkpoint_note(gateway)
    _, (own,) = split(note)
    forged = line_with(ORIGIN, blob_of(own)[:4] + bytes(64))
    with pytest.raises(NoteSignatureConflict):
        add_signature(note, forged)


@pytest.mark.parametrize(
    "line",
    [
        PETER_SIG[:-1],  # no newline
        PETER_SIG + PETER_SIG,  # two lines
        b"\n",
        PETER_SIG.replace(b"PeterNeumann", b"Peter Neumann"),
        PETER_SIG.replace(b"=\n", b"\n"),
        PETER_SIG.replace(b"x08go", b"x08\x01o"),
        b"\xff" + PETER_SIG,
    ],
    ids=["no-newline", "two-lines", "empty", "name-space", "unpadded", "control", "not-utf8"],
)
def test_malformed_cosignature_line_is_refused(line: bytes) -> None:
    note = checkpoint_note(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(NoteMalformed):
        add_signature(note, line)


def test_cosignature_on_a_malformed_note_or_beyond_the_limit_is_refused() -> None:
    with pytest.raises(NoteMalformed):
        add_signature(GO_TEXT + PETER_SIG, ENOCH_SIG)
    note = checkpoint_note(ed25519.Ed25519PrivateKey.generate())
    for i in range(MAX_SIGNATURES - 1):
        note = add_signature(note, line_with(f"w{i}.example", bytes(68)))
    with pytest.raises(NoteMalformed):
        add_signature(note, ENOCH_SIG)


# -- keys and verifiers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["secp256k1", "rsa-1024", "ed448"])
def test_keys_outside_the_allow_list_are_refused(kind: str) -> None:
    key: PrivateKeyTypes
    if kind == "secp256k1":
        key = ec.generate_private_key(ec.SECP256K1())
    elif kind == "rsa-1024":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 -- the weak key refused
    else:
        key = ed448.Ed448PrivateKey.generate()
    with pytest.raises(NoteKeyInvalid):
        sign_note(b"text\n", ORIGIN, key)
    with pytest.raises(NoteKeyInvalid):
        NoteVerifier(ORIGIN, key.public_key())


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\u3000b", "a\tb", "a\nb", "a\u2028b"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(NoteKeyInvalid):
        sign_note(b"text\n", name, ed25519.Ed25519PrivateKey.generate())


def test_two_different_verifiers_with_one_name_and_key_id_are_ambiguous() -> None:
    peter = NoteVerifier.from_verifier_key(PETER_VKEY)
    # ECDSA key IDs ignore the name: two ECDSA keys cannot share an ID by chance, so fake the clash
    impostor = NoteVerifier("PeterNeumann", ed25519.Ed25519PrivateKey.generate().public_key())
    impostor._key_id = peter.key_id
    with pytest.raises(NoteKeyInvalid):
        open_note(GO_TEXT + b"\n" + PETER_SIG, [peter, impostor])
    assert open_note(GO_TEXT + b"\n" + PETER_SIG, [peter, NoteVerifier.from_verifier_key(PETER_VKEY)]).verified


def test_sign_note_refuses_texts_that_make_no_note() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    for text in (b"", b"no final newline", b"tab\there\n", b"\xff\n"):
        with pytest.raises(ValueError, match="note text"):
            sign_note(text, ORIGIN, key)


# -- checkpoint text -----------------------------------------------------------------------------------------

ROOT_B64 = base64.b64encode(ROOT)
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# 32 bytes leave two spare bits in the last base64 digit; setting one keeps the bytes and breaks canonicity
ROOT_B64_SPARE_BIT_SET = ROOT_B64[:-2] + bytes([_ALPHABET[_ALPHABET.index(ROOT_B64[-2]) | 1]]) + b"="
assert base64.b64decode(ROOT_B64_SPARE_BIT_SET) == ROOT


@pytest.mark.parametrize(
    "text",
    [
        b"o\n00\n" + ROOT_B64 + b"\n",
        b"o\n01\n" + ROOT_B64 + b"\n",
        b"o\n+1\n" + ROOT_B64 + b"\n",
        b"o\n-1\n" + ROOT_B64 + b"\n",
        b"o\n 1\n" + ROOT_B64 + b"\n",
        b"o\n1_000\n" + ROOT_B64 + b"\n",
        "o\n\u0661\u0662\n".encode() + ROOT_B64 + b"\n",  # Arabic-Indic digits, which int() reads
        b"o\n0x10\n" + ROOT_B64 + b"\n",
        b"o\n" + str(MAX_TREE_SIZE + 1).encode() + b"\n" + ROOT_B64 + b"\n",
        b"o\n1\n" + base64.b64encode(ROOT[:31]) + b"\n",
        b"o\n1\n" + base64.b64encode(ROOT + b"\x00") + b"\n",
        b"o\n1\n" + ROOT_B64.rstrip(b"=") + b"\n",
        b"o\n1\n" + ROOT_B64_SPARE_BIT_SET + b"\n",
        b"o\n1\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n",
        b"o\n1\n" + ROOT_B64,  # no final newline
        b"o\n1\n" + ROOT_B64 + b"\n\n",  # an empty extension line
        b"o\n1\n" + ROOT_B64 + b"\next\n\n",
        b"\n1\n" + ROOT_B64 + b"\n",  # empty origin
        b"o\n1\n",
        b"o\r\n1\n" + ROOT_B64 + b"\n",
        b"\xffo\n1\n" + ROOT_B64 + b"\n",
        b"",
    ],
    ids=[
        "leading-zeros-00",
        "leading-zero-01",
        "plus-sign",
        "negative",
        "leading-space",
        "underscore",
        "unicode-digits",
        "hex",
        "above-uint64",
        "root-31-bytes",
        "root-33-bytes",
        "root-unpadded",
        "root-noncanonical-bits",
        "root-url-alphabet",
        "no-final-newline",
        "empty-extension-line",
        "empty-extension-after-one",
        "empty-origin",
        "two-lines",
        "carriage-return",
        "not-utf8",
        "empty",
    ],
)
def test_malformed_checkpoint_text_is_refused(text: bytes) -> None:
    with pytest.raises(CheckpointMalformed):
        parse_checkpoint(text)


def test_checkpoint_edge_cases_that_are_valid() -> None:
    assert parse_checkpoint(b"o\n0\n" + ROOT_B64 + b"\n").size == 0
    assert parse_checkpoint(b"o\n" + str(MAX_TREE_SIZE).encode() + b"\n" + ROOT_B64 + b"\n").size == MAX_TREE_SIZE
    parsed = parse_checkpoint(
        "phòng văn thư/ledger\n10\n".encode() + ROOT_B64 + "\nfirst ext\n\u2014 second\n".encode()
    )
    assert parsed == Checkpoint("phòng văn thư/ledger", 10, ROOT, ("first ext", "\u2014 second"))
    assert parsed.body == "phòng văn thư/ledger\n10\n".encode() + ROOT_B64 + "\nfirst ext\n\u2014 second\n".encode()


def test_checkpoint_body_is_the_spec_format() -> None:
    assert checkpoint_body(ORIGIN, 20852163, ROOT) == f"{ORIGIN}\n20852163\n".encode() + ROOT_B64 + b"\n"
    assert checkpoint_body(ORIGIN, 1, ROOT, ("e1", "e2")).endswith(b"\ne1\ne2\n")


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("a\x00b", 1, ROOT, ()),
        ("a\tb", 1, ROOT, ()),
        ("\ud800", 1, ROOT, ()),
        (ORIGIN, -1, ROOT, ()),
        (ORIGIN, MAX_TREE_SIZE + 1, ROOT, ()),
        (ORIGIN, True, ROOT, ()),
        (ORIGIN, 1, ROOT[:31], ()),
        (ORIGIN, 1, ROOT + b"\x00", ()),
        (ORIGIN, 1, ROOT, ("",)),
        (ORIGIN, 1, ROOT, ("a\nb",)),
    ],
    ids=[
        "empty-origin",
        "newline-origin",
        "nul-origin",
        "tab-origin",
        "surrogate-origin",
        "negative-size",
        "huge-size",
        "bool-size",
        "root-31",
        "root-33",
        "empty-extension",
        "newline-extension",
    ],
)
def test_checkpoint_body_refuses_what_makes_no_checkpoint(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- each case has its own message; any ValueError refuses
        checkpoint_body(origin, size, root, extensions)


# -- purity --------------------------------------------------------------------------------------------------


def test_note_module_imports_only_the_standard_library_cryptography_and_the_pure_ledger() -> None:
    source = Path(note_module.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            assert node.module is not None
            imported.add(node.module)
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] != "cryptography"
        and name not in {"gateway.ledger.checkpoint"}
    }
    assert outside == set()
