"""Benchmark (issue 18): intake's rate with the ledger's Merkle tree kept, against its rate without it.

The tree is extended by the checkpoint task (never on the intake path), so what intake can lose is the CPU that
task takes. This runs the gateway as bench/intake_bench.py does (PostgreSQL, ``uvicorn --workers <cores>``,
workers inside) in two configurations, alternated ``--rounds`` times each on fresh gateways so that the
machine's drift falls on both alike:

- ``without``: no checkpoint at all during the run (``GATEWAY_CHECKPOINT_EVERY_ENTRIES`` and ``…_SECONDS``
  out of reach): neither the tree nor the checkpoint signature is computed;
- ``with``: a checkpoint every ``--every`` entries (default 100, ten times more often than the default 1,000):
  the tree extended, its root computed, the C2SP note and the v1 statement signed, each time.

Each round: a warm-up, then ``--requests`` signed envelopes (distinct, 141 KiB, as intake_bench) at
concurrency ``--concurrency``; accepted per second. The ratio of the totals is printed (target ≥ 0.95: the
tree keeps intake within 5 % of its rate without it) and written to bench/results/tree_ab.json.

    .venv/bin/python bench/tree_ab_bench.py [--rounds 2] [--requests 600] [--every 100]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Gateway, Postgres
from intake_bench import RECIPIENTS, Load

OFF = str(10**9)


def one_round(label: str, env: dict[str, str], envelopes: list[bytes], keys: Any, warmup: int, requests: int,
              concurrency: int) -> float:
    pg = Postgres().start()
    work = Path(tempfile.mkdtemp(prefix=f"gw-bench-tree-{label}-"))
    gateway = Gateway(work, pg.url, env_extra=env)
    try:
        gateway.start()
        gateway.add_agency(harness.SENDER.organ_id, harness.SENDER.name or "", cert_pem=keys.cert_pem)
        for code, name in RECIPIENTS:
            gateway.add_agency(code, name)
        token = gateway.token(harness.SENDER.organ_id)
        load = Load(gateway, token, envelopes, pg.postmaster_pid())
        loop = harness.new_event_loop()
        try:
            loop.run_until_complete(load.closed("warm-up", 4, warmup))
            phase = loop.run_until_complete(load.closed(f"{label}, concurrency {concurrency}", concurrency, requests))
        finally:
            loop.close()
        if load.problems:
            raise SystemExit(f"{label}: problems {dict(load.problems)}")
        rate = float(phase.out()["accepted_per_s"])
        verified = gateway.cli("ledger", "verify").strip().splitlines()[-1]  # how many checkpoints were made
        print(f"{label}: {rate:.1f} accepted/s ({verified})", flush=True)
        return rate
    finally:
        gateway.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--every", type=int, default=100, help="entries between checkpoints in the 'with' rounds")
    args = parser.parse_args()
    keys = harness.sender_keys()
    per_round = args.warmup + args.requests
    t0 = time.perf_counter()
    envelopes = harness.make_envelopes(keys, RECIPIENTS, per_round, run=f"T{int(time.time())}")
    print(f"built and signed {len(envelopes)} envelopes in {time.perf_counter() - t0:.1f} s", flush=True)
    configurations = {
        "without": {"GATEWAY_CHECKPOINT_EVERY_ENTRIES": OFF, "GATEWAY_CHECKPOINT_EVERY_SECONDS": OFF},
        "with": {"GATEWAY_CHECKPOINT_EVERY_ENTRIES": str(args.every), "GATEWAY_CHECKPOINT_EVERY_SECONDS": "1",
                 "GATEWAY_CHECKPOINT_POLL_SECONDS": "0.2"},
    }
    rates: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(args.rounds):
        for label, env in configurations.items():
            # each gateway has a fresh database: the same envelopes are new to it
            rates[label].append(one_round(label, env, envelopes, keys, args.warmup, args.requests, args.concurrency))
    without, with_tree = sum(rates["without"]) / len(rates["without"]), sum(rates["with"]) / len(rates["with"])
    out = {"machine": harness.machine(), "rounds": args.rounds, "requests": args.requests,
           "concurrency": args.concurrency, "every": args.every, "rates": rates,
           "without_per_s": without, "with_per_s": with_tree, "ratio": with_tree / without}
    print()
    print(f"{'configuration':44} {'accepted/s (mean of rounds)':>28}")
    print(f"{'without checkpoints (no tree)':44} {without:>28.1f}   {rates['without']}")
    print(f"{f'checkpoint + tree every {args.every} entries':44} {with_tree:>28.1f}   {rates['with']}")
    print(f"{'ratio (target ≥ 0.95)':44} {with_tree / without:>28.3f}")
    harness.write_result("tree_ab", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
