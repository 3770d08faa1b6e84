"""Signing checkpoints of the chain head: when due, from a background task, or on demand.

Due means the ledger has grown since the last checkpoint, and either ``checkpoint_every_entries`` entries
were appended since, or ``checkpoint_every_seconds`` have passed (since the last checkpoint, or since
genesis for the first). An idle ledger gets no new checkpoints: there is nothing new to vouch for.

The gateway signs only what it has verified: before signing, the entries since the previous checkpoint
are recomputed from that checkpoint's head (from genesis for the first), and the previous head must still
be the stored hash. A broken or rewritten chain, or a ledger shorter than what was signed, is refused with
:class:`CheckpointRefused` and logged, never signed over. That is what lets ``gateway ledger verify --from checkpoint``
trust the entries below its anchor. The same verified entries extend the ledger's Merkle tree
(:mod:`gateway.ledger.tree`) before the checkpoint is signed, and the checkpoint keeps the tree's root at its size.

Several gateway processes may run the task: a PostgreSQL advisory lock lets one sign at a time, and the
checkpoint's size is its primary key, so a race can only fail, never fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.db import Database
from gateway.ledger import note, stamping, tree
from gateway.ledger.chain import GENESIS_PREV_HASH, ChainBroken, ChainWalker
from gateway.ledger.checkpoint import SignedCheckpoint, sign
from gateway.ledger.models import LedgerCheckpoint
from gateway.ledger.repository import CheckpointRepository, LedgerRepository
from gateway.logs import get_logger
from gateway.signing import GatewayKey

_log = get_logger("gateway.ledger.checkpoints")
_BATCH = 10_000


class CheckpointRefused(Exception):
    """The chain does not extend the last checkpoint; nothing was signed."""


async def _verify_since(session: AsyncSession, start: int, prev_hash: str, size: int) -> None:
    repo = LedgerRepository(session)
    walker = ChainWalker(start, prev_hash)
    after: int | None = start - 1 if start > 0 else None
    while walker.next_seq < size:
        rows = await repo.chain_rows(after, _BATCH)
        if not rows:
            break
        inside = [row for row in rows if isinstance(row[0], int) and row[0] < size]
        try:
            # hashing in a worker thread: the event loop (this process's requests) keeps its turns
            await asyncio.to_thread(walker.feed, inside)
        except ChainBroken as exc:
            raise CheckpointRefused(f"not signing: {exc}") from exc
        if len(inside) < len(rows):
            break
        after = rows[-1][0]
    if walker.next_seq != size:
        raise CheckpointRefused(f"not signing: entry {walker.next_seq} is missing")


def default_origin(certificate: x509.Certificate) -> str:
    """The checkpoints' origin (and note key name) when ``GATEWAY_LEDGER_ORIGIN`` is not set: stable for as long as
    the gateway keeps its certificate, and unlike any other gateway's."""
    sha = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    return f"gateway-ledger/{sha[:16]}"


