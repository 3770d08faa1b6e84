"""Benchmark: one large attachment by multipart, against `sha256sum` of the same file.

Starts `gateway serve` (one process, temp data dir) on 127.0.0.1 for each blob store asked: ``filesystem`` (the
embedded SQLite and blobs on disk) and ``postgresql`` (a throwaway PostgreSQL with production durability,
:mod:`harness`, holding the blobs: ``GATEWAY_BLOB_STORE=postgresql``, issue 17). It registers a sender and a
recipient through the CLI, writes a file of the requested size (a PDF head and random bytes), builds and signs an
edXML envelope declaring its SHA-256 and size (the profile's large attachment), and sends the multipart upload
from a separate process (this one). It samples the gateway's RSS every 20 ms and prints a table; JSON goes to
bench/results/large_upload.json.

    .venv/bin/python bench/large_upload.py --size-mb 1024 [--size-mb 2048] [--store filesystem --store postgresql]
        [--runs 3]

``--runs N`` uploads N different files of each size to the same gateway (each one's first bytes differ, so each
is a new blob) and reports every run; the ratio compared with the target is each run's own.

Why the ratio varied (0.39-0.54 at 1 GiB before issue 17). Measured under the CPU lock (256 MiB x3, 1 GiB x2-3,
and the same writes without the gateway), the causes, largest first, and what was done about each:

- The page cache's cost on this VM. Writing 1 GiB of new pages costs the kernel 0.9 s of CPU in a fresh state and
  2.4 s once a previous GiB sits in the cache (a plain Python loop of 1 MiB writes, 4 runs: 0.90, 2.47, 2.43,
  2.38 s system time). How much of it an upload pays depends on what the page cache held before (the previous
  runs' files, deleted or kept), which the gateway does not control. Runs are therefore
  reported one by one (``--runs``): the first is the best case, the later ones are what a busy gateway sees.
  Dropping the staged file's pages behind the writer would keep it at ~0.8 s, but the PDF-signature check reads
  the staged file after the upload and would then read it from disk (1 GiB: 1.85 s instead of 0.14 s): not done.
- What did not help: a thread hashing and writing the staged file in 1 MiB chunks beside the event loop, and
  starting the write-back every 16 MiB so that the final fsync waits for less. Against the code before, same
  bench, alternated (1 GiB, 2 runs x 2): 2.8-4.3 s against 2.6-3.4 s, kernel CPU 1.8-3.6 s against 0.7-0.9 s a
  GiB (fresh 1 MiB buffers fault their pages in), with or without the early write-back. The filesystem store
  writes in line as before; only the fsync and the close moved off the event loop (the multipart reader closes
  an ended part in a thread). The PostgreSQL store uses the thread: it streams to the database meanwhile.
- The baseline. ``sha256sum`` (coreutils' own SHA-256 here, ~340 MB/s, CPU-bound) was timed once, right after
  this process wrote the file, its dirty pages being written back meanwhile (1 GiB: 4.5-4.9 s then, against
  2.96-3.02 s as now measured). Now the payload is fsynced before anything is timed, and the baseline is the
  median of three ``sha256sum`` runs of the cached file, next to each upload.
- The client: httpx assembled the multipart body in Python in a process sharing the two cores. Now the file part
  goes by ``sendfile`` (the kernel copies it): 0.15-0.18 s of client CPU per GiB (``client_cpu_s`` in the JSON).
- What stays: the disk (a virtual disk shared with other VMs) and CPU steal.

The PostgreSQL store cannot reach 0.5 on this machine: PostgreSQL itself needs 5.2-7.4 s of CPU to take 1 GiB by
binary COPY into 1 MiB ``bytea`` rows (5.8-7.2 s wall, no gateway involved; 1,096 MiB of WAL; every value is
cut into ~2 KB TOAST rows, each a heap and an index insert with its WAL record; a checkpoint every 1 GiB of WAL
at the default ``max_wal_size``), against 3.0 s for ``sha256sum``. The gateway's part (receiving, hashing,
staging, streaming: ~4 s of CPU per GiB) shares the two cores with it. The store now streams the chunks while the
upload arrives (no second pass after it); what remains is PostgreSQL's own ingest rate.

The gateway's CPU time during the upload is reported per GiB (and PostgreSQL's, for the PostgreSQL store). The
PostgreSQL server's own memory is not in the RSS column (the gateway process's only).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402

from certs import KeyPair, make_keypair  # noqa: E402
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


def write_file(path: Path, size: int) -> None:
    """A PDF head and random bytes, fsynced: its write-back must not run under the measurement."""
    head = b"%PDF-1.4\n% benchmark payload 00000\n"
    with path.open("wb") as fh:
        fh.write(head)
        remaining = size - len(head)
        block = os.urandom(1 << 20)
        while remaining > 0:
            chunk = block[: min(len(block), remaining)]
            fh.write(chunk)
            remaining -= len(chunk)
        fh.flush()
        os.fsync(fh.fileno())


def next_variant(path: Path, run: int) -> str:
    """Make the payload a new blob (its comment line carries the run number, same length); its SHA-256."""
    with path.open("r+b") as fh:
        fh.seek(len(b"%PDF-1.4\n% benchmark payload "))
        fh.write(f"{run:05d}".encode())
        fh.flush()
        os.fsync(fh.fileno())
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sha256sum_seconds(path: Path) -> float:
    """The baseline: the median of three ``sha256sum`` runs over the cached file."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"gateway {' '.join(args[:2])} failed: {out.stderr[-2000:]}")
    return out.stdout


