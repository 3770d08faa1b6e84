"""The blob store contract, run against both stores: the filesystem (any machine) and PostgreSQL (chunk rows).

Each store is real: a temporary directory, or a fresh migrated PostgreSQL database (``pg_url``). The contract:
content addressing, staged writes with a size limit, idempotent and concurrent commits of the same bytes, a large
blob streamed both ways in bounded memory, and reads that refuse bytes that do not hash to the blob's name.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from gateway.blobs import BlobCorrupt, BlobStore, FilesystemBlobStore, blob_store
from gateway.blobs.postgres import PostgresBlobStore, libpq_url
from gateway.blobs.store import CHUNK
from gateway.config import Settings

MiB = 1024 * 1024


@pytest.fixture(params=["filesystem", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    chosen: BlobStore
    if request.param == "filesystem":
        chosen = FilesystemBlobStore(tmp_path / "blobs")
    else:
        chosen = PostgresBlobStore(tmp_path / "blobs", request.getfixturevalue("pg_url"))
    try:
        yield chosen
    finally:
        chosen.close()


def _sql(store: BlobStore, statement: str, *params: object) -> list[tuple[object, ...]]:
    """A statement on the PostgreSQL store's database (outside the store: to look at or damage its rows)."""
    assert isinstance(store, PostgresBlobStore)
    with psycopg.connect(store._pool.conninfo, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def _damage(store: BlobStore, digest: str, how: str) -> None:
    """Flip one byte of the stored blob (``flip``), or cut its end off (``truncate``)."""
    if isinstance(store, FilesystemBlobStore):
        path = store.path(digest)
        data = bytearray(path.read_bytes())
        if how == "flip":
            data[len(data) // 2] ^= 0x01
        else:
            del data[-1:]
        path.write_bytes(bytes(data))
    elif how == "flip":
        _sql(store, "UPDATE blob_chunks SET data = set_byte(data, 7, get_byte(data, 7) # 1) "
                    "WHERE sha256 = %s AND ordinal = 1", digest)
    else:
        _sql(store, "DELETE FROM blob_chunks WHERE sha256 = %s AND ordinal = "
                    "(SELECT max(ordinal) FROM blob_chunks WHERE sha256 = %s)", digest, digest)


def test_put_read_exists_and_vietnamese_text(store: BlobStore) -> None:
    data = "Công văn số 12/UBND — Ủy ban nhân dân tỉnh".encode() * 3
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.exists(digest)
    assert store.read(digest) == data
    assert store.put(data) == digest  # the same bytes again: the same blob
    assert store.read(store.put(b"")) == b""  # the empty blob
    assert not store.exists(hashlib.sha256(b"never stored").hexdigest())
    with pytest.raises(FileNotFoundError):
        store.read(hashlib.sha256(b"never stored").hexdigest())
    with pytest.raises(ValueError, match="SHA-256"):
        store.read("../../etc/passwd")


def test_writer_commit_with_a_limit_leaves_no_staging_file(store: BlobStore) -> None:
    data = os.urandom(3 * CHUNK + 123)  # several chunks and a short last one
    writer = store.writer(limit=len(data))
    for i in range(0, len(data), 65536):
        writer.write(data[i:i + 65536])
    assert writer.head == data[:8192]
    digest = store.commit(writer)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.read(digest) == data
    with store.open(digest) as fh:  # small reads across chunk boundaries
        pieces = iter(lambda: fh.read(333_333), b"")
        assert b"".join(pieces) == data

    refused = store.writer(limit=10)
    with pytest.raises(OverflowError):
        refused.write(b"x" * 11)
    refused.discard()
    assert not any(store.tmp.iterdir()), "staging files must not linger"


def test_double_commit_is_idempotent(store: BlobStore) -> None:
    data = os.urandom(CHUNK + 1)
    digests = []
    for _ in range(2):
        writer = store.writer()
        writer.write(data)
        digests.append(store.commit(writer))
    assert digests[0] == digests[1]
    assert store.read(digests[0]) == data
    assert not any(store.tmp.iterdir())
    if isinstance(store, PostgresBlobStore):
        assert _sql(store, "SELECT count(*) FROM blobs") == [(1,)]
        assert _sql(store, "SELECT count(*), sum(length(data)) FROM blob_chunks") == [(2, CHUNK + 1)]


def test_concurrent_commits_of_the_same_blob_both_succeed(store: BlobStore) -> None:
    data = os.urandom(5 * CHUNK)
    writers = []
    for _ in range(2):
        writer = store.writer()
        writer.write(data)
        writers.append(writer)
    start = threading.Barrier(2, timeout=20)
    results: list[str] = []
    errors: list[BaseException] = []

    def commit(index: int) -> None:
        start.wait()
        try:
            results.append(store.commit(writers[index]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == [hashlib.sha256(data).hexdigest()] * 2
    assert store.read(results[0]) == data
    if isinstance(store, PostgresBlobStore):
        assert _sql(store, "SELECT count(*) FROM blob_chunks") == [(5,)]


def test_a_64_mib_blob_streams_both_ways_in_bounded_memory(store: BlobStore) -> None:
    size = 64 * MiB
    seed = os.urandom(MiB)
    expected = hashlib.sha256()
    tracemalloc.start()
    try:
        writer = store.writer(limit=size)
        for i in range(size // MiB):
            block = seed[i:] + seed[:i]  # distinct blocks, one at a time
            expected.update(block)
            writer.write(block)
            del block
        digest = store.commit(writer)
        assert digest == expected.hexdigest()
        _, written_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got = hashlib.sha256()
        read = 0
        with store.open(digest) as fh:
            while chunk := fh.read(MiB):
                got.update(chunk)
                read += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (read, got.hexdigest()) == (size, digest)
    # a few chunks at most, never the blob (64 MiB)
    assert written_peak < 8 * MiB, written_peak
    assert read_peak < 8 * MiB, read_peak


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_a_damaged_blob_is_refused_on_read(store: BlobStore, how: str) -> None:
    data = os.urandom(3 * CHUNK)
    digest = store.put(data)
    _damage(store, digest, how)
    with pytest.raises(BlobCorrupt):
        store.read(digest)
    streamed = bytearray()
    with pytest.raises(BlobCorrupt), store.open(digest) as fh:  # noqa: PT012 -- the error comes mid-stream
        while chunk := fh.read(MiB):
            streamed += chunk
    assert len(streamed) < len(data) or bytes(streamed) != data


def test_settings_choose_the_store_and_refuse_postgresql_blobs_on_sqlite(tmp_path: Path, pg_url: str) -> None:
    assert isinstance(blob_store(Settings(data_dir=tmp_path)), FilesystemBlobStore)
    with pytest.raises(ValidationError, match=r"GATEWAY_BLOB_STORE=postgresql .* PostgreSQL GATEWAY_DATABASE_URL"):
        Settings(data_dir=tmp_path, blob_store="postgresql")
    chosen = blob_store(Settings(data_dir=tmp_path, database_url=pg_url, blob_store="postgresql"))
    try:
        assert isinstance(chosen, PostgresBlobStore)
        assert chosen.read(chosen.put(b"<edXML/>")) == b"<edXML/>"
    finally:
        chosen.close()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_postgresql_blobs_on_sqlite_in_one_line(tmp_path: Path, command: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATA_DIR=str(tmp_path / "var"), GATEWAY_BLOB_STORE="postgresql")
    out = subprocess.run([sys.executable, "-m", "gateway", command], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 1
    assert out.stderr == ("error: GATEWAY_BLOB_STORE=postgresql keeps blobs in the PostgreSQL database: it needs a "
                          "PostgreSQL GATEWAY_DATABASE_URL (on SQLite, use the filesystem store)\n")
    assert not (tmp_path / "var").exists()  # refused before anything was made


def test_libpq_url_from_the_sqlalchemy_url() -> None:
    convert: Callable[[str], str] = libpq_url
    assert convert("postgresql+asyncpg://gw:p%40ss@db:5432/gateway") == "postgresql://gw:p%40ss@db:5432/gateway"
    assert convert("postgresql+asyncpg://gw@db/gateway?ssl=require") == "postgresql://gw@db/gateway?sslmode=require"


def _uploads(store: BlobStore) -> list[tuple[object, ...]]:
    """The PostgreSQL store's uploads not (yet) adopted under a digest: (key, chunk rows)."""
    return _sql(store, "SELECT b.sha256, (SELECT count(*) FROM blob_chunks c WHERE c.sha256 = b.sha256) "
                       "FROM blobs b WHERE b.sha256 LIKE 'upload-%%'")


def test_a_streamed_upload_is_visible_under_its_digest_only_once_committed(store: BlobStore) -> None:
    data = os.urandom(3 * CHUNK + 5)
    digest = hashlib.sha256(data).hexdigest()
    writer = store.writer()
    for i in range(0, len(data), 65536):
        writer.write(data[i:i + 65536])
    writer.close()  # the part has ended: its bytes are staged (in PostgreSQL: committed under an upload key)
    assert writer.sha256 == digest
    assert not store.exists(digest)
    if isinstance(store, PostgresBlobStore):
        assert [count for _, count in _uploads(store)] == [4]
    assert store.commit(writer) == digest
    assert store.exists(digest)
    assert store.read(digest) == data
    writer.discard()  # as the endpoint does after every request: a committed blob stays
    assert store.read(digest) == data
    if isinstance(store, PostgresBlobStore):
        assert _uploads(store) == []
        assert _sql(store, "SELECT ordinal, length(data) FROM blob_chunks WHERE sha256 = %s ORDER BY ordinal",
                    digest) == [(0, CHUNK), (1, CHUNK), (2, CHUNK), (3, 5)]


@pytest.mark.parametrize("when", ["while streaming", "after the part ended"])
def test_a_refused_upload_leaves_nothing_stored(store: BlobStore, when: str) -> None:
    writer = store.writer()
    data = os.urandom(CHUNK)
    for _ in range(6):
        writer.write(data)
    if when == "after the part ended":
        writer.close()
    writer.discard()
    assert not any(store.tmp.iterdir())
    assert not store.exists(hashlib.sha256(data * 6).hexdigest())
    if isinstance(store, PostgresBlobStore):
        assert _sql(store, "SELECT count(*) FROM blobs") == [(0,)]
        assert _sql(store, "SELECT count(*) FROM blob_chunks") == [(0,)]


_CRASH = """
import os, sys, time
from pathlib import Path
from gateway.blobs.postgres import PostgresBlobStore
store = PostgresBlobStore(Path(sys.argv[1]), sys.argv[2])
writer = store.writer()
for _ in range(3):
    writer.write(os.urandom(1 << 20))
if sys.argv[3] == "after the part ended":
    writer.close()
else:
    while writer.chunks < 2:  # the stream is open and has sent chunks
        time.sleep(0.01)
os._exit(0)  # the process dies: no discard, no commit
"""


@pytest.mark.parametrize("when", ["while streaming", "after the part ended"])
def test_a_crash_leaves_no_blob_and_its_orphan_upload_is_swept(tmp_path: Path, pg_url: str, when: str) -> None:
    store = PostgresBlobStore(tmp_path / "blobs", pg_url)
    try:
        kept = store.put(os.urandom(2 * CHUNK))
        subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path / "crashed"), pg_url, when], check=True,
                       timeout=60)
        assert _sql(store, "SELECT sha256 FROM blobs WHERE sha256 NOT LIKE 'upload-%%'") == [(kept,)]
        if when == "while streaming":  # the stream's transaction never committed
            assert _uploads(store) == []
        else:  # committed under its upload key, never adopted: an orphan, kept while it may still be in use
            assert [count for _, count in _uploads(store)] == [3]
            assert store.sweep_uploads() == 0
            assert [count for _, count in _uploads(store)] == [3]
            _sql(store, "UPDATE blobs SET created_at = now() - interval '25 hours' WHERE sha256 LIKE 'upload-%%'")
        assert store.sweep_uploads() == (1 if when == "after the part ended" else 0)
        assert _uploads(store) == []
        assert _sql(store, "SELECT count(*) FROM blob_chunks WHERE sha256 <> %s", kept) == [(0,)]
        assert store.read(kept)  # a blob is never swept
    finally:
        store.close()


def test_the_first_stream_after_a_start_sweeps_stale_uploads(tmp_path: Path, pg_url: str) -> None:
    subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path / "crashed"), pg_url, "after the part ended"],
                   check=True, timeout=60)
    store = PostgresBlobStore(tmp_path / "blobs", pg_url)
    try:
        _sql(store, "UPDATE blobs SET created_at = now() - interval '25 hours' WHERE sha256 LIKE 'upload-%%'")
        writer = store.writer()
        writer.write(os.urandom(2 * CHUNK))
        digest = store.commit(writer)
        assert _uploads(store) == []
        assert _sql(store, "SELECT sha256, count(*) FROM blob_chunks GROUP BY sha256") == [(digest, 2)]
    finally:
        store.close()
