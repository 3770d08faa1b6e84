"""Backup and restore (Điều 13.4.a): a backup taken while documents exist restores onto an empty data
directory / database, every blob matches its digest, and the restored ledger verifies."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gw import register, submit


def gateway(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


async def test_backup_restores_and_the_ledger_verifies(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], db_url: str, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    for n in range(3):
        assert (await submit(client, g22, g22.envelope(h41, code_number=str(n)))).status_code == 201
    settings = app.state.settings
    env = {**os.environ, "GATEWAY_DATABASE_URL": db_url, "GATEWAY_DATA_DIR": str(settings.data_dir)}
    out = tmp_path / "backup"
    gateway(env, "backup", "--output", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    blob_files = [p for p in (out / "blobs").rglob("*") if p.is_file()]
    assert len(blob_files) >= 4  # three envelopes and the shared PDF
    for path in blob_files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name

    # Restore onto a new, empty place.
    if db_url.startswith("sqlite"):
        new_url = f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'gateway.sqlite3'}"
    else:
        server = request.getfixturevalue("postgres")
        server.psql("CREATE DATABASE restored_target")
        new_url = server.url("restored_target")
    restored_env = {**os.environ, "GATEWAY_DATABASE_URL": new_url, "GATEWAY_DATA_DIR": str(tmp_path / "restored")}
    gateway(restored_env, "restore", "--input", str(out))
    verified = json.loads(gateway(restored_env, "ledger", "verify", "--json").stdout)
    assert verified["ok"] is True
    if manifest.get("ledger_head"):
        assert verified["size"] == manifest["ledger_head"]["seq"] + 1
    # A second restore onto the now non-empty place is refused, and a damaged backup is refused.
    assert gateway(restored_env, "restore", "--input", str(out), check=False).returncode == 1
    blob_files[0].write_bytes(b"damaged")
    fresh_env = {**restored_env, "GATEWAY_DATA_DIR": str(tmp_path / "other"),
                 "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'other' / 'x.sqlite3'}"}
    damaged = gateway(fresh_env, "restore", "--input", str(out), check=False)
    assert damaged.returncode == 1
    assert "does not match the manifest" in damaged.stderr
    if not db_url.startswith("sqlite"):
        request.getfixturevalue("postgres").psql("DROP DATABASE IF EXISTS restored_target WITH (FORCE)")
