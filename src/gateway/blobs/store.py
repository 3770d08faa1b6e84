"""Content-addressed storage of blobs by SHA-256: the interface, and the filesystem store (the embedded default).

Bytes are staged in a local ``tmp/`` file while they stream in and are hashed (``writer()``), and kept only when
the caller accepts them (``commit()``); a refused upload leaves nothing behind. Content addressing makes writes
idempotent (the same bytes twice are one blob) and lets anyone check a blob against its name: every read is
checked, and a blob whose bytes do not hash to its name (or whose size is wrong) raises ``BlobCorrupt`` instead of
serving them. Two stores implement the interface: ``FilesystemBlobStore`` (a directory ``ab/cd/abcd…``, written
atomically and fsynced) and ``gateway.blobs.postgres.PostgresBlobStore`` (chunks in the shared PostgreSQL
database, so that gateway nodes need no shared disk). Both are synchronous: async callers use
``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

HEAD_BYTES = 8192
#: the unit a writer's thread takes (and the PostgreSQL store's chunk rows): 1 MiB
CHUNK = 1024 * 1024
#: chunks a writer may hold queued for its thread: a few MiB per upload in memory
QUEUE_CHUNKS = 4
HEX = frozenset("0123456789abcdef")


class BlobCorrupt(OSError):
    """A stored blob's bytes do not hash to its name, or its size is not the recorded one: never served."""


class BlobWriter:
    """Streams bytes to a staging file while hashing them; keeps the first bytes for content sniffing.

    The filesystem store's writer hashes and writes each piece as it comes (in the caller's thread). A ``threaded``
    writer (the PostgreSQL store's) cuts the stream into ``CHUNK`` pieces instead and, from the first full chunk
    on, a thread of its own hashes, writes and sends them on (``_consume``), fed through a queue of at most
    ``QUEUE_CHUNKS`` chunks: memory stays constant, and the upload and its storage overlap. ``write`` blocks only
    when the queue is full; a caller that must not block (the multipart reader, on the event loop) asks
    ``congested`` and waits with ``wait_room`` in a thread. ``close`` waits for the queue to drain and
    (``durable``) fsyncs the file: ``sha256`` and ``size`` are final then.

    Why not a thread for the filesystem store too: measured (bench/large_upload.py, 1 GiB, 2 runs x 2), the
    thread and its 1 MiB chunks doubled the gateway's kernel CPU time (page faults: 1.8-3.6 s against 0.7-0.9 s a
    GiB) and made the upload slower (2.8-4.3 s against 2.6-3.4 s), starting the write-back early or not.
    """

    #: fsync the staging file on ``close`` (the filesystem store keeps the file itself; other stores do not)
    durable = True
    #: hash and write in a thread of the writer's own, in ``CHUNK`` pieces (see above)
    threaded = False

    def __init__(self, staging: Path, limit: int | None = None) -> None:
        self.path = staging
        self._fh: BinaryIO = staging.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.limit = limit
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._room = threading.Condition()
        self._pending = 0  # chunks queued and not yet consumed (guarded by _room)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._abandoned = False
        self._closed = False
        self._written = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise OverflowError("blob exceeds its size limit")
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        if not self.threaded:
            self._consume(data)
            return
        self._pieces.append(data if type(data) is bytes else bytes(data))  # held until its chunk is cut
        self._buffered += len(data)
        if self._buffered >= CHUNK:
            joined = b"".join(self._pieces)
            whole = len(joined) - len(joined) % CHUNK
            for start in range(0, whole, CHUNK):
                self._put(joined[start:start + CHUNK])
            rest = joined[whole:]
            self._pieces = [rest] if rest else []
            self._buffered = len(rest)

    @property
    def congested(self) -> bool:
        """Whether the next full chunk would make ``write`` wait for the writer's thread."""
        return self._pending >= QUEUE_CHUNKS - 1

    def wait_room(self) -> None:
        """Block until the queue has room again (or the thread failed: the next ``write`` raises)."""
        with self._room:
            self._room.wait_for(lambda: self._pending < QUEUE_CHUNKS - 1 or self._error is not None)

    def _put(self, chunk: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="blob-writer", daemon=True)
            self._thread.start()
        with self._room:
            self._room.wait_for(lambda: self._pending < QUEUE_CHUNKS or self._error is not None)
            if self._error is not None:
                raise self._error
            self._pending += 1
        self._queue.put(chunk)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            try:
                if self._error is None and not self._abandoned:
                    self._consume(chunk)
            except BaseException as exc:  # handed to the caller's next write or close
                self._error = exc
            with self._room:
                self._pending -= 1
                self._room.notify_all()
        try:
            if self._error is None and not self._abandoned:
                self._end()
        except BaseException as exc:  # handed to close
            self._error = exc

    def _consume(self, chunk: bytes) -> None:
        """The next bytes, in order (the writer's thread; the caller's, unthreaded or smaller than a chunk)."""
        self._hash.update(chunk)
        self._fh.write(chunk)
        self._written += len(chunk)

    def _end(self) -> None:
        """The last chunk was consumed (the writer's thread): a store's hook."""

    def close(self) -> None:
        """No more bytes: wait for the thread to drain its queue, then (``durable``) flush and fsync."""
        if self._closed:
            return
        self._closed = True
        rest = b"".join(self._pieces)
        self._pieces, self._buffered = [], 0
        if self._thread is not None:
            if rest:
                self._put(rest)
            self._queue.put(None)
            self._thread.join()
            if self._error is not None:
                raise self._error
        elif rest:
            self._consume(rest)
        if not self._fh.closed:
            self._fh.flush()
            if self.durable:
                os.fsync(self._fh.fileno())
            self._fh.close()

    @property
    def sha256(self) -> str:
        if not self._closed:
            raise RuntimeError("the digest of a blob still being written")
        return self._hash.hexdigest()

    def discard(self) -> None:
        self._abandoned = True
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if not self._fh.closed:
            self._fh.close()
        self.path.unlink(missing_ok=True)
        self._abandon()

    def _abandon(self) -> None:
        """The upload was refused or abandoned (after the thread stopped): a store's hook."""


