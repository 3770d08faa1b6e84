"""Blobs in PostgreSQL, so that any number of gateway nodes share them with the database and need no shared disk.

Tables (migration 0011): ``blobs(sha256, size, created_at)`` and ``blob_chunks(sha256, ordinal, data)``, 1 MiB a
chunk, stored uncompressed out of line (``STORAGE EXTERNAL``). A ``blobs`` row under a digest is visible only with
all its chunks, committed: readers fetch one chunk at a time (a pooled connection per chunk, so a slow download
holds none) and check size and SHA-256 as they go (``BlobReader``); memory stays at one chunk both ways.

An upload of a chunk or more is written to PostgreSQL while it arrives, not after (issue 17: the second pass over
the staged file cost as much as the upload). The writer's thread (``BlobWriter``) opens a stream on the first full
chunk: in one transaction, a ``blobs`` row under an upload key (``upload-<uuid>``, never a digest: no lookup can
name it) and the chunks under that key by binary ``COPY``, committed when the part ends. ``commit`` then only
adopts them, in one short transaction: the ``blobs`` row under the digest (``ON CONFLICT DO NOTHING``: the row is
the lock, a concurrent commit of the same bytes waits for the first and finds it there), the chunks re-keyed to
it (an ``UPDATE`` of the key column: PostgreSQL keeps the out-of-line data where it is), the upload row deleted;
the same bytes already kept, the upload row's deletion drops the new chunks instead (``ON DELETE CASCADE``).
A refused or abandoned upload is deleted by ``discard`` (an open stream is rolled back). A crash mid-part leaves
nothing (the stream's transaction never commits); a crash between a part's end and the request's commit leaves an
upload row and its chunks, which ``sweep_uploads`` deletes once older than ``STALE_UPLOAD``: every node runs it
at most once an hour, when it opens a stream (so the first large upload after a start sweeps too).
A blob smaller than a chunk is not streamed: ``commit`` writes it from the staging file in one transaction.

The cost is PostgreSQL's (measured, bench/large_upload.py): 1 GiB takes it 5-7 s of CPU and 1.07 GiB of WAL, each
1 MiB value being cut into ~2 KB TOAST rows (``STORAGE EXTERNAL`` only spares the compression attempt); the
adoption's ``UPDATE`` of 1 GiB of chunks takes ~10 ms and 0.3 MiB of WAL. A deployment taking large uploads
raises ``max_wal_size`` so that one upload does not force checkpoints.

The driver is psycopg 3, synchronous: the store's callers run it in threads (``asyncio.to_thread``), where the
app's asyncpg engine (bound to the event loop) cannot be used. Its connections come from ``GATEWAY_DATABASE_URL``:
one pool for reads and commits, another for upload streams (each held for one part's upload), so that uploads in
progress never starve downloads.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterable
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool
from sqlalchemy.engine import make_url

from gateway.blobs.store import CHUNK, BlobCorrupt, BlobReader, BlobStore, BlobWriter, check_digest

#: an upload's chunks not adopted after this long are an orphan of a crash (no request lives this long)
STALE_UPLOAD = timedelta(hours=24)
#: how often a node sweeps orphan uploads (when it opens a stream)
SWEEP_EVERY_S = 3600.0
UPLOAD_PREFIX = "upload-"


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
        # a stream holds its connection for a part's upload; a further upload waits for one (its queue fills,
        # and the multipart reader waits with it), however long the uploads ahead of it take
        self._streams = ConnectionPool(libpq_url(database_url), min_size=0, max_size=max_connections, open=True,
                                       timeout=24 * 3600.0,
                                       kwargs={"autocommit": True, "application_name": "gateway-blob-uploads"})
        self._swept_at: float | None = None
        self._sweep_lock = threading.Lock()

    def close(self) -> None:
        self._streams.close()
        self._pool.close()

    def writer(self, limit: int | None = None) -> BlobWriter:
        return _StreamingWriter(self, self.tmp / f"{uuid.uuid4().hex}.part", limit)

    def commit(self, writer: BlobWriter) -> str:
        writer.close()
        if not isinstance(writer, _StreamingWriter) or writer.upload is None:
            return super().commit(writer)  # smaller than a chunk: written from the staging file
        digest, upload = writer.sha256, writer.upload
        with self._pool.connection() as conn, conn.transaction():
            new = conn.execute(
                "INSERT INTO blobs (sha256, size, created_at) VALUES (%s, %s, now()) "
                "ON CONFLICT (sha256) DO NOTHING RETURNING sha256", (digest, writer.size)).fetchone()
            if new is not None:
                moved = conn.execute("UPDATE blob_chunks SET sha256 = %s WHERE sha256 = %s",
                                     (digest, upload)).rowcount
                if moved != writer.chunks:  # the stream committed, so this cannot be; never keep a short blob
                    raise BlobCorrupt(f"upload {upload}: {moved} chunks where {writer.chunks} were written")
            conn.execute("DELETE FROM blobs WHERE sha256 = %s", (upload,))
        writer.upload = None
        writer.path.unlink(missing_ok=True)
        return digest

    def sweep_uploads(self, older_than: timedelta = STALE_UPLOAD) -> int:
        """Delete uploads never adopted (a crash between a part's end and its commit), with their chunks."""
        with self._pool.connection() as conn:
            cur = conn.execute("DELETE FROM blobs WHERE sha256 LIKE %s AND created_at < now() - %s",
                               (UPLOAD_PREFIX + "%", older_than))
            return cur.rowcount

    def _sweep_now_and_then(self) -> None:
        with self._sweep_lock:
            now = time.monotonic()
            if self._swept_at is not None and now - self._swept_at < SWEEP_EVERY_S:
                return
            self._swept_at = now
        self.sweep_uploads()

    def _drop_upload(self, upload: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM blobs WHERE sha256 = %s", (upload,))

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


class _StreamingWriter(BlobWriter):
    """A writer whose thread also streams the chunks into PostgreSQL under an upload key (module docstring)."""

    durable = False  # the staging file is only read by the checks before commit; the durable copy is the rows
    threaded = True

    def __init__(self, store: PostgresBlobStore, staging: Path, limit: int | None) -> None:
        super().__init__(staging, limit)
        self._store = store
        self._stack: ExitStack | None = None
        self._copy: psycopg.Copy | None = None
        #: the upload key once its stream committed (``None`` again once adopted or dropped)
        self.upload: str | None = None
        self._key: str | None = None
        self.chunks = 0

    def _consume(self, chunk: bytes) -> None:
        if self._thread is None:  # smaller than a chunk (close() consumes it): commit writes it from the file
            super()._consume(chunk)
            return
        if self._copy is None:
            self._open_stream()
        assert self._copy is not None
        super()._consume(chunk)
        self._copy.write_row((self._key, self.chunks, chunk))
        self.chunks += 1

    def _open_stream(self) -> None:
        self._store._sweep_now_and_then()
        self._key = f"{UPLOAD_PREFIX}{uuid.uuid4().hex}"
        with ExitStack() as stack:
            conn = stack.enter_context(self._store._streams.connection())
            stack.enter_context(conn.transaction())
            conn.execute("INSERT INTO blobs (sha256, size, created_at) VALUES (%s, 0, now())", (self._key,))
            cur = stack.enter_context(conn.cursor())
            copy = stack.enter_context(cur.copy("COPY blob_chunks (sha256, ordinal, data) FROM STDIN (FORMAT BINARY)"))
            copy.set_types(["text", "int4", "bytea"])
            self._copy = copy
            self._stack = stack.pop_all()

    def _end(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._copy = self._stack, None, None
            stack.close()  # the end of COPY, then COMMIT: the chunks are durable under the upload key
            self.upload = self._key

    def _abandon(self) -> None:
        if self._stack is not None:  # a stream still open: an error unwinds it, so the transaction rolls back
            stack, self._stack, self._copy = self._stack, None, None
            abandoned = RuntimeError("upload abandoned")
            # whatever unwinding raises, the transaction is not committed (a broken connection leaves the pool)
            with contextlib.suppress(Exception):
                stack.__exit__(RuntimeError, abandoned, None)
        if self.upload is not None:
            upload, self.upload = self.upload, None
            self._store._drop_upload(upload)
