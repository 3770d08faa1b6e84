"""Schemathesis against the committed OpenAPI document and a real `gateway serve` on 127.0.0.1:
no 5xx, and every answer's status, content type and body match the spec. Bounded examples."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pg import free_port

REPO = Path(__file__).resolve().parents[1]


def test_api_matches_its_spec_and_never_fails_with_5xx(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path / "var"), "GATEWAY_PORT": str(port),
           "GATEWAY_RUN_WORKERS": "false", "GATEWAY_LOG_LEVEL": "warning"}
    env.pop("GATEWAY_DATABASE_URL", None)
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        admin = subprocess.run([sys.executable, "-m", "gateway", "operator", "create", "fuzz", "--role", "admin"],
                               env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        st = Path(sys.executable).parent / "st"
        run = subprocess.run(
            [str(st), "run", str(REPO / "openapi" / "openapi.json"), "--url", f"http://127.0.0.1:{port}",
             "-H", f"Authorization: Bearer {admin}", "--max-examples", "12", "--seed", "20261121",
             # a valid GET /v1/events is a stream that never ends: tests/test_event_feed*.py test it
             "--exclude-path", "/v1/events",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                         "response_schema_conformance"],
            env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=600, check=False,
        )
        assert run.returncode == 0, run.stdout[-6000:]
        assert "passed" in run.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
