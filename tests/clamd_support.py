"""A real clamd for the tests, with a tiny signature database made here (no download needed).

The database holds one MD5 signature: that of the EICAR test file, the industry's harmless test string.
Production gets real databases with freshclam (see README "Security").
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def clamd_binary() -> str | None:
    return shutil.which("clamd") or (("/usr/sbin/clamd") if Path("/usr/sbin/clamd").exists() else None)


@contextmanager
def running_clamd(root: Path) -> Iterator[Path]:
    binary = clamd_binary()
    if binary is None:
        raise RuntimeError("clamd is not installed (Debian package clamav-daemon; .ci/run installs it)")
    db = root / "db"
    db.mkdir(parents=True)
    (db / "test.hdb").write_text(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Eicar-Test-Signature\n")  # noqa: S324
    socket = root / "clamd.sock"
    conf = root / "clamd.conf"
    conf.write_text(
        f"LocalSocket {socket}\nDatabaseDirectory {db}\nForeground yes\nLogFile {root / 'clamd.log'}\n"
        "StreamMaxLength 100M\n"
    )
    log = (root / "clamd.out").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("clamd did not start: " + (root / "clamd.out").read_text(errors="replace"))
            time.sleep(0.05)
        yield socket
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
