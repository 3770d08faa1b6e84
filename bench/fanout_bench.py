"""Benchmark: one document to 500 push recipients, time until every one of them has answered 2xx.

The gateway runs as in production (:mod:`harness`). ``--recipients`` agencies (default 500) are
registered through ``POST /v1/agencies`` with an admin token, each pushing to its own path
``/r/<code>`` on one recipients' server (:mod:`recipients`, a process of its own on 127.0.0.1, which
checks the gateway's signature on every POST and records the instant it answers 200). A warm-up document
goes to all of them first (connections, caches); then ``--runs`` documents, one at a time, each signed
envelope (Vietnamese metadata, one 100 KB PDF inline) addressed to all the recipients.

Per run: the time from the POST to the last recipient's 2xx (target ≤ 5 s), to the first, and to the
median one; and the intake answer time. ``--profile`` records py-spy profiles of the gateway's workers
during the measured runs (:mod:`profiling`).

    .venv/bin/python bench/fanout_bench.py [--recipients 500] [--runs 3] [--profile] [--set NAME=VALUE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import profiling
from harness import Gateway, Postgres, RecipientServers

TARGET_S = 5.0


def recipient_codes(n: int) -> list[tuple[str, str]]:
    """Distinct valid codes (LLL.KK.JJ.Xnn): the units of a province's departments."""
    return [(f"{i % 1000:03d}.{i // 1000:02d}.01.K{(i % 97):02d}", f"Phòng {i} - Sở Nội vụ tỉnh Bình Phước")
            for i in range(1, n + 1)]


def one_document(base: str, token: str, envelope: bytes, servers: RecipientServers, expected: int,
                 timeout: float) -> dict[str, Any]:
    t_wall = time.time()
    t0 = time.perf_counter()
    r = httpx.post(f"{base}/v1/envelopes", content=envelope, timeout=60,
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"})
    intake_s = time.perf_counter() - t0
    if r.status_code != 201:
        raise SystemExit(f"fan-out envelope refused: {r.status_code} {r.text[:300]}")
    document = r.headers["x-gateway-document-id"]
    deadline = time.monotonic() + timeout
    while servers.count(document) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    arrivals = [a for a in servers.arrivals() if a[2] == document and a[5]]
    firsts: dict[str, float] = {}
    for a in arrivals:
        firsts[a[1]] = min(firsts.get(a[1], a[0]), a[0])
    times = sorted(t - t_wall for t in firsts.values())
    return {
        "document": document,
        "intake_s": intake_s,
        "delivered": len(times),
        "posts_received": len(arrivals),
        "first_s": times[0] if times else float("nan"),
        "median_s": statistics.median(times) if times else float("nan"),
        "all_s": times[-1] if len(times) == expected else float("inf"),
    }


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--set wants NAME=VALUE, got {text!r}")
    name = name.upper()
    return (name if name.startswith("GATEWAY_") else f"GATEWAY_{name}"), value


def run(args: argparse.Namespace) -> dict[str, Any]:
    keys = harness.sender_keys()
    agencies = recipient_codes(args.recipients)
    envelopes = harness.make_envelopes(keys, agencies, args.runs + 1, run=f"F{int(time.time())}")
    pg = Postgres().start()
    work = Path(tempfile.mkdtemp(prefix="gw-bench-fanout-"))
    gateway = Gateway(work, pg.url, env_extra=dict(_setting(s) for s in args.set))
    servers: RecipientServers | None = None
    runs: list[dict[str, Any]] = []
    try:
        gateway.start()
        port = harness.free_port()
        servers = RecipientServers([port], work / "var" / "keys" / "gateway.cert.pem")
        gateway.add_agency(harness.SENDER.organ_id, harness.SENDER.name or "", cert_pem=keys.cert_pem)
        t0 = time.perf_counter()
        gateway.add_push_agencies((code, name, servers.endpoint(port, code)) for code, name in agencies)
        print(f"registered {len(agencies)} push recipients in {time.perf_counter() - t0:.1f} s", flush=True)
        token = gateway.token(harness.SENDER.organ_id)
        warm = one_document(gateway.base, token, envelopes[0], servers, len(agencies), args.timeout)
        print(f"warm-up: {warm['delivered']} delivered, last at {warm['all_s']:.2f} s", flush=True)
        recorder = (profiling.Recorder("fanout", gateway.server_pids(), args.profile_seconds)
                    if args.profile else None)
        cpu0 = (gateway.cpu_seconds(), harness.tree_cpu_seconds(pg.postmaster_pid() or 0), servers.cpu_seconds())
        t0 = time.perf_counter()
        for envelope in envelopes[1:]:
            runs.append(one_document(gateway.base, token, envelope, servers, len(agencies), args.timeout))
            print(f"run {len(runs)}: all {runs[-1]['delivered']} delivered in {runs[-1]['all_s']:.2f} s", flush=True)
        elapsed = time.perf_counter() - t0
        cpu1 = (gateway.cpu_seconds(), harness.tree_cpu_seconds(pg.postmaster_pid() or 0), servers.cpu_seconds())
        if recorder is not None:
            paths = recorder.wait()
            if paths:
                profiling.print_summary("py-spy, gateway workers, fan-out", profiling.summarise(paths))
    finally:
        if servers is not None:
            servers.stop()
        gateway.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    median_all = statistics.median(r["all_s"] for r in runs)
    return {
        "recipients": args.recipients,
        "runs": runs,
        "median_all_delivered_s": median_all,
        "deliveries_per_s": args.recipients / median_all if median_all else 0.0,
        "cpu_s": {"gateway": cpu1[0] - cpu0[0], "postgres": cpu1[1] - cpu0[1], "recipients": cpu1[2] - cpu0[2],
                  "available": elapsed * (os.cpu_count() or 1)},
        "gateway_workers": gateway.workers,
        "settings": dict(_setting(s) for s in args.set),
        "targets": {"all_delivered_le_5s": median_all <= TARGET_S},
    }


def print_report(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("run", "intake answer", "first 2xx", "median 2xx", "last 2xx (all delivered)", "delivered",
                  title=f"fan-out: one document (100 KB PDF inline) to {out['recipients']} push recipients, "
                        f"{out['gateway_workers']} uvicorn workers"
                        + "".join(f", {k}={v}" for k, v in out.get("settings", {}).items()))
    for i, r in enumerate(out["runs"], 1):
        table.add_row(str(i), f"{r['intake_s'] * 1000:.0f} ms", f"{r['first_s']:.2f} s", f"{r['median_s']:.2f} s",
                      f"{r['all_s']:.2f} s", f"{r['delivered']}/{out['recipients']}")
    table.add_row("median", "", "", "", f"{out['median_all_delivered_s']:.2f} s "
                  f"({out['deliveries_per_s']:.0f} deliveries/s)",
                  "≤ 5 s: " + ("yes" if out["targets"]["all_delivered_le_5s"] else "NO"))
    Console(width=140).print(table)
    c = out["cpu_s"]
    print(f"CPU s: gateway {c['gateway']:.1f}, postgres {c['postgres']:.1f}, recipients {c['recipients']:.1f} "
          f"of {c['available']:.0f} available")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--recipients", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="per document")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-seconds", type=float, default=15.0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a gateway setting for this run (e.g. worker_concurrency=64), repeatable")
    args = parser.parse_args()
    out = run(args)
    path = harness.write_result("fanout", out)
    print_report(out)
    print(f"wrote {path.relative_to(harness.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
