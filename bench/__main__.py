"""`make bench`: run every benchmark in this folder that is ready, each printing its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES = [
    ("large attachment by multipart (1 GiB, 2 GiB)", ["large_upload.py", "--size-mb", "1024", "--size-mb", "2048"]),
    ("ledger: verify rate and query p95 over 1,000,000 entries", ["ledger_bench.py"]),
]


def main() -> int:
    failures = 0
    for title, (script, *args) in BENCHES:
        if not (HERE / script).exists():
            continue
        print(f"\n== {title} ==", flush=True)
        failures += subprocess.run([sys.executable, str(HERE / script), *args], check=False).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
