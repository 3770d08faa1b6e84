"""RFC 3161 timestamps of the ledger's checkpoints (issue 18 point 4), and the fail-closed rule.

When ``GATEWAY_TSA_URL`` is set, the checkpoint task asks the authority, after each checkpoint, for a token over
SHA-256 of the checkpoint's C2SP note (its exact bytes), verifies it against the pinned authority certificate
(``GATEWAY_TSA_CERT_FILE``: :func:`gateway.ledger.tsa_client.request_timestamp`), and stores it
(``ledger_checkpoint_timestamps``, append-only). A checkpoint the authority could not stamp (down, refusing, an
answer that does not verify) stays unstamped and is asked for again at the next round, oldest first: nothing is
lost, and the token, when it comes, says when the authority saw the note.

The fail-closed rule (X-Road's): the age of the oldest unstamped checkpoint is how long stamping has failed.
Beyond ``GATEWAY_TSA_MAX_FAILURE_SECONDS`` the gateway says so — ``/readyz`` 503, the metric
``gateway_ledger_unstamped_seconds`` — and with ``GATEWAY_TSA_FAIL_CLOSED`` intake refuses new messages
(``503 timestamping-unavailable``) until a token comes: an instant the gateway fixes must be vouched for by a
third party within that time. The check reads the database at most every :data:`GATE_TTL` seconds per process.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509
from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.db import Database
from gateway.ledger.errors import TimestampingUnavailable
from gateway.ledger.models import LedgerCheckpoint, LedgerCheckpointTimestamp
from gateway.ledger.repository import CheckpointRepository
from gateway.ledger.timestamp import TimestampError
from gateway.ledger.tsa_client import request_timestamp
from gateway.logs import get_logger

_log = get_logger("gateway.ledger.stamping")
GATE_TTL = 5.0
# Every process reads the same age from the database; several worker processes: the latest reading of those alive.
UNSTAMPED = Gauge("gateway_ledger_unstamped_seconds",
                  "Age of the oldest ledger checkpoint without an RFC 3161 timestamp (0: all stamped)",
                  multiprocess_mode="livemostrecent")


def load_tsa_certificates(path: Path) -> list[x509.Certificate]:
    certificates = x509.load_pem_x509_certificates(path.read_bytes())
    if not certificates:
        raise ValueError(f"{path}: no PEM certificate")
    return certificates


def note_digest(note: str) -> bytes:
    """What is stamped: SHA-256 of the checkpoint note's exact bytes (UTF-8)."""
    return hashlib.sha256(note.encode("utf-8")).digest()


async def stamp_pending(db: Database, client: httpx.AsyncClient, url: str, certificates: Sequence[x509.Certificate],
                        *, timeout_seconds: float, limit: int = 10) -> int:
    """Timestamp up to ``limit`` unstamped checkpoints, oldest first; how many were stamped. Raises the first
    :class:`~gateway.ledger.timestamp.TimestampError` (the rest wait for the next round)."""
    async with db.read() as session:
        pending = [(row.size, row.note) for row in await CheckpointRepository(session).unstamped(limit)]
    stamped = 0
    for size, note in pending:
        assert note is not None
        result = await request_timestamp(client, url, note_digest(note), timeout=timeout_seconds,
                                         tsa_certificates=certificates)
        try:
            async with db.transaction() as session:
                await CheckpointRepository(session).add_timestamp(LedgerCheckpointTimestamp(
                    size=size, token=base64.b64encode(result.token).decode("ascii"), gen_time=result.gen_time,
                    tsa_certificate_sha256=result.signer_certificate_sha256, stamped_at=datetime.now(UTC)))
        except IntegrityError:
            continue  # another process stamped it first
        stamped += 1
        _log.info("ledger checkpoint timestamped", size=size, gen_time=result.gen_time.isoformat())
    return stamped


async def unstamped_age(session: AsyncSession, now: datetime) -> float:
    """Seconds since the oldest checkpoint without a timestamp was signed (0 when every one is stamped)."""
    stamped = select(LedgerCheckpointTimestamp.size).where(LedgerCheckpointTimestamp.size == LedgerCheckpoint.size)
    oldest = (await session.execute(
        select(func.min(LedgerCheckpoint.signed_at)).where(LedgerCheckpoint.note.is_not(None), ~stamped.exists())
    )).scalar_one_or_none()
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


class TimestampGate:
    """The fail-closed rule for one process: :meth:`failing_for` (cached :data:`GATE_TTL` s) and :meth:`check`."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.max_failure = settings.tsa_max_failure_seconds
        self.fail_closed = settings.tsa_fail_closed
        self._cached: tuple[float, float] | None = None  # (monotonic time read, age)

    async def failing_for(self) -> float:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > GATE_TTL:
            async with self.db.read() as session:
                age = await unstamped_age(session, datetime.now(UTC))
            UNSTAMPED.set(age)
            self._cached = (now, age)
        return self._cached[1]

    async def failing(self) -> bool:
        return await self.failing_for() > self.max_failure

    async def check(self) -> None:
        """Intake's guard: refuse when the rule is on and stamping has failed for too long."""
        if self.fail_closed and await self.failing():
            raise TimestampingUnavailable(
                f"no timestamp for {int(await self.failing_for())} s (limit {int(self.max_failure)} s)")


async def stamp_round(db: Database, settings: Settings, client: httpx.AsyncClient,
                      certificates: Sequence[x509.Certificate]) -> None:
    """One round of the checkpoint task when a TSA is configured: stamp what is pending; failures are logged."""
    assert settings.tsa_url is not None
    try:
        await stamp_pending(db, client, settings.tsa_url, certificates, timeout_seconds=settings.tsa_timeout_seconds)
    except TimestampError as exc:
        _log.warning("ledger checkpoint timestamp failed; asked again next round", error_type=type(exc).__name__,
                     reason=str(exc)[:300])
