"""A worker process of ``gateway serve --workers N`` ends with the process that started it.

Uvicorn's supervisor stops its workers on SIGTERM/SIGINT, but a supervisor killed outright (SIGKILL, the OOM
killer) would leave them serving the port with nobody to stop them. So the supervisor names itself in
``GATEWAY_SUPERVISOR_PID`` and each worker asks Linux to send it SIGTERM when its parent dies (``prctl
PR_SET_PDEATHSIG``); a worker whose parent is already gone by then stops at once. Elsewhere than Linux: nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

ENV = "GATEWAY_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def name_supervisor() -> None:
    """In the supervisor, before it starts its workers."""
    os.environ[ENV] = str(os.getpid())


def follow_supervisor() -> bool:
    """In a worker: SIGTERM when the supervisor dies. True when armed."""
    raw = os.environ.get(ENV)
    if not raw or not raw.isdigit() or not sys.platform.startswith("linux") or int(raw) == os.getpid():
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if os.getppid() != int(raw):  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return True
