"""Real parts that several test modules start or read: ``gateway serve`` on loopback, the gateway's CLI, and the
files of ``../shared`` (read where they are; missing is a skip locally and a failure in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


def shared_dir(*parts: str) -> Path:
    """``../shared/<parts>``; skips when it is missing, except under ``CI=true``, where that fails the test."""
    path = SHARED.joinpath(*parts)
    if not path.is_dir():
        reason = f"{path} is not here (../shared is read in place, never copied)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: it must be)")
        pytest.skip(reason + "; CI=true makes this a failure")
    return path


def gateway_cli(env: Mapping[str, str], *args: str) -> str:
    """``gateway <args>`` in a process of its own; its standard output (a non-zero exit fails the test)."""
    out = subprocess.run([sys.executable, "-m", "gateway", *args], env=dict(env), capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


@contextmanager
def serving(env: Mapping[str, str], port: int, cwd: Path, log_path: Path,
            args: Sequence[str] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """``gateway serve [args]`` with ``env`` (which sets ``GATEWAY_PORT=port``, or ``args`` ``--port``), ready
    within 60 s (else the test fails with its log); stopped afterwards unless the test killed it."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", *args], env=dict(env), cwd=cwd,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                pytest.fail("gateway serve was not ready within 60 s:\n" + log_path.read_text(errors="replace"))
            if proc.poll() is not None:
                pytest.fail("gateway serve exited:\n" + log_path.read_text(errors="replace"))
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
