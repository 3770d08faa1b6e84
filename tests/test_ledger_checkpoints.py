"""Signed checkpoints: made every N entries or T seconds, served to anyone authenticated, verifiable offline
with nothing but ``cryptography`` and the served certificate, append-only, and never signed over a
broken chain."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from certs import make_keypair
from gateway.config import Settings
from gateway.db import Database, create_database
from gateway.ledger import service as ledger
from gateway.ledger.checkpoint import (
    CheckpointSignatureInvalid,
    SignedCheckpoint,
    sign,
    statement,
    verify_signature,
)
from gateway.ledger.checkpointer import CheckpointRefused, checkpoint_if_due, checkpoint_task
from gateway.ledger.models import LedgerCheckpoint, LedgerEntry
from gateway.signing import GatewayKey

HEAD = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


async def append(db: Database, n: int) -> None:
    for i in range(n):
        async with db.transaction() as session:
            await ledger.append(session, type="operator.created", actor="console:test", details={"n": i})


async def count_checkpoints(db: Database) -> int:
    async with db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(LedgerCheckpoint))).scalar_one())


async def agency_headers(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> dict[str, str]:
    await client.post("/v1/agencies", headers=admin_headers, json={
        "code": "000.00.00.H41", "name": "UBND tỉnh Nghệ An", "delivery": {"mode": "pull"}})
    token = (await client.post("/v1/agencies/000.00.00.H41/tokens", headers=admin_headers)).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def test_signed_bytes_are_the_documented_four_lines() -> None:
    at = datetime(2026, 11, 22, 10, 4, 5, 123456, tzinfo=timezone(timedelta(hours=7)))
    assert statement(1000, HEAD, at) == (
        b"gateway-ledger-checkpoint/v1\nsize 1000\nhead " + HEAD.encode() + b"\ntime 2026-11-22T03:04:05.123456Z\n"
    )
    with pytest.raises(ValueError, match="head hash"):
        statement(1000, HEAD.upper(), at)
    with pytest.raises(ValueError, match="at least the genesis"):
        statement(0, HEAD, at)


@pytest.mark.parametrize("kind", ["ec", "ed25519"])
def test_other_allow_listed_keys_sign_and_verify(kind: str) -> None:
    pair = make_keypair()
    key: Any = pair.key
    cert = pair.cert
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        now = datetime.now(UTC)
        name = x509.Name([])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, None))
    signed = sign(key, cert, 3, HEAD, datetime.now(UTC))
    assert signed.algorithm == ("ecdsa-p256-sha256" if kind == "ec" else "ed25519")
    verify_signature(signed, cert)
    with pytest.raises(CheckpointSignatureInvalid, match="does not verify"):
        verify_signature(SignedCheckpoint(4, signed.head_hash, signed.signed_at, signed.algorithm, signed.signature,
                                          signed.certificate_sha256), cert)


def test_algorithm_confusion_and_garbage_are_refused() -> None:
    pair = make_keypair()
    signed = sign(pair.key, pair.cert, 3, HEAD, datetime.now(UTC))
    for algorithm, reason in [("rsa-pkcs1v15-sha256", "does not match"), ("none", "not allow-listed"),
                              ("ecdsa-p384-sha384", "does not match")]:
        forged = SignedCheckpoint(3, HEAD, signed.signed_at, algorithm, signed.signature, signed.certificate_sha256)
        with pytest.raises(CheckpointSignatureInvalid, match=reason):
            verify_signature(forged, pair.cert)
    not_base64 = SignedCheckpoint(3, HEAD, signed.signed_at, signed.algorithm, "***", signed.certificate_sha256)
    with pytest.raises(CheckpointSignatureInvalid, match="base64"):
        verify_signature(not_base64, pair.cert)
    other = make_keypair()
    with pytest.raises(CheckpointSignatureInvalid, match="another certificate"):
        verify_signature(signed, other.cert)


async def test_checkpoint_comes_every_n_entries_or_t_seconds_and_never_when_idle(app: FastAPI) -> None:
    db: Database = app.state.db
    key: GatewayKey = app.state.gateway_key

    async def due(at: datetime) -> int | None:
        signed = await checkpoint_if_due(db, key, every_entries=5, every_seconds=60, now=at)
        return None if signed is None else signed.size

    start = datetime.now(UTC)
    assert await due(start) is None  # nothing to sign: the ledger is empty
    await append(db, 2)  # genesis + 2
    assert await due(start) is None
    await append(db, 2)
    assert await due(start + timedelta(seconds=1)) == 5  # five entries since genesis
    await append(db, 1)
    assert await due(start + timedelta(seconds=2)) is None
    assert await due(start + timedelta(minutes=10)) == 6  # more than sixty seconds since the last checkpoint
    assert await due(start + timedelta(hours=5)) is None  # idle: nothing new to vouch for
    assert await count_checkpoints(db) == 2


async def test_checkpoints_verify_offline_with_the_served_certificate(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    headers = await agency_headers(client, admin_headers)
    await checkpoint_if_due(db, app.state.gateway_key, every_entries=1, every_seconds=0, force=True)
    await append(db, 3)
    await checkpoint_if_due(db, app.state.gateway_key, every_entries=1, every_seconds=0, force=True)

    # An agency may read checkpoints: they reveal only a size and a hash.
    r = await client.get("/v1/ledger/checkpoints", headers=headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [cp["size"] for cp in items] == [4, 7]  # genesis, admin, agency, token; then three more
    pem = (await client.get("/v1/gateway/certificate")).content

    # Offline: only the certificate, the documented byte string and `cryptography`.
    certificate = x509.load_pem_x509_certificate(pem)
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    for cp in items:
        signed_bytes = (f"gateway-ledger-checkpoint/v1\nsize {cp['size']}\nhead {cp['head_hash']}\n"
                        f"time {cp['signed_at']}\n")
        assert cp["statement"] == signed_bytes
        assert cp["algorithm"] == "rsa-pkcs1v15-sha256"
        assert cp["certificate_sha256"] == hashlib.sha256(
            certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
        signature = base64.b64decode(cp["signature"], validate=True)
        public_key.verify(signature, signed_bytes.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        with pytest.raises(InvalidSignature):
            public_key.verify(signature, signed_bytes.replace("size ", "size 1").encode("ascii"), padding.PKCS1v15(),
                              hashes.SHA256())

    # The signed head is the hash of entry size-1, as the ledger shows it.
    entries = (await client.get("/v1/ledger", params={"limit": "1000"}, headers=admin_headers)).json()["items"]
    assert entries[items[1]["size"] - 1]["hash"] == items[1]["head_hash"]
    latest = await client.get("/v1/ledger/checkpoints/latest", headers=headers)
    assert latest.json() == items[1]


async def test_checkpoint_pages_and_refusals(
    app: FastAPI, client: httpx.AsyncClient, auditor_headers: dict[str, str]
) -> None:
    db: Database = app.state.db
    missing = await client.get("/v1/ledger/checkpoints/latest", headers=auditor_headers)
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:gateway:problem:ledger-checkpoint-not-found"
    for _ in range(3):
        await append(db, 1)
        await checkpoint_if_due(db, app.state.gateway_key, every_entries=1, every_seconds=0, force=True)
    first = (await client.get("/v1/ledger/checkpoints", params={"limit": "2"}, headers=auditor_headers)).json()
    assert [cp["size"] for cp in first["items"]] == [3, 4]
    rest = (await client.get("/v1/ledger/checkpoints", params={"cursor": first["next"]},
                             headers=auditor_headers)).json()
    assert [cp["size"] for cp in rest["items"]] == [5]
    assert rest["next"] is None
    for params in ({"cursor": "bm90LWEtY3Vyc29y"}, {"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}):
        bad = await client.get("/v1/ledger/checkpoints", params=params, headers=auditor_headers)
        assert bad.status_code == 422
        assert bad.json()["type"] == "urn:gateway:problem:ledger-filter-invalid"
    assert (await client.get("/v1/ledger/checkpoints")).status_code == 401


@pytest.mark.parametrize(
    "statement_sql",
    [
        "UPDATE ledger_checkpoints SET head_hash = 'x'",
        "DELETE FROM ledger_checkpoints",
    ],
)
async def test_database_refuses_to_change_checkpoints(app: FastAPI, statement_sql: str) -> None:
    db: Database = app.state.db
    await append(db, 2)
    await checkpoint_if_due(db, app.state.gateway_key, every_entries=1, every_seconds=0, force=True)
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.engine.begin() as conn:
            await conn.execute(text(statement_sql))
    assert await count_checkpoints(db) == 1


async def test_postgresql_refuses_to_truncate_checkpoints(pg_url: str) -> None:
    db = create_database(pg_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.engine.begin() as conn:
                # CASCADE: the tables that reference the checkpoints (their timestamps and cosignatures,
                # migration 0009) would otherwise refuse it first, for another reason
                await conn.execute(text("TRUNCATE ledger_checkpoints CASCADE"))
    finally:
        await db.dispose()


async def test_gateway_refuses_to_sign_over_a_broken_chain(app: FastAPI) -> None:
    db: Database = app.state.db
    await append(db, 3)
    await checkpoint_if_due(db, app.state.gateway_key, every_entries=1, every_seconds=0, force=True)
    await append(db, 3)
    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER USER"))
        else:
            await conn.execute(text("DROP TRIGGER ledger_no_update"))
        await conn.execute(text("UPDATE ledger_entries SET actor = 'operator:mallory' WHERE seq = 5"))
    with pytest.raises(CheckpointRefused, match="entry 5"):
        await checkpoint_if_due(db, app.state.gateway_key, every_entries=1, every_seconds=0, force=True)
    assert await count_checkpoints(db) == 1


async def test_background_task_signs_while_the_gateway_runs_and_stops_with_it(
    app: FastAPI, settings: Settings
) -> None:
    db: Database = app.state.db
    running = settings.model_copy(update={"run_workers": True, "checkpoint_every_entries": 3,
                                          "checkpoint_every_seconds": 3600.0, "checkpoint_poll_seconds": 0.05})

    async def head_size() -> int:
        async with db.transaction() as session:
            return int((await session.execute(select(func.max(LedgerEntry.seq)))).scalar_one()) + 1

    async def signed_sizes(expected: int) -> list[int]:
        for _ in range(200):
            async with db.transaction() as session:
                sizes = list((await session.execute(select(LedgerCheckpoint.size).order_by(LedgerCheckpoint.size)))
                             .scalars())
            if len(sizes) >= expected:
                return sizes
            await asyncio.sleep(0.05)
        return sizes

    await append(db, 4)
    async with checkpoint_task(db, app.state.gateway_key, running):
        assert await signed_sizes(1) == [await head_size()]  # due: more than 3 entries since genesis
        await append(db, 2)
        await asyncio.sleep(0.3)
        assert await count_checkpoints(db) == 1  # two new entries: not due yet
        await append(db, 1)
        first = (await signed_sizes(1))[0]
        assert await signed_sizes(2) == [first, first + 3]
    assert [t for t in asyncio.all_tasks() if t.get_name() == "ledger-checkpoints"] == []
    # With workers off (the tests' default), no task runs at all.
    async with checkpoint_task(db, app.state.gateway_key, settings):
        assert [t for t in asyncio.all_tasks() if t.get_name() == "ledger-checkpoints"] == []