def sys_cpu_seconds(pid: int) -> float:
    """System (kernel) CPU time of a process: the page cache and the disk's share of the gateway's CPU."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def post_multipart(port: int, token: str, envelope: bytes, path: Path) -> tuple[int, bytes]:
    """POST the envelope and the file as multipart/form-data; the file's bytes go by ``sendfile``."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"envelope\"; filename=\"envelope.edxml\"\r\n"
            "Content-Type: application/xml\r\n\r\n").encode() + envelope + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"phu-luc\"; filename=\"phu-luc.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    try:
        conn.putrequest("POST", "/v1/envelopes")
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + size + len(tail)))
        conn.endheaders()
        assert conn.sock is not None
        conn.sock.sendall(head)
        with path.open("rb") as fh:
            conn.sock.sendfile(fh)
        conn.sock.sendall(tail)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def upload_once(proc: subprocess.Popen[bytes], port: int, token: str, keys: KeyPair, path: Path, run: int,
                size_mb: int, store: str, pg_pid: int | None, profile: bool) -> dict[str, Any]:
    size = path.stat().st_size
    digest = next_variant(path, run)
    xml = build_document(DocumentSpec(
        sender=Organ("000.00.00.G22", "Văn phòng Chính phủ"), recipients=(Organ("000.00.00.H41", "UBND"),),
        code_number=str(1000 + run),
        attachments=(LargeFile("phu-luc.pdf", digest, size, "application/pdf", content_id="cid:phu-luc"),),
    ))
    signed = sign(xml, keys.key, keys.cert, algorithm="ecdsa-sha256")  # type: ignore[arg-type]
    sha256sum_s = sha256sum_seconds(path)

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
    spy = None
    if profile:  # py-spy (in .venv), folded stacks of the gateway's threads, idle ones included
        out = ROOT / "bench" / "results" / f"large_upload-{store}-{size_mb}-{run}.folded"
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid),
                                "--idle", "--threads", "--format", "raw", "--rate", "200", "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    gw_cpu0, gw_sys0 = harness.pid_cpu_seconds(proc.pid), sys_cpu_seconds(proc.pid)
    pg_cpu0 = harness.tree_cpu_seconds(pg_pid) if pg_pid else 0.0
    me0 = harness.process_cpu_seconds()
    t0 = time.perf_counter()
    try:
        status, body = post_multipart(port, token, signed, path)
    finally:
        upload_s = time.perf_counter() - t0
        stop.set()
        sampler.join()
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its output
            spy.wait(timeout=60)
    gw_cpu = harness.pid_cpu_seconds(proc.pid) - gw_cpu0
    gw_sys = sys_cpu_seconds(proc.pid) - gw_sys0
    pg_cpu = harness.tree_cpu_seconds(pg_pid) - pg_cpu0 if pg_pid else 0.0
    client_cpu = harness.process_cpu_seconds() - me0
    if status != 201:
        raise SystemExit(f"upload refused: {status} {body[:300]!r}")
    gib = size / 2**30
    return {
        "store": store,
        "size_mb": size_mb,
        "run": run,
        "upload_s": upload_s,
        "sha256sum_s": sha256sum_s,
        "speed_ratio": sha256sum_s / upload_s,
        "upload_mb_s": size_mb / upload_s,
        "rss_baseline_mb": baseline / 2**20,
        "rss_growth_mb": (peak - baseline) / 2**20,
        "gateway_cpu_s_per_gib": gw_cpu / gib,
        "gateway_sys_cpu_s_per_gib": gw_sys / gib,
        "postgresql_cpu_s_per_gib": pg_cpu / gib,
        "client_cpu_s": client_cpu,  # this process, sampler thread included
    }


