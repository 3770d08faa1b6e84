"""Witnesses (issue 18 point 6): other parties cosign the gateway's checkpoints, and the gateway serves their
cosignatures with the checkpoint, so that a ledger shown differently to different people is caught.

The protocol (README, "The ledger"):

1. an operator registers the witness by its C2SP verifier key (``<name>+<key ID>+<base64 key>``; Ed25519 type
   0x01 or ECDSA type 0x02): ``POST /v1/ledger/witnesses``, ledgered ``ledger.witness_added``;
2. the witness fetches ``GET /v1/ledger/checkpoint`` (the signed note) and, holding the previous checkpoint it
   cosigned, ``GET /v1/ledger/proof/consistency?from=<its size>&to=<the new size>``; it checks the gateway's
   signature and the consistency proof (:mod:`gateway.ledger.merkle`), and only then signs the note's text
   with its key as a signed-note signature;
3. it hands the gateway its signature line: ``POST /v1/ledger/checkpoint/{size}/cosignatures`` (text/plain).
   The gateway checks it is one signature line of a registered witness that verifies over that checkpoint's
   text (never stored otherwise: ``422 ledger-cosignature-invalid``), stores it (append-only; one per
   witness and checkpoint) and ledgers ``ledger.cosigned``;
4. ``GET /v1/ledger/checkpoint[/{size}]`` serves the note with every cosignature appended.

Timestamped cosignatures (c2sp.org/tlog-cosignature, type 0x04) sign another message: not taken yet.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Database
from gateway.ledger import note
from gateway.ledger import service as ledger
from gateway.ledger.errors import CheckpointNotFound, CosignatureInvalid, WitnessInvalid
from gateway.ledger.models import LedgerCosignature, LedgerWitness
from gateway.ledger.repository import CheckpointRepository

MAX_LINE = 4096


class Witnesses:
    """Registering witnesses and taking their cosignatures, each call one transaction (a unit of work)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, verifier_key: str, actor: str) -> LedgerWitness:
        async with self.db.transaction() as session:
            return await _register(session, CheckpointRepository(session), verifier_key, actor)

    async def cosign(self, size: int, line: str, actor: str) -> LedgerCosignature:
        async with self.db.transaction() as session:
            return await _cosign(session, CheckpointRepository(session), size, line, actor)


async def _register(session: AsyncSession, repo: CheckpointRepository, verifier_key: str,
                    actor: str) -> LedgerWitness:
    try:
        verifier = note.NoteVerifier.from_verifier_key(verifier_key.strip())
    except note.NoteError as exc:
        raise WitnessInvalid(exc.reason, field="verifier_key") from None
    if verifier.signature_type not in (0x01, 0x02):
        raise WitnessInvalid("a witness signs with Ed25519 (type 0x01) or ECDSA (type 0x02)",
                             field="verifier_key")
    if await repo.witness(verifier.name) is not None:
        raise WitnessInvalid(f"a witness named {verifier.name!r} is registered already", field="verifier_key")
    row = LedgerWitness(name=verifier.name, verifier_key=verifier.verifier_key, added_at=datetime.now(UTC))
    await repo.keep(row)
    await ledger.append(session, type="ledger.witness_added", actor=actor,
                        details={"witness": verifier.name, "key_id": f"{verifier.key_id:08x}"})
    return row


async def _cosign(session: AsyncSession, repo: CheckpointRepository, size: int, line: str,
                  actor: str) -> LedgerCosignature:
    checkpoint = await repo.get(size) if 0 < size < 2**63 else None
    if checkpoint is None or checkpoint.note is None:
        raise CheckpointNotFound(f"no signed note for a checkpoint of size {size}")
    if len(line) > MAX_LINE:
        raise CosignatureInvalid("the line is too long")
    line = line if line.endswith("\n") else line + "\n"
    try:
        cosigned = note.add_signature(checkpoint.note.encode("utf-8"), line)
        name = line.rstrip("\n").split(" ", 2)[1]
    except (note.NoteError, IndexError, UnicodeDecodeError) as exc:
        raise CosignatureInvalid(getattr(exc, "reason", "not one signature line")) from None
    witness = await repo.witness(name)
    if witness is None:
        raise CosignatureInvalid(f"{name!r} is not a registered witness")
    verifier = note.NoteVerifier.from_verifier_key(witness.verifier_key)
    try:
        opened = note.open_note(cosigned, [verifier])
    except note.NoteError as exc:
        raise CosignatureInvalid(f"it does not verify with {name!r}'s key: {exc.reason}") from None
    if not opened.verified:
        raise CosignatureInvalid(f"it does not verify with {name!r}'s key")
    row = LedgerCosignature(size=size, witness=name, line=line, received_at=datetime.now(UTC))
    try:
        async with session.begin_nested():
            await repo.keep(row)
    except IntegrityError:
        raise CosignatureInvalid(f"{name!r} has cosigned checkpoint {size} already") from None
    await ledger.append(session, type="ledger.cosigned", actor=actor,
                        details={"witness": name, "size": size})
    return row


async def cosigned_note(session: AsyncSession, size: int, signed_note: str) -> str:
    """The checkpoint's note with every cosignature it was given appended."""
    text = signed_note.encode("utf-8")
    for cosignature in await CheckpointRepository(session).cosignatures(size):
        text = note.add_signature(text, cosignature.line)
    return text.decode("utf-8")
