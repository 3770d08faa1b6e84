"""Witnesses cosign checkpoints (issue 18 point 6): a registered witness checks the gateway's note and the
consistency proof from the checkpoint it cosigned before, signs, and hands its line back; the gateway verifies
and serves it with the note. Both databases."""

from __future__ import annotations

import json

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI
from sqlalchemy import select

from gateway.ledger import merkle, note
from gateway.ledger import service as ledger
from gateway.ledger.checkpointer import checkpoint_if_due, default_origin
from gateway.ledger.models import LedgerEntry

WITNESS = "audit.nghean.gov.vn/witness"


def _witness() -> tuple[ed25519.Ed25519PrivateKey, note.NoteVerifier]:
    key = ed25519.Ed25519PrivateKey.generate()
    return key, note.NoteVerifier(WITNESS, key.public_key())


async def _grow_and_checkpoint(app: FastAPI, entries: int) -> int:
    async with app.state.db.transaction() as session:
        for i in range(entries):
            await ledger.append(session, type="agency.updated", actor="console:test", details={"i": i})
    signed = await checkpoint_if_due(app.state.db, app.state.gateway_key, every_entries=1, every_seconds=0,
                                     force=True)
    assert signed is not None
    return signed.size


def _line(key: ed25519.Ed25519PrivateKey, text: bytes) -> str:
    """The witness's signature line over the note text (the last line of the note it signs)."""
    return note.sign_note(text, WITNESS, key).decode().splitlines()[-1] + "\n"


async def test_a_witness_checks_consistency_cosigns_and_the_gateway_serves_it(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str]
) -> None:
    key, verifier = _witness()
    gateway = note.NoteVerifier.from_certificate(default_origin(app.state.gateway_key.certificate),
                                                 app.state.gateway_key.certificate)
    r = await client.post("/v1/ledger/witnesses", json={"verifier_key": verifier.verifier_key},
                          headers=auditor_headers)
    assert r.status_code == 403  # only an admin registers
    r = await client.post("/v1/ledger/witnesses", json={"verifier_key": verifier.verifier_key},
                          headers=admin_headers)
    assert r.status_code == 201, r.text
    assert (await client.post("/v1/ledger/witnesses", json={"verifier_key": verifier.verifier_key},
                              headers=admin_headers)).json()["type"] == "urn:gateway:problem:ledger-witness-invalid"
    listed = (await client.get("/v1/ledger/witnesses", headers=auditor_headers)).json()
    assert [w["name"] for w in listed] == [WITNESS]

    # Round 1: the witness's first view.
    first = await _grow_and_checkpoint(app, 5)
    text1 = note.open_note((await client.get("/v1/ledger/checkpoint", headers=auditor_headers)).content,
                           [gateway]).text
    r = await client.post(f"/v1/ledger/checkpoint/{first}/cosignatures", content=_line(key, text1),
                          headers={**auditor_headers, "Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    # Round 2: it checks the new checkpoint extends the one it cosigned, then cosigns that.
    second = await _grow_and_checkpoint(app, 7)
    served = (await client.get("/v1/ledger/checkpoint", headers=auditor_headers)).content
    text2 = note.open_note(served, [gateway]).text
    old, new = note.parse_checkpoint(text1), note.parse_checkpoint(text2)
    proof = (await client.get("/v1/ledger/proof/consistency", params={"from": first, "to": second},
                              headers=auditor_headers)).json()["proof"]
    merkle.check_consistency(old.size, new.size, [bytes.fromhex(p) for p in proof], old.root, new.root)
    r = await client.post(f"/v1/ledger/checkpoint/{second}/cosignatures", content=_line(key, text2),
                          headers={**auditor_headers, "Content-Type": "text/plain"})
    assert r.status_code == 201, r.text

    # Served with both signatures, each verifiable by whoever knows the keys.
    for size, text in ((first, text1), (second, text2)):
        cosigned = (await client.get(f"/v1/ledger/checkpoint/{size}", headers=auditor_headers)).content
        opened = note.open_note(cosigned, [gateway, verifier])
        assert opened.text == text
        assert sorted(s.name for s in opened.verified) == sorted([gateway.name, WITNESS])
    async with app.state.db.read() as session:
        entries = (await session.execute(select(LedgerEntry).where(LedgerEntry.type.in_(
            ["ledger.witness_added", "ledger.cosigned"])).order_by(LedgerEntry.seq))).scalars().all()
    assert [(e.type, json.loads(e.details).get("size")) for e in entries] == [
        ("ledger.witness_added", None), ("ledger.cosigned", first), ("ledger.cosigned", second)]


async def test_cosignatures_that_do_not_verify_are_never_stored(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str]
) -> None:
    key, verifier = _witness()
    assert (await client.post("/v1/ledger/witnesses", json={"verifier_key": verifier.verifier_key},
                              headers=admin_headers)).status_code == 201
    size = await _grow_and_checkpoint(app, 4)
    served = (await client.get("/v1/ledger/checkpoint", headers=auditor_headers)).content
    text = served.split(b"\n\n")[0] + b"\n"
    stranger = ed25519.Ed25519PrivateKey.generate()  # signs under the witness's name, with another key
    bad = {
        "over other text": _line(key, text.replace(str(size).encode(), str(size + 1).encode(), 1)),
        "by an unregistered key of the same name": _line(stranger, text),
        "not a signature line": "hello\n",
        "another witness name": note.sign_note(text, "someone.else/w", key).decode().splitlines()[-1] + "\n",
    }
    for what, line in bad.items():
        r = await client.post(f"/v1/ledger/checkpoint/{size}/cosignatures", content=line,
                              headers={**auditor_headers, "Content-Type": "text/plain"})
        assert r.status_code == 422, (what, r.text)
        assert r.json()["type"] == "urn:gateway:problem:ledger-cosignature-invalid", what
    assert (await client.get("/v1/ledger/checkpoint", headers=auditor_headers)).content == served
    r = await client.post("/v1/ledger/checkpoint/99999/cosignatures", content=_line(key, text),
                          headers={**auditor_headers, "Content-Type": "text/plain"})
    assert r.status_code == 404
    good = _line(key, text)
    assert (await client.post(f"/v1/ledger/checkpoint/{size}/cosignatures", content=good,
                              headers={**auditor_headers, "Content-Type": "text/plain"})).status_code == 201
    again = await client.post(f"/v1/ledger/checkpoint/{size}/cosignatures", content=_line(key, text),
                              headers={**auditor_headers, "Content-Type": "text/plain"})
    assert again.status_code == 422  # one cosignature per witness and checkpoint
