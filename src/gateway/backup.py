"""Backup and restore of everything the gateway keeps (seeds/001 Điều 13.4.a).

A backup is a directory:

* ``database.sqlite3`` (SQLite: a consistent online copy through SQLite's backup API) or
  ``database.pgdump`` (PostgreSQL: ``pg_dump --format=custom``);
* ``blobs/``: the original envelopes and attachments, by SHA-256 (with ``GATEWAY_BLOB_STORE=postgresql`` the blobs
  are rows of the database and travel inside ``database.pgdump``; ``blobs/`` is then empty);
* ``keys/``: the gateway's generated signing key and certificate, when they live in the data directory
  (keep the backup as secret as the key);
* ``manifest.json``: when, from what, the ledger head at the time, and the SHA-256 of every file.

Order matters: the database is copied first, then the blobs. Blobs are written (and fsynced) before the
transaction that references them commits, and they are never changed, so every blob the database copy
refers to is already on disk when the blob copy starts.

Restore refuses to overwrite an existing database or blob; it checks every file against the manifest
first. Afterwards, ``gateway ledger verify`` proves the restored ledger intact.
"""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gateway.config import Settings


class BackupError(Exception):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _pg_tool(name: str) -> str:
    """The newest server version's tool (it reads dumps of older servers), else the one on PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise BackupError(f"{name} not found (Debian package postgresql-client)")
    return on_path


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent online copy (SQLite's backup API), left as one self-contained file."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()


def _ledger_head_sqlite(path: Path) -> dict[str, Any] | None:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT seq, hash FROM ledger_entries ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    return {"seq": row[0], "hash": row[1]} if row else None


def backup(settings: Settings, dest: Path) -> dict[str, Any]:
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    url = make_url(settings.effective_database_url)
    manifest: dict[str, Any] = {"created_at": datetime.now(UTC).isoformat(), "format": 1, "files": {}}
    if url.get_backend_name() == "sqlite":
        target = dest / "database.sqlite3"
        _sqlite_copy(Path(url.database or ""), target)
        manifest["database"] = "sqlite"
        manifest["ledger_head"] = _ledger_head_sqlite(target)
    else:
        target = dest / "database.pgdump"
        subprocess.run(  # noqa: S603 -- a fixed argv, no shell
            [_pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={target}",
             _libpq_url(settings.effective_database_url)], check=True, capture_output=True)
        manifest["database"] = "postgresql"
    for folder in ("blobs", "keys"):
        source_dir = settings.data_dir / folder
        if source_dir.is_dir():
            shutil.copytree(source_dir, dest / folder, ignore=shutil.ignore_patterns("tmp"))
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        manifest["files"][str(path.relative_to(dest))] = _sha256(path)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    for name, digest in manifest["files"].items():
        if _sha256(source / name) != digest:
            raise BackupError(f"{name} does not match the manifest: the backup is damaged")
    url = make_url(settings.effective_database_url)
    if manifest["database"] == "sqlite":
        if url.get_backend_name() != "sqlite":
            raise BackupError("a SQLite backup restores onto a SQLite database URL")
        target = Path(url.database or "")
        if target.exists():
            raise BackupError(f"{target} exists; restore onto an empty data directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(source / "database.sqlite3", target)
    else:
        if url.get_backend_name() != "postgresql":
            raise BackupError("a PostgreSQL backup restores onto a PostgreSQL database URL")
        subprocess.run(  # noqa: S603 -- a fixed argv, no shell
            [_pg_tool("pg_restore"), "--no-owner", "--exit-on-error",
             f"--dbname={_libpq_url(settings.effective_database_url)}", str(source / "database.pgdump")],
            check=True, capture_output=True)
    for folder in ("blobs", "keys"):
        if (source / folder).is_dir():
            target_dir = settings.data_dir / folder
            if target_dir.exists() and any(p.is_file() for p in target_dir.rglob("*")):
                raise BackupError(f"{target_dir} is not empty; restore onto an empty data directory")
            shutil.copytree(source / folder, target_dir, dirs_exist_ok=True)
    return manifest
