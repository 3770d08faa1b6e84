"""The ledger's Merkle tree in the database (issue 18): extended by the checkpointer over the entries it verified,
its root on each checkpoint, inclusion and consistency proofs over the API that verify against those roots —
checked against an in-memory tree built from the entries' hashes. Both databases."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from gateway.ledger import merkle, tree
from gateway.ledger import service as ledger
from gateway.ledger.checkpointer import checkpoint_if_due
from gateway.ledger.models import LedgerEntry
from test_ledger_verify import drop_append_only_guard

PROBLEM = "urn:gateway:problem:ledger-proof-unavailable"


async def _append(app: FastAPI, count: int) -> None:
    async with app.state.db.transaction() as session:
        for i in range(count):
            await ledger.append(session, type="agency.updated", actor="console:test", details={"i": i})


async def _checkpoint(app: FastAPI) -> int:
    signed = await checkpoint_if_due(app.state.db, app.state.gateway_key, every_entries=1, every_seconds=0,
                                     force=True)
    assert signed is not None
    return signed.size


async def _reference(app: FastAPI) -> merkle.MerkleTree:
    async with app.state.db.read() as session:
        hashes = (await session.execute(select(LedgerEntry.hash).order_by(LedgerEntry.seq))).scalars().all()
    return merkle.MerkleTree(bytes.fromhex(h) for h in hashes)


async def test_checkpoints_carry_the_root_and_proofs_verify_against_them(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    r = await client.get("/v1/ledger/proof/inclusion", params={"seq": 0}, headers=auditor_headers)
    assert (r.status_code, r.json()["type"]) == (422, PROBLEM)  # no checkpoint yet

    await _append(app, 20)
    first = await _checkpoint(app)
    await _append(app, 45)
    second = await _checkpoint(app)
    reference = await _reference(app)
    assert reference.size >= second > first

    checkpoints = (await client.get("/v1/ledger/checkpoints", headers=auditor_headers)).json()["items"]
    roots = {c["size"]: c["root_hash"] for c in checkpoints}
    assert roots == {first: reference.root(first).hex(), second: reference.root(second).hex()}
    latest = (await client.get("/v1/ledger/checkpoints/latest", headers=auditor_headers)).json()
    assert latest["root_hash"] == reference.root(second).hex()

    for seq in range(second):
        for size in {seq + 1, first, second} - {s for s in (first,) if s <= seq}:
            r = await client.get("/v1/ledger/proof/inclusion", params={"seq": seq, "size": size},
                                 headers=auditor_headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["root_hash"] == reference.root(size).hex()
            assert [bytes.fromhex(p) for p in body["proof"]] == reference.inclusion_proof(seq, size)
            assert merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(body["entry_hash"])), seq, size,
                                           [bytes.fromhex(p) for p in body["proof"]], bytes.fromhex(roots[second])
                                           if size == second else bytes.fromhex(body["root_hash"]))
    r = await client.get("/v1/ledger/proof/consistency", params={"from": first}, headers=auditor_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["from_size"], body["to_size"]) == (first, second)
    assert merkle.verify_consistency(first, second, [bytes.fromhex(p) for p in body["proof"]],
                                     bytes.fromhex(roots[first]), bytes.fromhex(roots[second]))
    # a root the first checkpoint did not sign does not verify
    assert not merkle.verify_consistency(first, second, [bytes.fromhex(p) for p in body["proof"]],
                                         bytes(32), bytes.fromhex(roots[second]))


@pytest.mark.parametrize(("params", "field"), [
    ({"seq": 5, "size": 5}, "seq"), ({"seq": 0, "size": 10_000}, "size"),
])
async def test_proofs_beyond_the_checkpointed_tree_are_refused(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str], params: dict[str, int], field: str
) -> None:
    await _append(app, 10)
    await _checkpoint(app)
    r = await client.get("/v1/ledger/proof/inclusion", params=params, headers=auditor_headers)
    assert r.status_code == 422, r.text
    assert (r.json()["type"], r.json()["field"]) == (PROBLEM, field)
    r = await client.get("/v1/ledger/proof/consistency", params={"from": 20, "to": 11}, headers=auditor_headers)
    assert r.status_code == 422
    r = await client.get("/v1/ledger/proof/inclusion", params={"seq": 0})
    assert r.status_code == 401


async def test_the_tree_extends_in_steps_exactly_as_if_built_at_once(app: FastAPI) -> None:
    """A deployment whose checkpoints predate the tree: extended from 0 in uneven steps, the stored nodes give
    the same roots and proofs as one tree built at once."""
    await _append(app, 70)
    reference = await _reference(app)
    for step in (1, 2, 3, 8, 9, 31, 32, 33, reference.size):
        async with app.state.db.transaction() as session:
            assert await tree.extend(session, step) == step
    async with app.state.db.read() as session:
        assert await tree.stored_size(session) == reference.size
        for size in (1, 7, 32, 33, reference.size):
            assert await tree.root(session, size) == reference.root(size)
            assert await tree.consistency_proof(session, 1, size) == reference.consistency_proof(1, size)
        assert await tree.inclusion_proof(session, 40, 64) == reference.inclusion_proof(40, 64)
        with pytest.raises(tree.TreeIncomplete):
            await tree.root(session, reference.size + 5)


async def _verify(client: httpx.AsyncClient, headers: dict[str, str], start: str = "genesis") -> dict[str, object]:
    r = await client.get("/v1/ledger/verify", params={"from": start}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_verify_recomputes_each_checkpoint_root_from_the_entries(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    await _append(app, 12)
    await _checkpoint(app)
    await _append(app, 30)
    last = await _checkpoint(app)
    await _append(app, 3)
    body = await _verify(client, auditor_headers)
    assert (body["ok"], body["checkpoints_checked"], body["roots_checked"]) == (True, 2, 2)
    body = await _verify(client, auditor_headers, "checkpoint")  # resumes the tree from the stored nodes
    assert (body["ok"], body["verified_from"], body["roots_checked"]) == (True, last, 0)

    # A root that is not the entries' (the column edited with the guards dropped) is named.
    await drop_append_only_guard(app.state.db)
    async with app.state.db.engine.begin() as conn:
        await conn.execute(text("UPDATE ledger_checkpoints SET root_hash = :r WHERE size = :s"),
                           {"r": "ab" * 32, "s": last})
    body = await _verify(client, auditor_headers)
    assert body["ok"] is False
    assert body["bad_checkpoint"] == last
    assert "Merkle root is not the root" in str(body["reason"])


async def test_a_tampered_node_makes_proofs_fail_against_the_signed_root(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    await _append(app, 16)
    size = await _checkpoint(app)
    checkpoint_root = bytes.fromhex(
        (await client.get("/v1/ledger/checkpoints/latest", headers=auditor_headers)).json()["root_hash"])
    await drop_append_only_guard(app.state.db)
    async with app.state.db.engine.begin() as conn:  # every inner node rewritten
        await conn.execute(text("UPDATE ledger_merkle_nodes SET hash = :h WHERE level >= 1"), {"h": "cd" * 32})
    body = (await client.get("/v1/ledger/proof/inclusion", params={"seq": size - 1, "size": size},
                             headers=auditor_headers)).json()
    proof = [bytes.fromhex(p) for p in body["proof"]]
    assert not merkle.verify_inclusion(bytes.fromhex(body["leaf_hash"]), size - 1, size, proof, checkpoint_root)


async def test_each_checkpoint_is_also_a_c2sp_signed_note_over_the_root(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    from gateway.ledger import note
    from gateway.ledger.checkpointer import default_origin

    r = await client.get("/v1/ledger/checkpoint", headers=auditor_headers)
    assert r.status_code == 404
    await _append(app, 9)
    size = await _checkpoint(app)
    r = await client.get("/v1/ledger/checkpoint", headers=auditor_headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    origin = default_origin(app.state.gateway_key.certificate)
    verifier = note.NoteVerifier.from_certificate(origin, app.state.gateway_key.certificate)
    opened = note.open_note(r.content, [verifier])
    checkpoint = note.parse_checkpoint(opened.text)
    assert (checkpoint.origin, checkpoint.size) == (origin, size)
    assert checkpoint.root == (await _reference(app)).root(size)
    by_size = await client.get(f"/v1/ledger/checkpoint/{size}", headers=auditor_headers)
    assert by_size.content == r.content
    assert (await client.get("/v1/ledger/checkpoint/999999", headers=auditor_headers)).status_code == 404
    assert (await client.get("/v1/ledger/checkpoint")).status_code == 401
    listed = (await client.get("/v1/ledger/checkpoints/latest", headers=auditor_headers)).json()
    assert listed["note"] == r.text
    # One changed byte of the text, and the gateway's key no longer vouches for it.
    tampered = r.content.replace(f"\n{size}\n".encode(), f"\n{size + 1}\n".encode(), 1)
    with pytest.raises(note.NoteError):
        note.open_note(tampered, [verifier])


async def test_a_rewritten_ledger_is_caught_by_the_chain_and_by_a_consistency_proof_from_an_earlier_checkpoint(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    """Triggers dropped, entry 5 edited and every hash after it recomputed, the tree rebuilt over the rewritten
    entries (what an operator with the database and the key would do to hide it): the chain no longer meets
    the first checkpoint's head, and no consistency proof from the root a witness kept verifies."""
    from test_ledger_verify import rewrite_from

    await _append(app, 12)
    first = await _checkpoint(app)
    kept_root = bytes.fromhex(
        (await client.get("/v1/ledger/checkpoints/latest", headers=auditor_headers)).json()["root_hash"])
    await _append(app, 10)
    await drop_append_only_guard(app.state.db)
    await rewrite_from(app.state.db, 5)
    rewritten = await _reference(app)  # the tree an attacker would rebuild and sign anew
    assert rewritten.root(first) != kept_root
    proof = rewritten.consistency_proof(first, rewritten.size)
    assert not merkle.verify_consistency(first, rewritten.size, proof, kept_root, rewritten.root())
    body = await _verify(client, auditor_headers)
    assert body["ok"] is False
    assert body["bad_checkpoint"] == first
