"""`gateway serve` on the embedded default: migrates, generates its key, and is ready."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pg import free_port


def test_serve_on_embedded_default_is_ready_within_60_seconds(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path / "var"), "GATEWAY_PORT": str(port)}
    env.pop("GATEWAY_DATABASE_URL", None)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert status == 200, (tmp_path / "serve.log").read_text(errors="replace")
        assert (tmp_path / "var" / "gateway.sqlite3").exists()
        assert (tmp_path / "var" / "keys" / "gateway.key.pem").stat().st_mode & 0o077 == 0
        cert = httpx.get(f"http://127.0.0.1:{port}/v1/gateway/certificate", timeout=5)
        assert cert.text.startswith("-----BEGIN CERTIFICATE-----")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
