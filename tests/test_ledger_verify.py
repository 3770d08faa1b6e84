"""Verification names the right entry after an attacker with database access edits, deletes, swaps or
rewrites ledger rows (the append-only triggers dropped first), and refuses forged checkpoints; on both
databases, over the API and from the console."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from certs import make_keypair
from gateway.config import Settings
from gateway.db import Database
from gateway.ledger import service as ledger
from gateway.ledger.chain import EntryFields, entry_hash
from gateway.ledger.checkpoint import sign
from gateway.ledger.checkpointer import checkpoint_if_due
from gateway.ledger.models import LedgerCheckpoint, LedgerEntry
from gateway.ledger.verify import LedgerVerifier
from gateway.signing import GatewayKey

_CONTENT = ("recorded_at", "type", "actor", "document", "document_id", "sender", "recipient", "details",
            "prev_hash", "hash")


async def append(db: Database, n: int) -> None:
    for i in range(n):
        async with db.transaction() as session:
            await ledger.append(session, type="token.issued", actor="console:test", sender="000.00.00.H41",
                                details={"token_id": f"t{i}", "ghi chú": "Văn phòng \"UBND\""})


async def checkpoint(db: Database, key: GatewayKey) -> int:
    signed = await checkpoint_if_due(db, key, every_entries=1, every_seconds=1e9, force=True)
    assert signed is not None
    return signed.size


async def drop_append_only_guard(db: Database) -> None:
    """What an attacker with database access does first."""
    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            for table in ("ledger_entries", "ledger_checkpoints", "ledger_merkle_nodes"):
                await conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            for trigger in ("ledger_no_update", "ledger_no_delete", "ledger_checkpoints_no_update",
                            "ledger_checkpoints_no_delete", "ledger_merkle_nodes_no_update",
                            "ledger_merkle_nodes_no_delete"):
                await conn.execute(text(f"DROP TRIGGER {trigger}"))


async def edit(db: Database, seq: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE ledger_entries SET actor = 'operator:mallory' WHERE seq = :s"), {"s": seq})


async def delete(db: Database, *seqs: int) -> None:
    async with db.engine.begin() as conn:
        for seq in seqs:
            await conn.execute(text("DELETE FROM ledger_entries WHERE seq = :s"), {"s": seq})


async def swap(db: Database, a: int, b: int) -> None:
    """Exchange everything but seq between two rows (hashes are unique, so park one row's first)."""
    columns = ", ".join(_CONTENT)
    assignments = ", ".join(f"{c} = :{c}" for c in _CONTENT)
    async with db.engine.begin() as conn:
        rows = {
            seq: dict((await conn.execute(text(f"SELECT {columns} FROM ledger_entries WHERE seq = :s"),  # noqa: S608 -- constant column names
                                          {"s": seq})).mappings().one())
            for seq in (a, b)
        }
        await conn.execute(text("UPDATE ledger_entries SET hash = :h, prev_hash = :p WHERE seq = :s"),
                           {"h": "parked-hash", "p": "parked-prev", "s": a})
        update = text(f"UPDATE ledger_entries SET {assignments} WHERE seq = :s")  # noqa: S608 -- constant column names
        await conn.execute(update, {**rows[a], "s": b})
        await conn.execute(update, {**rows[b], "s": a})


async def rewrite_from(db: Database, seq: int) -> None:
    """Edit one entry and recompute every hash after it: a chain that verifies on its own."""
    async with db.transaction() as session:
        entries = list((await session.execute(
            select(LedgerEntry).where(LedgerEntry.seq >= seq - 1).order_by(LedgerEntry.seq))).scalars())
    prev = entries[0].hash
    async with db.engine.begin() as conn:
        for e in entries[1:]:
            actor = "operator:mallory" if e.seq == seq else e.actor
            fields = EntryFields(e.seq, e.recorded_at, e.type, actor, e.document, e.document_id, e.sender,
                                 e.recipient, prev, e.details)
            new_hash = entry_hash(fields)
            await conn.execute(
                text("UPDATE ledger_entries SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
                {"a": actor, "p": "tmp-" + str(e.seq), "h": "tmp-h-" + str(e.seq), "s": e.seq},
            )
            await conn.execute(text("UPDATE ledger_entries SET prev_hash = :p, hash = :h WHERE seq = :s"),
                               {"p": prev, "h": new_hash, "s": e.seq})
            prev = new_hash


async def verify(client: httpx.AsyncClient, headers: dict[str, str], start: str = "genesis") -> dict[str, Any]:
    r = await client.get("/v1/ledger/verify", params={"from": start}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_intact_ledger_verifies_with_its_checkpoints(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    await append(db, 9)
    await checkpoint(db, app.state.gateway_key)
    await append(db, 5)
    body = await verify(client, auditor_headers)
    # The auditor's own creation is the first entry after genesis.
    assert body["ok"] is True
    assert body["first_bad_seq"] is None
    assert body["size"] == 16
    assert body["checkpoints_checked"] == 1
    assert body["latest_checkpoint"] == 11


@pytest.mark.parametrize(("tamper", "bad_seq", "reason"), [
    ("edit", 7, "hash does not match its content"),
    ("delete", 7, "sequence gap"),
    ("swap", 7, "previous hash does not match"),
])
@pytest.mark.parametrize("batch_size", [3, 10_000])
async def test_verify_names_the_tampered_entry(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str], tamper: str, bad_seq: int, reason: str,
    batch_size: int,
) -> None:
    db: Database = app.state.db
    await append(db, 4)
    await checkpoint(db, app.state.gateway_key)  # covers seq 0..5, before the tampered entry
    await append(db, 14)
    await drop_append_only_guard(db)
    if tamper == "edit":
        await edit(db, 7)
    elif tamper == "delete":
        await delete(db, 7)
    else:
        await swap(db, 7, 8)

    body = await verify(client, auditor_headers)
    assert body["ok"] is False
    assert body["first_bad_seq"] == bad_seq
    assert reason in body["reason"]
    assert body["size"] == bad_seq
    assert body["checkpoints_checked"] == 1
    # The same answer whatever the batch boundaries.
    report = await LedgerVerifier(db, app.state.gateway_key.certificate, batch_size=batch_size).run()
    assert (report.ok, report.first_bad_seq) == (False, bad_seq)


async def test_rewritten_chain_is_caught_by_the_checkpoint_after_it(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    await append(db, 4)
    first = await checkpoint(db, app.state.gateway_key)
    await append(db, 10)
    second = await checkpoint(db, app.state.gateway_key)
    await drop_append_only_guard(db)
    await rewrite_from(db, 9)

    body = await verify(client, auditor_headers)
    assert body["ok"] is False
    assert body["bad_checkpoint"] == second
    # The chain alone is consistent again: the first entry no checkpoint vouches for is named.
    assert body["first_bad_seq"] == first
    assert "rewritten" in body["reason"]


async def test_deleted_tail_is_caught_by_the_checkpoint_that_covered_it(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    await append(db, 10)
    size = await checkpoint(db, app.state.gateway_key)
    await drop_append_only_guard(db)
    await delete(db, size - 1, size - 2, size - 3)

    body = await verify(client, auditor_headers)
    assert body["ok"] is False
    assert body["first_bad_seq"] == size - 3
    assert body["bad_checkpoint"] == size
    assert "missing" in body["reason"]


async def test_checkpoint_signed_by_another_key_is_refused(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    await append(db, 6)
    async with db.transaction() as session:
        head = (await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1))).scalar_one()
        mallory = make_keypair("not the gateway")
        forged = sign(mallory.key, mallory.cert, head.seq + 1, head.hash, head.recorded_at)
        session.add(LedgerCheckpoint(size=forged.size, head_hash=forged.head_hash, signed_at=forged.signed_at,
                                     algorithm=forged.algorithm, signature=forged.signature,
                                     certificate_sha256=forged.certificate_sha256))

    body = await verify(client, auditor_headers)
    assert body["ok"] is False
    assert body["bad_checkpoint"] == head.seq + 1
    assert body["first_bad_seq"] is None
    assert "checkpoint" in body["reason"]


async def test_altered_checkpoint_is_refused(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    await append(db, 6)
    size = await checkpoint(db, app.state.gateway_key)
    await append(db, 2)
    await drop_append_only_guard(db)
    async with db.engine.begin() as conn:
        # Re-point the checkpoint at a longer ledger: the signature no longer covers what is stored.
        await conn.execute(text("UPDATE ledger_checkpoints SET size = :n WHERE size = :s"), {"n": size + 2, "s": size})

    body = await verify(client, auditor_headers)
    assert body["ok"] is False
    assert body["bad_checkpoint"] == size + 2
    assert "signature does not verify" in body["reason"]


async def test_verify_from_checkpoint_recomputes_only_what_follows_it(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    await append(db, 5)
    await checkpoint(db, app.state.gateway_key)
    await append(db, 5)
    anchor = await checkpoint(db, app.state.gateway_key)
    await append(db, 6)

    body = await verify(client, auditor_headers, "checkpoint")
    assert body["ok"] is True
    assert body["mode"] == "checkpoint"
    assert body["verified_from"] == anchor
    assert body["checkpoints_checked"] == 2
    assert body["size"] == anchor + 6

    await drop_append_only_guard(db)
    await edit(db, anchor + 2)
    body = await verify(client, auditor_headers, "checkpoint")
    assert (body["ok"], body["first_bad_seq"]) == (False, anchor + 2)


async def test_verify_from_checkpoint_falls_back_past_a_checkpoint_that_no_longer_matches(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    await append(db, 5)
    first = await checkpoint(db, app.state.gateway_key)
    await append(db, 5)
    second = await checkpoint(db, app.state.gateway_key)
    await drop_append_only_guard(db)
    await delete(db, second - 1)

    body = await verify(client, auditor_headers, "checkpoint")
    assert body["ok"] is False
    assert body["verified_from"] == first
    assert body["first_bad_seq"] == second - 1


async def test_agencies_may_not_run_verification(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await client.post("/v1/agencies", headers=admin_headers, json={
        "code": "000.00.00.H41", "name": "UBND tỉnh Nghệ An", "delivery": {"mode": "pull"}})
    token = (await client.post("/v1/agencies/000.00.00.H41/tokens", headers=admin_headers)).json()["token"]
    r = await client.get("/v1/ledger/verify", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert r.json()["type"] == "urn:gateway:problem:forbidden"


def _gateway(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    assert settings.signing_key_file is not None
    assert settings.signing_cert_file is not None
    env = {**os.environ, "GATEWAY_DATABASE_URL": settings.effective_database_url,
           "GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_SIGNING_KEY_FILE": str(settings.signing_key_file),
           "GATEWAY_SIGNING_CERT_FILE": str(settings.signing_cert_file)}
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


async def test_console_verify_agrees_with_the_api_and_exits_non_zero_when_broken(
    app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    db: Database = app.state.db
    await append(db, 6)
    signed = _gateway(settings, "ledger", "checkpoint")
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["size"] == 7

    intact = _gateway(settings, "ledger", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "ledger OK: 7 entries" in intact.stdout

    # A third party checks with the certificate it was given: any other certificate fails closed.
    other = tmp_path / "other.pem"
    other.write_text(make_keypair().cert_pem)
    stranger = _gateway(settings, "ledger", "verify", "--certificate", str(other), "--json")
    assert stranger.returncode == 1
    assert json.loads(stranger.stdout)["bad_checkpoint"] == 7

    await drop_append_only_guard(db)
    await edit(db, 4)
    broken = _gateway(settings, "ledger", "verify", "--json")
    assert broken.returncode == 1
    body = json.loads(broken.stdout)
    assert (body["ok"], body["first_bad_seq"], body["size"]) == (False, 4, 4)
    assert "BROKEN at entry 4" in _gateway(settings, "ledger", "verify").stdout
