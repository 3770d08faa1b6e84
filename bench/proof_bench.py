"""Benchmark: the ledger's Merkle tree on PostgreSQL (issue 18): what extending it costs the checkpointer, and how
many inclusion and consistency proofs per second it serves.

Starts a throwaway PostgreSQL and fills it with N valid chained ledger entries exactly as bench/ledger_bench.py
does (COPY), then, in this process:

- extension: ``gateway.ledger.tree.extend`` over all N entries in one transaction (what the checkpointer does
  before it signs, over the entries since the last checkpoint): entries per second;
- proofs: ``tree.inclusion_proof`` (+ the root) for random (seq, size) and ``tree.consistency_proof`` for random
  (m, n), each one read transaction as the endpoints do, checked with ``gateway.ledger.merkle``: proofs per
  second, one client and 8 concurrent;
- the intake overhead: the tree is extended by the checkpoint task, never on the intake path, so intake pays it
  only as CPU shared with the checkpointer: the cost of extending over one second of intake at the best rate
  of the last intake bench (bench/results/intake.json) is the fraction printed (target ≤ 5 %).

Prints a table and writes bench/results/proofs.json.

    .venv/bin/python bench/proof_bench.py [--entries 200000] [--proofs 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import machine, write_result
from ledger_bench import Server, fill

from gateway.db import create_database
from gateway.db.migrate import upgrade_sync
from gateway.ledger import merkle, tree
from pg import find_bindir, free_port

RESULTS = Path(__file__).resolve().parent / "results"


async def _proofs(db: Any, size: int, count: int, rng: random.Random, concurrency: int,
                  kind: str) -> float:
    """Proofs per second: ``count`` random proofs, ``concurrency`` at a time, each verified."""
    root_cache: dict[int, bytes] = {}

    async def one() -> None:
        async with db.read() as session:
            if kind == "inclusion":
                n = rng.randint(1, size)
                seq = rng.randrange(n)
                proof = await tree.inclusion_proof(session, seq, n)
                root = root_cache.get(n) or await tree.root(session, n)
                leaf = await _leaf(session, seq)
                assert merkle.verify_inclusion(leaf, seq, n, proof, root)
            else:
                n = rng.randint(2, size)
                m = rng.randint(1, n)
                proof = await tree.consistency_proof(session, m, n)
                assert merkle.verify_consistency(m, n, proof, await tree.root(session, m),
                                                 await tree.root(session, n))

    semaphore = asyncio.Semaphore(concurrency)

    async def bounded() -> None:
        async with semaphore:
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(bounded() for _ in range(count)))
    return count / (time.perf_counter() - started)


async def _leaf(session: Any, seq: int) -> bytes:
    from gateway.ledger.repository import LedgerRepository

    return merkle.leaf_hash(bytes.fromhex((await LedgerRepository(session).hashes_at([seq]))[seq]))


async def run(entries: int, proofs: int, seed: int) -> dict[str, Any]:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found (see README, 'OS packages')")
    server = Server(bindir=bindir, root=Path(tempfile.mkdtemp(prefix="proof-bench-pg-")), port=free_port(),
                    user="postgres" if os.geteuid() == 0 else None)
    rng = random.Random(seed)
    out: dict[str, Any] = {"machine": machine(), "entries": entries, "proofs": proofs, "seed": seed}
    server.start()
    try:
        conn = await asyncpg.connect(server.dsn())
        await conn.execute("CREATE DATABASE ledger")
        await conn.close()
        db = create_database(server.url("ledger"), pool_size=10)
        async with db.engine.begin() as c:
            await c.run_sync(upgrade_sync)
        conn = await asyncpg.connect(server.dsn("ledger"))
        world = await fill(conn, entries, rng)
        await conn.execute("VACUUM ANALYZE ledger_entries")
        await conn.close()
        size = world.size
        print(f"filled {size:,} entries", flush=True)

        started = time.perf_counter()
        async with db.transaction() as session:
            assert await tree.extend(session, size) == size
        extend_s = time.perf_counter() - started
        out["extend_entries_per_s"] = size / extend_s
        out["extend_s"] = extend_s
        print(f"extended the tree over {size:,} entries in {extend_s:.1f} s", flush=True)
        for kind in ("inclusion", "consistency"):
            for concurrency in (1, 8):
                rate = await _proofs(db, size, proofs, rng, concurrency, kind)
                out[f"{kind}_per_s_c{concurrency}"] = rate
                print(f"{kind} proofs, concurrency {concurrency}: {rate:,.0f}/s", flush=True)
        await db.dispose()
    finally:
        server.stop()
    try:
        intake = json.loads((RESULTS / "intake.json").read_text(encoding="utf-8"))
        rate = float(intake["best_accepted_per_s"])
        # each accepted envelope makes several entries (accepted, delivered, statuses...): count 4 to be safe
        out["intake_per_s"] = rate
        out["intake_overhead"] = rate * 4 / out["extend_entries_per_s"]
    except (OSError, ValueError, KeyError):
        out["intake_per_s"] = None
        out["intake_overhead"] = None
    return out


def print_table(out: dict[str, Any]) -> None:
    print()
    print(f"{'measure':58} {'value':>16}")
    print(f"{'tree extension (checkpointer), entries/s':58} {out['extend_entries_per_s']:>16,.0f}")
    for kind in ("inclusion", "consistency"):
        for c in (1, 8):
            print(f"{f'{kind} proofs/s (+ root, verified), concurrency {c}':58} {out[f'{kind}_per_s_c{c}']:>16,.0f}")
    if out["intake_overhead"] is not None:
        print(f"{'intake overhead: extension CPU per second of intake at':58} "
              f"{out['intake_overhead'] * 100:>15.2f}%")
        rate_text = f"  the last intake bench best rate ({out['intake_per_s']:.0f}/s, 4 entries each)"
        print(f"{rate_text:58} {'(target ≤ 5 %)':>16}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--proofs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    out = asyncio.run(run(args.entries, args.proofs, args.seed))
    print_table(out)
    write_result("proofs.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