def run_size(size_mb: int, runs: int, work: Path, store: str, pg: harness.Postgres | None,
             profile: bool) -> list[dict[str, Any]]:
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(work / "var"), "GATEWAY_PORT": str(port),
           "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_RUN_WORKERS": "false", "GATEWAY_WORKERS": "1",
           "GATEWAY_MAX_PART_BYTES": str(8 << 30), "GATEWAY_BLOB_STORE": store}
    env.pop("GATEWAY_DATABASE_URL", None)
    if pg is not None:
        env["GATEWAY_DATABASE_URL"] = pg.url
    keys = make_keypair("Văn phòng Chính phủ")
    (work / "g22.pem").write_text(keys.cert_pem)
    log_path = work / "serve.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--migrate"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"gateway serve did not become ready: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        cli(env, "agency", "add", "000.00.00.G22", "--name", "Văn phòng Chính phủ", "--pull",
            "--cert", str(work / "g22.pem"))
        cli(env, "agency", "add", "000.00.00.H41", "--name", "UBND tỉnh Nghệ An", "--pull")
        token = cli(env, "token", "create", "--agency", "000.00.00.G22").strip().splitlines()[-1]
        path = work / "payload.pdf"
        write_file(path, size_mb * 1024 * 1024)
        pg_pid = pg.postmaster_pid() if pg is not None else None
        rows = []
        for run in range(1, runs + 1):
            try:
                rows.append(upload_once(proc, port, token, keys, path, run, size_mb, store, pg_pid, profile))
            except SystemExit:
                print(log_path.read_text()[-3000:], file=sys.stderr)
                raise
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, action="append", help="file size in MiB (repeatable)")
    parser.add_argument("--store", action="append", choices=["filesystem", "postgresql"],
                        help="blob store (repeatable; default both)")
    parser.add_argument("--runs", type=int, default=1, help="uploads of each size (default 1)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the gateway during each upload: bench/results/large_upload-*.folded")
    args = parser.parse_args()
    rows = []
    for store in args.store or ["filesystem", "postgresql"]:
        for size_mb in args.size_mb or [1024]:
            # a fresh PostgreSQL for each size (its agencies are registered anew, its WAL starts empty)
            pg = harness.Postgres().start() if store == "postgresql" else None
            try:
                with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
                    rows += run_size(size_mb, args.runs, Path(tmp), store, pg, args.profile)
            finally:
                if pg is not None:
                    pg.stop()
    print(f"{'store':>11} {'size':>8} {'run':>3} {'upload s':>9} {'MB/s':>7} {'sha256sum s':>12} {'ratio':>6} "
          f"{'RSS growth MB':>14} {'gw CPU s/GiB':>13} {'of it sys':>9} {'PG CPU s/GiB':>13}")
    for row in rows:
        print(f"{row['store']:>11} {row['size_mb']:>6}MB {row['run']:>3} {row['upload_s']:>9.2f} "
              f"{row['upload_mb_s']:>7.0f} {row['sha256sum_s']:>12.2f} {row['speed_ratio']:>6.2f} "
              f"{row['rss_growth_mb']:>14.1f} {row['gateway_cpu_s_per_gib']:>13.2f} "
              f"{row['gateway_sys_cpu_s_per_gib']:>9.2f} "
              f"{row['postgresql_cpu_s_per_gib']:>13.2f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "large_upload.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
