"""Blobs in PostgreSQL, so that any number of gateway nodes share them with the database and need no shared disk.

Tables (migration 0011): ``blobs(sha256, size, created_at)`` and ``blob_chunks(sha256, ordinal, data)``, 1 MiB a
chunk. A blob is written in one transaction: its ``blobs`` row first (``ON CONFLICT DO NOTHING``: the row is the
lock, so a concurrent commit of the same bytes waits for the first and then finds it there), then its chunks by
binary ``COPY`` streamed from the local staging file. A ``blobs`` row is therefore visible only with all its
chunks. A read fetches one chunk at a time (a pooled connection per chunk, so a slow download holds none), and the
reader checks size and SHA-256 as it goes (``BlobReader``): memory stays at one chunk both ways.

The driver is psycopg 3, synchronous: the store's callers run it in threads (``asyncio.to_thread``), where the
app's asyncpg engine (bound to the event loop) cannot be used. Its connections come from ``GATEWAY_DATABASE_URL``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from psycopg_pool import ConnectionPool
from sqlalchemy.engine import make_url

from gateway.blobs.store import BlobCorrupt, BlobReader, BlobStore, check_digest

CHUNK = 1024 * 1024


def libpq_url(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy) as libpq reads it; asyncpg's ``ssl=`` becomes ``sslmode=``."""
    parsed = make_url(url)
    query = dict(parsed.query)
    if "ssl" in query and "sslmode" not in query:
        query["sslmode"] = query.pop("ssl")
    return parsed.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


class PostgresBlobStore(BlobStore):
    """Blobs as chunk rows in PostgreSQL; ``root/tmp`` (local) only stages uploads while they are hashed."""

    def __init__(self, root: Path, database_url: str, max_connections: int = 8) -> None:
        super().__init__(root)
        # psycopg's own pool (psycopg_pool); connections opened as needed, autocommit (a write is its own
        # transaction block), at most ``max_connections`` at once: a further caller waits for one
        self._pool = ConnectionPool(libpq_url(database_url), min_size=0, max_size=max_connections, open=True,
                                    kwargs={"autocommit": True, "application_name": "gateway-blobs"})

    def close(self) -> None:
        self._pool.close()

    def exists(self, sha256: str) -> bool:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT 1 FROM blobs WHERE sha256 = %s", (check_digest(sha256),)).fetchone()
        return row is not None

    def _keep_staged(self, digest: str, staged: Path, size: int) -> None:
        with staged.open("rb") as fh:
            self._insert(digest, size, iter(lambda: fh.read(CHUNK), b""))

    def _keep_bytes(self, digest: str, data: bytes) -> None:
        view = memoryview(data)
        self._insert(digest, len(data), (bytes(view[i:i + CHUNK]) for i in range(0, len(data), CHUNK)))

    def _insert(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        with self._pool.connection() as conn, conn.transaction():
            new = conn.execute(
                "INSERT INTO blobs (sha256, size, created_at) VALUES (%s, %s, now()) "
                "ON CONFLICT (sha256) DO NOTHING RETURNING sha256", (digest, size)).fetchone()
            if new is None:  # already kept (content-addressed), or just now by a concurrent commit
                return
            with conn.cursor() as cur, cur.copy(
                    "COPY blob_chunks (sha256, ordinal, data) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "int4", "bytea"])
                for ordinal, chunk in enumerate(chunks):
                    copy.write_row((digest, ordinal, chunk))

    def _reader(self, digest: str) -> BlobReader:
        state = {"ordinal": 0}
        buffered: list[memoryview] = [memoryview(b"")]

        def size() -> int:
            with self._pool.connection() as conn:
                row = conn.execute("SELECT size FROM blobs WHERE sha256 = %s", (digest,)).fetchone()
            if row is None:
                raise FileNotFoundError(f"no blob {digest}")
            value = row[0]
            assert isinstance(value, int)
            return value

        def source(n: int) -> bytes:
            if not buffered[0]:
                with self._pool.connection() as conn:
                    row = conn.execute("SELECT data FROM blob_chunks WHERE sha256 = %s AND ordinal = %s",
                                       (digest, state["ordinal"]), binary=True).fetchone()
                if row is None:
                    return b""
                data = row[0]
                if not isinstance(data, bytes) or not data:
                    raise BlobCorrupt(f"blob {digest}: chunk {state['ordinal']} is empty")
                state["ordinal"] += 1
                buffered[0] = memoryview(data)
            out = bytes(buffered[0][:n])
            buffered[0] = buffered[0][n:]
            return out

        return BlobReader(digest, source, size)
