"""Benchmark: end to end, from the sender's POST to each push recipient's 2xx, at a steady offered rate.

The gateway runs as in production (:mod:`harness`). Two push recipients, ``000.00.00.H41`` and
``000.00.00.H42``, are real HTTP servers on 127.0.0.1 in a process of their own (:mod:`recipients`: they
check the gateway's signature on every POST and record the instant they answer 200). The sender posts
signed envelopes (the intake benchmark's: Vietnamese metadata, one 100 KB PDF inline), each addressed to
both, on a fixed schedule of ``--rate`` per second for ``--seconds`` (open loop: a slow answer does not
slow the sending). By default the rate is half the end-to-end capacity, measured first in the same run
(issue 17's "at half capacity"): ``--capacity-documents`` envelopes (default 400) sent closed loop at
concurrency 16, capacity = documents / (instant of the last recipient's 2xx - start). Each document costs
more than its intake here (two pushes, two automatic 01s signed and accepted), so the intake benchmark's
capacity would overload this one.
Each document is matched to its arrivals by ``X-Gateway-Document-Id``.

Latency per (document, recipient) = the recipient's answer instant minus the instant the POST was scheduled
to start (wall clock, the same machine). p50/p95/p99 over all of them; target p99 ≤ 100 ms at half capacity.
``--profile`` records py-spy profiles of the gateway's workers during the run (:mod:`profiling`).

    .venv/bin/python bench/e2e_bench.py [--rate R] [--seconds 15] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import profiling
from harness import Gateway, HttpConnection, Postgres, RecipientServers

RECIPIENTS = (("000.00.00.H41", "UBND tỉnh Nghệ An"), ("000.00.00.H42", "UBND tỉnh Hà Tĩnh"))
TARGET_P99_MS = 100.0


async def send_open_loop(port: int, token: str, envelopes: list[bytes], rate: float,
                         grace: float = 60.0) -> tuple[dict[str, float], list[float], Counter[str]]:
    """POST each envelope at its scheduled instant; returns {document: scheduled wall instant}, the intake
    answer times (s) and the answer statuses."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    started: dict[str, float] = {}
    intake: list[float] = []
    statuses: Counter[str] = Counter()
    idle: list[HttpConnection] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(body: bytes, at_perf: float, at_wall: float) -> None:
        conn = idle.pop() if idle else HttpConnection("127.0.0.1", port)
        try:
            r = await conn.request("POST", "/v1/envelopes", headers, body)
        except (OSError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] += 1
            return
        finally:
            idle.append(conn)
        statuses[str(r.status)] += 1
        if r.status == 201:
            intake.append(time.perf_counter() - at_perf)
            started[r.headers["x-gateway-document-id"]] = at_wall

    perf0, wall0 = time.perf_counter(), time.time()
    for i, body in enumerate(envelopes):
        delay = perf0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(body, perf0 + i / rate, wall0 + i / rate))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=grace)
        for task in pending:
            task.cancel()
        statuses["unanswered"] += len(pending)
    for conn in idle:
        conn.close()
    return started, intake, statuses


