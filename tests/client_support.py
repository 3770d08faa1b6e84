"""Real gateways on 127.0.0.1 for the client tests: the app under uvicorn in a thread (fast, for the library
tests), or ``gateway serve`` as a subprocess (for the CLI round trip), plus an operator token made on the
same database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from gateway.app import create_app
from gateway.auth.service import AuthService
from gateway.config import Settings
from gateway.db import create_database
from pg import free_port


def operator_token(db_url: str, role: str = "admin") -> str:
    async def create() -> str:
        db = create_database(db_url)
        try:
            async with db.transaction() as session:
                _, _, token = await AuthService(session).create_operator(f"test-{role}", role, actor="console:test")
                return token
        finally:
            await db.dispose()

    return asyncio.run(create())


def _wait_ready(base: str, alive: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited before it was ready")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready within 60 s")


@contextmanager
def app_server(settings: Settings) -> Iterator[str]:
    """``create_app(settings)`` served by uvicorn in a thread; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None,
                            log_level="warning", access_log=False, lifespan="on", loop="asyncio", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway under test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, thread.is_alive, "the app server")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def serve_process(db_url: str, data_dir: Path, key_files: tuple[Path, Path]) -> Iterator[tuple[str, dict[str, str]]]:
    """``gateway serve`` as a subprocess on a free loopback port; yields the base URL and its environment."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({
        "GATEWAY_DATABASE_URL": db_url, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(port),
        "GATEWAY_HOST": "127.0.0.1", "GATEWAY_SIGNING_KEY_FILE": str(key_files[0]),
        "GATEWAY_SIGNING_CERT_FILE": str(key_files[1]), "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_WORKER_POLL_SECONDS": "0.1",
        "GATEWAY_WORKERS": "1",  # one process, as on SQLite (`--workers` defaults to one per core on PostgreSQL)
    })
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_ready(base, lambda: proc.poll() is None, "gateway serve")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{log_path.read_text(errors='replace')[-3000:]}") from None
        yield base, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