class BlobReader(io.RawIOBase):
    """A read-only stream over a blob that checks, as it goes, that the bytes hash to the blob's name.

    ``source(n)`` returns up to ``n`` bytes (``b""`` at the end). The check runs when the recorded size has been
    read (or the source ends early, or runs past it): a mismatch raises ``BlobCorrupt``, so a caller that reads
    to the end never accepts corrupt bytes. Memory is what the caller asks for per ``read``.
    """

    def __init__(self, sha256: str, source: Callable[[int], bytes], size: Callable[[], int],
                 on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.sha256 = sha256
        self._source = source
        self._size = size
        self._expected: int | None = None
        self._on_close = on_close
        self._hash = hashlib.sha256()
        self._read = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        view = memoryview(buffer).cast("B")
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed blob")
        if self._expected is None:
            self._expected = self._size()  # the first read does the first I/O (open() itself does none)
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        if self._checked or size == 0:
            return b""
        data = self._source(min(size, self._expected - self._read) or 1)
        self._read += len(data)
        self._hash.update(data)
        if not data or self._read >= self._expected:
            self._check()
        return data

    def _check(self) -> None:
        self._checked = True
        if self._read != self._expected:
            raise BlobCorrupt(f"blob {self.sha256}: {self._read} bytes where {self._expected} were recorded")
        if self._hash.hexdigest() != self.sha256:
            raise BlobCorrupt(f"blob {self.sha256}: its bytes do not hash to its name")

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close()
        super().close()


def check_digest(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= HEX:
        raise ValueError("not a SHA-256 hex digest")
    return sha256


class BlobStore(ABC):
    """The interface every store implements; staging (``writer``) is always a local file under ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def writer(self, limit: int | None = None) -> BlobWriter:
        return BlobWriter(self.tmp / f"{uuid.uuid4().hex}.part", limit)

    def commit(self, writer: BlobWriter) -> str:
        """Keep a staged file under its digest (idempotent, safe against a concurrent commit); the digest."""
        writer.close()
        digest = writer.sha256
        try:
            self._keep_staged(digest, writer.path, writer.size)
        finally:
            writer.path.unlink(missing_ok=True)
        return digest

    def put(self, data: bytes) -> str:
        """Keep bytes held in memory (envelopes, receipts); the digest."""
        digest = hashlib.sha256(data).hexdigest()
        self._keep_bytes(digest, data)
        return digest

    def read(self, sha256: str) -> bytes:
        """The whole blob (small ones: envelopes), checked against its name."""
        with self.open(sha256) as fh:
            return fh.read()

    @contextmanager
    def open(self, sha256: str) -> Iterator[BlobReader]:
        """A checked stream over the blob; entering does no I/O (the first ``read`` does)."""
        reader = self._reader(check_digest(sha256))
        try:
            yield reader
        finally:
            reader.close()

    def close(self) -> None:  # noqa: B027 -- a hook: only some stores hold anything
        """Release what the store holds (connections); the store is not used afterwards."""

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def _keep_staged(self, digest: str, staged: Path, size: int) -> None: ...

    @abstractmethod
    def _keep_bytes(self, digest: str, data: bytes) -> None: ...

    @abstractmethod
    def _reader(self, digest: str) -> BlobReader: ...


class FilesystemBlobStore(BlobStore):
    """A directory of files named by their SHA-256 (``ab/cd/abcd…``), moved into place atomically and fsynced."""

    def path(self, sha256: str) -> Path:
        check_digest(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def _keep_staged(self, digest: str, staged: Path, size: int) -> None:
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        _fsync_dir(target.parent)

    def _keep_bytes(self, digest: str, data: bytes) -> None:
        if self.path(digest).exists():
            return
        staging = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            with staging.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._keep_staged(digest, staging, len(data))
        finally:
            staging.unlink(missing_ok=True)

    def _reader(self, digest: str) -> BlobReader:
        path = self.path(digest)
        handle: list[BinaryIO] = []

        def fh() -> BinaryIO:
            if not handle:
                handle.append(path.open("rb"))
            return handle[0]

        def close() -> None:
            if handle:
                handle[0].close()

        return BlobReader(digest, lambda n: fh().read(n), lambda: os.fstat(fh().fileno()).st_size, close)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
