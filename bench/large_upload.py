"""Benchmark: one large attachment by multipart, against `sha256sum` of the same file.

Starts `gateway serve` (one process, temp data dir) on 127.0.0.1 for each blob store asked: ``filesystem`` (the
embedded SQLite and blobs on disk) and ``postgresql`` (a throwaway PostgreSQL, :mod:`harness`, holding the blobs:
``GATEWAY_BLOB_STORE=postgresql``, issue 17). It registers a sender
and a recipient through the CLI, writes a file of the requested size (a PDF head and random bytes),
builds and signs an edXML envelope declaring its SHA-256 and size (the profile's large attachment), and
streams the multipart upload from a separate process (this one). It samples the gateway's RSS every 20 ms
and prints a table; JSON goes to bench/results/large_upload.json.

    .venv/bin/python bench/large_upload.py --size-mb 1024 [--size-mb 2048] [--store filesystem --store postgresql]

The PostgreSQL server's own memory is not in the RSS column (the gateway process's only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402

from certs import make_keypair  # noqa: E402
from gateway.envelope import DocumentSpec, LargeFile, Organ, build_document, sign  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    head = b"%PDF-1.4\n% benchmark payload\n"
    with path.open("wb") as fh:
        fh.write(head)
        digest.update(head)
        remaining = size - len(head)
        block = os.urandom(1 << 20)
        while remaining > 0:
            chunk = block[: min(len(block), remaining)]
            fh.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, check=True, capture_output=True,
                         text=True, timeout=120)
    return out.stdout


def run_one(size_mb: int, work: Path, store: str, database_url: str | None) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(work / "var"), "GATEWAY_PORT": str(port),
           "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_RUN_WORKERS": "false", "GATEWAY_WORKERS": "1",
           "GATEWAY_MAX_PART_BYTES": str(8 << 30), "GATEWAY_BLOB_STORE": store}
    env.pop("GATEWAY_DATABASE_URL", None)
    if database_url is not None:
        env["GATEWAY_DATABASE_URL"] = database_url
    keys = make_keypair("Văn phòng Chính phủ")
    (work / "g22.pem").write_text(keys.cert_pem)
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--migrate"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        cli(env, "agency", "add", "000.00.00.G22", "--name", "Văn phòng Chính phủ", "--pull",
            "--cert", str(work / "g22.pem"))
        cli(env, "agency", "add", "000.00.00.H41", "--name", "UBND tỉnh Nghệ An", "--pull")
        token = cli(env, "token", "create", "--agency", "000.00.00.G22").strip().splitlines()[-1]

        path = work / "payload.pdf"
        size = size_mb * 1024 * 1024
        digest = write_file(path, size)
        xml = build_document(DocumentSpec(
            sender=Organ("000.00.00.G22", "Văn phòng Chính phủ"), recipients=(Organ("000.00.00.H41", "UBND"),),
            attachments=(LargeFile("phu-luc.pdf", digest, size, "application/pdf", content_id="cid:phu-luc"),),
        ))
        signed = sign(xml, keys.key, keys.cert, algorithm="ecdsa-sha256")  # type: ignore[arg-type]

        t0 = time.perf_counter()
        subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
        sha256sum_s = time.perf_counter() - t0

        baseline = rss_bytes(proc.pid)
        peak = baseline
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss_bytes(proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        with path.open("rb") as fh:
            t0 = time.perf_counter()
            r = httpx.post(f"{base}/v1/envelopes", headers={"Authorization": f"Bearer {token}"},
                           files={"envelope": ("envelope.edxml", signed, "application/xml"),
                                  "phu-luc": ("phu-luc.pdf", fh, "application/pdf")}, timeout=600)
            upload_s = time.perf_counter() - t0
        stop.set()
        sampler.join()
        if r.status_code != 201:
            raise SystemExit(f"upload refused: {r.status_code} {r.text[:300]}")
        return {
            "store": store,
            "size_mb": size_mb,
            "upload_s": upload_s,
            "sha256sum_s": sha256sum_s,
            "speed_ratio": sha256sum_s / upload_s,
            "upload_mb_s": size_mb / upload_s,
            "rss_baseline_mb": baseline / 2**20,
            "rss_growth_mb": (peak - baseline) / 2**20,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, action="append", help="file size in MiB (repeatable)")
    parser.add_argument("--store", action="append", choices=["filesystem", "postgresql"],
                        help="blob store (repeatable; default both)")
    args = parser.parse_args()
    rows = []
    for store in args.store or ["filesystem", "postgresql"]:
        pg = harness.Postgres().start() if store == "postgresql" else None
        try:
            for size_mb in args.size_mb or [1024]:
                with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
                    rows.append(run_one(size_mb, Path(tmp), store, pg.url if pg is not None else None))
        finally:
            if pg is not None:
                pg.stop()
    print(f"{'store':>11} {'size':>8} {'upload s':>9} {'MB/s':>7} {'sha256sum s':>12} {'ratio':>6} "
          f"{'RSS growth MB':>14}")
    for row in rows:
        print(f"{row['store']:>11} {row['size_mb']:>6}MB {row['upload_s']:>9.2f} {row['upload_mb_s']:>7.0f} "
              f"{row['sha256sum_s']:>12.2f} {row['speed_ratio']:>6.2f} {row['rss_growth_mb']:>14.1f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "large_upload.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
