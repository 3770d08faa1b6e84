"""A directory of files named by their SHA-256 (``ab/cd/abcd…``), written atomically and fsynced.

Files are staged in ``tmp/`` while they stream in and are hashed, and moved into place only when the
caller accepts them; a refused upload leaves nothing behind. Content addressing makes writes idempotent
(the same bytes twice are one file) and lets anyone check a blob against its name. The same interface
can sit over an S3-compatible store at scale.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

HEAD_BYTES = 8192


class BlobWriter:
    """Streams bytes to a staging file while hashing them; keeps the first bytes for content sniffing."""

    def __init__(self, staging: Path, limit: int | None = None) -> None:
        self.path = staging
        self._fh: BinaryIO = staging.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.limit = limit

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise OverflowError("blob exceeds its size limit")
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self._hash.update(data)
        self._fh.write(data)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def writer(self, limit: int | None = None) -> BlobWriter:
        return BlobWriter(self.tmp / f"{uuid.uuid4().hex}.part", limit)

    def commit(self, writer: BlobWriter) -> str:
        """Move a staged file into place under its digest; returns the digest."""
        writer.close()
        digest = writer.sha256
        target = self.path(digest)
        if target.exists():
            writer.path.unlink(missing_ok=True)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(writer.path, target)
        _fsync_dir(target.parent)
        return digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
        _fsync_dir(target.parent)
        return digest

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    @contextmanager
    def open(self, sha256: str) -> Iterator[BinaryIO]:
        with self.path(sha256).open("rb") as fh:
            yield fh


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