async def checkpoint_if_due(
    db: Database,
    key: GatewayKey,
    *,
    every_entries: int,
    every_seconds: float,
    force: bool = False,
    now: datetime | None = None,
    origin: str | None = None,
) -> SignedCheckpoint | None:
    """Sign and store a checkpoint of the committed head if one is due (``force``: if the ledger grew); with it,
    the same checkpoint as a C2SP signed note under ``origin`` (default: :func:`default_origin`)."""
    try:
        async with db.transaction() as session:
            checkpoints = CheckpointRepository(session)
            if not await checkpoints.try_lock():
                return None
            ledger = LedgerRepository(session)
            head = await ledger.head_position()
            if head is None:
                return None
            head_seq, head_hash, head_at = head
            size = head_seq + 1
            last = await checkpoints.latest()
            if last is None:
                genesis = await ledger.get(0)
                since = genesis.recorded_at if genesis is not None else head_at
                start, prev_hash = 0, GENESIS_PREV_HASH
            else:
                if size < last.size:
                    raise CheckpointRefused(
                        f"not signing: the ledger holds {size} entries, checkpoint {last.size} signed more"
                    )
                if size == last.size:
                    return None
                stored = (await ledger.hashes_at([last.size - 1])).get(last.size - 1)
                if stored != last.head_hash:
                    raise CheckpointRefused(
                        f"not signing: entry {last.size - 1} is no longer what checkpoint {last.size} signed"
                    )
                since = last.signed_at
                start, prev_hash = last.size, last.head_hash
            instant = now or datetime.now(UTC)
            due = force or size - start >= every_entries or (instant - since).total_seconds() >= every_seconds
            if not due:
                return None
            await _verify_since(session, start, prev_hash, size)
            # The Merkle tree over the entries just verified, and its root at this size (gateway.ledger.tree).
            await tree.extend(session, size)
            root = await tree.root(session, size)
            root_hash = root.hex()
            name = origin or default_origin(key.certificate)
            # The two signatures in a worker thread too (RSA-3072: milliseconds each, not on the event loop).
            signed_note = await asyncio.to_thread(note.sign_note, note.checkpoint_body(name, size, root), name,
                                                  key.private_key)
            checkpoint = await asyncio.to_thread(sign, key.private_key, key.certificate, size, head_hash,
                                                 max(instant, head_at))
            await checkpoints.add(
                LedgerCheckpoint(
                    size=checkpoint.size,
                    head_hash=checkpoint.head_hash,
                    signed_at=checkpoint.signed_at,
                    algorithm=checkpoint.algorithm,
                    signature=checkpoint.signature,
                    certificate_sha256=checkpoint.certificate_sha256,
                    root_hash=root_hash,
                    note=signed_note.decode("utf-8"),
                )
            )
    except IntegrityError:
        return None  # another process signed this very size first
    _log.info("ledger checkpoint signed", size=checkpoint.size, head=checkpoint.head_hash)
    return checkpoint


async def run_checkpoints(db: Database, key: GatewayKey, settings: Settings,
                          stamp: Callable[[], Awaitable[None]] | None = None) -> None:
    """Forever: sign a checkpoint whenever one is due, then (``stamp``: a timestamping authority is configured)
    timestamp what is unstamped (gateway.ledger.stamping). Cancel the task to stop it."""
    poll = max(0.05, min(settings.checkpoint_poll_seconds, settings.checkpoint_every_seconds))
    last_refusal: str | None = None
    while True:
        try:
            await checkpoint_if_due(
                db, key, every_entries=settings.checkpoint_every_entries,
                every_seconds=settings.checkpoint_every_seconds, origin=settings.ledger_origin,
            )
            last_refusal = None
        except CheckpointRefused as exc:
            if str(exc) != last_refusal:  # an alert, not a log flood: once per distinct refusal
                _log.error("ledger checkpoint refused: the chain does not verify", reason=str(exc))
                last_refusal = str(exc)
        except Exception as exc:  # the task must outlive a database restart
            _log.warning("ledger checkpoint failed; retrying", error_type=type(exc).__name__)
        if stamp is not None:
            try:
                await stamp()
            except Exception as exc:  # the authority or the database; the next round asks again
                _log.warning("ledger timestamping round failed; retrying", error_type=type(exc).__name__)
        await asyncio.sleep(poll)


@contextlib.asynccontextmanager
async def checkpoint_task(db: Database, key: GatewayKey, settings: Settings) -> AsyncIterator[None]:
    """Run :func:`run_checkpoints` for the life of the app when workers run (``GATEWAY_RUN_WORKERS``)."""
    if not settings.run_workers:
        yield
        return
    client: httpx.AsyncClient | None = None
    stamp: Callable[[], Awaitable[None]] | None = None
    if settings.tsa_url and settings.tsa_cert_file is not None:
        certificates = stamping.load_tsa_certificates(settings.tsa_cert_file)
        tsa_client = client = httpx.AsyncClient(trust_env=False)

        async def stamp_now() -> None:
            await stamping.stamp_round(db, settings, tsa_client, certificates)

        stamp = stamp_now
    task = asyncio.create_task(run_checkpoints(db, key, settings, stamp), name="ledger-checkpoints")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if client is not None:
            await client.aclose()