async def send_closed_loop(port: int, token: str, envelopes: list[bytes], concurrency: int) -> dict[str, float]:
    """POST the envelopes ``concurrency`` at a time, each connection sending the next as soon as it has its
    answer; returns {document: wall instant its POST started} of those accepted."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    started: dict[str, float] = {}
    queue = list(reversed(envelopes))

    async def sender() -> None:
        conn = HttpConnection("127.0.0.1", port)
        try:
            while queue:
                body = queue.pop()
                at = time.time()
                r = await conn.request("POST", "/v1/envelopes", headers, body)
                if r.status == 201:
                    started[r.headers["x-gateway-document-id"]] = at
        finally:
            conn.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return started


def wait_delivered(servers: RecipientServers, documents: dict[str, float], per_document: int,
                   timeout: float) -> list[tuple[float, str, str, str, int, bool]]:
    deadline = time.monotonic() + timeout
    while True:
        arrivals = servers.arrivals()
        got = {(a[2], a[1]) for a in arrivals if a[5] and a[2] in documents}
        if len(got) >= per_document * len(documents) or time.monotonic() > deadline:
            return arrivals
        time.sleep(0.5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    keys = harness.sender_keys()
    measure = 0 if args.rate else args.capacity_documents
    envelopes = harness.make_envelopes(keys, RECIPIENTS, args.warmup + measure, run=f"E{int(time.time())}")
    capacity: float | None = None
    pg = Postgres().start()
    work = Path(tempfile.mkdtemp(prefix="gw-bench-e2e-"))
    gateway = Gateway(work, pg.url)
    servers: RecipientServers | None = None
    try:
        gateway.start()
        ports = [harness.free_port() for _ in RECIPIENTS]
        servers = RecipientServers(ports, work / "var" / "keys" / "gateway.cert.pem")
        gateway.add_agency(harness.SENDER.organ_id, harness.SENDER.name or "", cert_pem=keys.cert_pem)
        for (code, name), port in zip(RECIPIENTS, ports, strict=True):
            gateway.add_agency(code, name, push=servers.endpoint(port, code))
        token = gateway.token(harness.SENDER.organ_id)
        loop = harness.new_event_loop()
        try:
            warm, _, warm_statuses = loop.run_until_complete(
                send_open_loop(gateway.port, token, envelopes[: args.warmup], 10.0))
            wait_delivered(servers, warm, len(RECIPIENTS), 60)
            if not warm:
                raise SystemExit(f"nothing accepted during warm-up: {dict(warm_statuses)}")
            if measure:
                t_start = time.time()
                burst = loop.run_until_complete(
                    send_closed_loop(gateway.port, token, envelopes[args.warmup:], 16))
                done = wait_delivered(servers, burst, len(RECIPIENTS), args.drain_seconds)
                last = max(a[0] for a in done if a[5] and a[2] in burst)
                capacity = len(burst) / (last - t_start)
                args.rate = round(capacity / 2, 1)
                print(f"end-to-end capacity: {len(burst)} documents to both recipients in {last - t_start:.1f} s "
                      f"= {capacity:.1f}/s; offering half: {args.rate:g}/s", flush=True)
            count = int(args.rate * args.seconds)
            envelopes += harness.make_envelopes(keys, RECIPIENTS, count, run=f"F{int(time.time())}")
            envelopes = envelopes[: args.warmup] + envelopes[args.warmup + measure:]
            recorder = (profiling.Recorder("e2e", gateway.server_pids(), min(args.seconds, args.profile_seconds))
                        if args.profile else None)
            cpu0 = (gateway.cpu_seconds(), harness.tree_cpu_seconds(pg.postmaster_pid() or 0),
                    servers.cpu_seconds(), harness.process_cpu_seconds())
            t0 = time.perf_counter()
            started, intake, statuses = loop.run_until_complete(
                send_open_loop(gateway.port, token, envelopes[args.warmup:], args.rate))
            arrivals = wait_delivered(servers, started, len(RECIPIENTS), args.drain_seconds)
            elapsed = time.perf_counter() - t0
            cpu1 = (gateway.cpu_seconds(), harness.tree_cpu_seconds(pg.postmaster_pid() or 0),
                    servers.cpu_seconds(), harness.process_cpu_seconds())
        finally:
            loop.close()
        if recorder is not None:
            paths = recorder.wait()
            if paths:
                profiling.print_summary("py-spy, gateway workers, end to end", profiling.summarise(paths))
    finally:
        if servers is not None:
            servers.stop()
        gateway.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    first: dict[tuple[str, str], float] = {}
    attempts: Counter[str] = Counter()
    refused = 0
    for at, recipient, document, _delivery, _attempt, verified in arrivals:
        if document not in started:
            continue
        if not verified:
            refused += 1
            continue
        attempts[f"{document}/{recipient}"] += 1
        key = (document, recipient)
        first[key] = min(first.get(key, at), at)
    latencies = [at - started[doc] for (doc, _r), at in first.items()]
    per_document: dict[str, float] = {}
    for (doc, _r), at in first.items():
        per_document[doc] = max(per_document.get(doc, 0.0), at - started[doc])
    expected = len(started) * len(RECIPIENTS)
    summary = harness.summary_ms(latencies)
    return {
        "offered_per_s": args.rate,
        "capacity_per_s": capacity,
        "seconds": args.seconds,
        "sent": count,
        "accepted": len(started),
        "statuses": dict(statuses),
        "deliveries_expected": expected,
        "delivered": len(first),
        "duplicates": sum(n - 1 for n in attempts.values()),
        "refused_by_recipient_check": refused,
        "elapsed_s": elapsed,
        "end_to_end": summary,
        "all_recipients_per_document": harness.summary_ms(list(per_document.values())),
        "intake": harness.summary_ms(intake),
        "cpu_s": {"gateway": cpu1[0] - cpu0[0], "postgres": cpu1[1] - cpu0[1], "recipients": cpu1[2] - cpu0[2],
                  "load": cpu1[3] - cpu0[3], "available": elapsed * (os.cpu_count() or 1)},
        "gateway_workers": gateway.workers,
        "targets": {"p99_le_100ms": summary["p99_ms"] <= TARGET_P99_MS and len(first) == expected},
    }


def print_report(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "p50 ms", "p95 ms", "p99 ms", "max ms", "target",
                  title=f"end to end: POST → recipient's 2xx, {out['offered_per_s']:g} documents/s offered for "
                        f"{out['seconds']:g} s, 2 push recipients, {out['gateway_workers']} uvicorn workers")
    e = out["end_to_end"]
    table.add_row(f"each delivery ({out['delivered']} of {out['deliveries_expected']})", f"{e['p50_ms']:.1f}",
                  f"{e['p95_ms']:.1f}", f"{e['p99_ms']:.1f}", f"{e['max_ms']:.0f}",
                  "p99 ≤ 100 ms: " + ("yes" if out["targets"]["p99_le_100ms"] else "NO"))
    a = out["all_recipients_per_document"]
    table.add_row("both recipients, per document", f"{a['p50_ms']:.1f}", f"{a['p95_ms']:.1f}", f"{a['p99_ms']:.1f}",
                  f"{a['max_ms']:.0f}", "")
    i = out["intake"]
    table.add_row(f"intake answer (201: {out['accepted']} of {out['sent']})", f"{i['p50_ms']:.1f}",
                  f"{i['p95_ms']:.1f}", f"{i['p99_ms']:.1f}", f"{i['max_ms']:.0f}", "")
    Console(width=140).print(table)
    c = out["cpu_s"]
    print(f"CPU s: gateway {c['gateway']:.1f}, postgres {c['postgres']:.1f}, recipients {c['recipients']:.1f}, "
          f"load {c['load']:.1f} of {c['available']:.0f} available; duplicates {out['duplicates']}, "
          f"refused by the recipients' check {out['refused_by_recipient_check']}, answers {out['statuses']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="documents per second (default: half the end-to-end capacity measured first)")
    parser.add_argument("--capacity-documents", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--drain-seconds", type=float, default=120.0, help="how long to wait for the last arrivals")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    args = parser.parse_args()
    out = run(args)
    path = harness.write_result("e2e", out)
    print_report(out)
    print(f"wrote {path.relative_to(harness.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
