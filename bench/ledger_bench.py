"""Benchmark: the ledger on PostgreSQL with 1,000,000 entries: verify rate and p95 of every query filter.

Starts a throwaway PostgreSQL (as the tests do: initdb in a temp directory, a free port on 127.0.0.1,
``shared_buffers`` 1 GB as a production server would have), migrates it with the gateway's Alembic
migrations, and fills it with COPY: agencies, documents, deliveries and N valid chained ledger entries
(hashed with ``gateway.ledger.chain``), with a signed checkpoint every 10,000 entries. Then, in this
process, against the real app (ASGI, no network):

- verify rate: ``LedgerVerifier.run("genesis")`` (what ``GET /v1/ledger/verify`` and ``gateway ledger
  verify`` run), five times; entries per second, each run, the median and the best (on a shared machine
  the best says what the code does, the median what the machine let it do: the load average is printed);
- query latency: ``GET /v1/ledger`` for each filter, ``--runs`` times with random values (random agency,
  document, window, cursor ...), as an operator or as an agency; p50, p95, max in milliseconds;
- CSV export rate for one agency.

Prints a table and writes bench/results/ledger.json. Targets (issue 5): verify ≥ 200,000 entries/s,
p95 ≤ 50 ms per filter.

    .venv/bin/python bench/ledger_bench.py [--entries 1000000] [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gateway.app import create_app  # noqa: E402
from gateway.auth.service import AuthService  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.db import create_database  # noqa: E402
from gateway.db.migrate import upgrade_sync  # noqa: E402
from gateway.ledger.chain import GENESIS_PREV_HASH, GENESIS_TYPE, canonical_json, format_instant, row_hash  # noqa: E402
from gateway.ledger.checkpoint import sign  # noqa: E402
from gateway.ledger.query import encode_cursor  # noqa: E402
from gateway.ledger.verify import LedgerVerifier  # noqa: E402
from gateway.signing import load_or_create  # noqa: E402
from pg import find_bindir, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ledger.json"
AGENCIES = 60
CHECKPOINT_EVERY = 10_000
VERIFY_RUNS = 5
START = datetime(2026, 11, 1, tzinfo=UTC)
STEP = timedelta(milliseconds=2500)  # a million entries over about a month
LEDGER_COLUMNS = ["seq", "recorded_at", "type", "actor", "document", "document_id", "sender", "recipient", "details",
                  "prev_hash", "hash"]


# -- a throwaway PostgreSQL (the small bits of tests/pg.py, with server settings for a million rows) ---------


@dataclass
class Server:
    bindir: Path
    root: Path
    port: int
    user: str | None

    def _run(self, *args: str) -> None:
        kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
        subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=300, **kwargs)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        data = str(self.root / "data")
        self._run(str(self.bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=1GB "
                   "-c maintenance_work_mem=512MB -c max_wal_size=4GB -c max_connections=100 "
                   # The fill vacuums explicitly, and nothing vacuums in the middle of a measurement.
                   "-c autovacuum=off")
        self._run(str(self.bindir / "pg_ctl"), "-D", data, "-o", options, "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "start")

    def stop(self) -> None:
        kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
        subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True, timeout=60, **kwargs)
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


# -- filling ---------------------------------------------------------------------------------------------


@dataclass
class World:
    agencies: list[str]
    documents: list[tuple[str, str, str]] = field(default_factory=list)  # (id, DocumentId, sender)
    size: int = 0
    first: datetime = START
    last: datetime = START
    heads: dict[int, tuple[str, datetime]] = field(default_factory=dict)  # checkpoint size -> (head hash, instant)


def agency_code(i: int) -> str:
    return f"{i:03d}.00.00.H41"


async def fill(conn: asyncpg.Connection, entries: int, rng: random.Random) -> World:
    world = World(agencies=[agency_code(i) for i in range(AGENCIES)])
    await conn.copy_records_to_table(
        "agencies",
        records=[(code, f"Cơ quan {code}", "pull", None, "required", True, START, START) for code in world.agencies],
        columns=["code", "name", "delivery_mode", "endpoint", "signature_policy", "active", "created_at",
                 "updated_at"],
    )
    ledger: list[tuple[Any, ...]] = []
    documents: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    prev = GENESIS_PREV_HASH
    at = START

    def add(type_: str, actor: str, document: str | None, document_id: str | None, sender: str | None,
            recipient: str | None, details: dict[str, Any]) -> None:
        nonlocal prev, at
        seq = len(ledger)
        text = canonical_json(details)
        digest = row_hash((seq, format_instant(at), type_, actor, document, document_id, sender, recipient, prev,
                           text, ""))
        ledger.append((seq, at, type_, actor, document, document_id, sender, recipient, text, prev, digest))
        prev = digest
        if (seq + 1) % CHECKPOINT_EVERY == 0:
            world.heads[seq + 1] = (digest, at)
        at += STEP

    add(GENESIS_TYPE, "gateway", None, None, None, None, {"encoding": 1, "hash": "sha256"})
    weights = [1 / (i + 1) ** 0.5 for i in range(AGENCIES)]  # a few busy agencies, many quiet ones
    while len(ledger) < entries:
        roll = rng.random()
        if roll < 0.01:
            add("token.issued", "console:admin", None, None, rng.choice(world.agencies), None,
                {"token_id": str(uuid.UUID(int=rng.getrandbits(128)))})
            continue
        if roll < 0.02:
            add("envelope.refused", f"agency:{rng.choice(world.agencies)}", None, None, None, None,
                {"rule": "recipient-unknown", "sha256": f"{rng.getrandbits(256):064x}"})
            continue
        sender = rng.choices(world.agencies, weights)[0]
        recipients = rng.sample([a for a in world.agencies if a != sender], rng.randint(1, 4))
        doc = str(uuid.UUID(int=rng.getrandbits(128)))
        document_id = f"{len(documents) + 1}/{sender[-3:]}-VP"
        sent_at = at
        add("envelope.accepted", f"agency:{sender}", doc, document_id, sender, None,
            {"sha256": f"{rng.getrandbits(256):064x}", "recipients": recipients, "size": rng.randint(10**3, 10**7)})
        documents.append((doc, "document", sender, document_id, f"{rng.getrandbits(256):064x}", 1000, False,
                          rng.random() < 0.8, 0, 0, sent_at, len(ledger) - 1, prev))
        world.documents.append((doc, document_id, sender))
        for recipient in recipients:
            received = at
            add("delivery.delivered", "gateway", doc, document_id, sender, recipient,
                {"delivery": str(uuid.UUID(int=rng.getrandbits(128))), "attempt": 1})
            deliveries.append((str(uuid.UUID(int=rng.getrandbits(128))), doc, recipient, "pull", "delivered", 0,
                               sent_at, received, 1, received))
    del ledger[entries:]
    world.size = len(ledger)
    world.last = ledger[-1][1]

    # Secondary indexes and unique constraints are rebuilt after the COPY (much faster than row by row),
    # from the definitions the migrations created.
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'ledger_entries'::regclass AND contype = 'u'")
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ledger_entries' "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'ledger_entries'::regclass)")
    for c in constraints:
        await conn.execute(f'ALTER TABLE ledger_entries DROP CONSTRAINT "{c["conname"]}"')
    for i in indexes:
        await conn.execute(f'DROP INDEX "{i["indexname"]}"')
    await conn.copy_records_to_table("ledger_entries", records=ledger, columns=LEDGER_COLUMNS)
    for c in constraints:
        await conn.execute(f'ALTER TABLE ledger_entries ADD CONSTRAINT "{c["conname"]}" {c["def"]}')
    for i in indexes:
        await conn.execute(i["indexdef"])
    await conn.copy_records_to_table(
        "documents", records=documents,
        columns=["id", "kind", "sender", "document_id", "envelope_sha256", "envelope_size", "multipart", "signed",
                 "priority", "business_doc_type", "sent_at", "ledger_seq", "ledger_hash"])
    await conn.copy_records_to_table(
        "deliveries", records=deliveries,
        columns=["id", "document", "recipient", "mode", "state", "priority", "created_at", "updated_at", "attempts",
                 "received_at"])
    return world


# -- measuring -------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def measure_queries(
    client: httpx.AsyncClient, world: World, operator: dict[str, str], agency_tokens: dict[str, dict[str, str]],
    runs: int, rng: random.Random,
) -> list[dict[str, Any]]:
    span = (world.last - world.first).total_seconds()

    def instant(offset_s: float) -> str:
        return (world.first + timedelta(seconds=offset_s)).isoformat()

    def cursor() -> str:
        return encode_cursor(rng.randrange(world.size))

    def window(hours: float) -> dict[str, str]:
        start = rng.uniform(0, span - hours * 3600)
        return {"from": instant(start), "to": instant(start + hours * 3600)}

    as_agency = list(agency_tokens)
    cases: list[tuple[str, Any]] = [
        ("first page, no filter", lambda: (operator, {})),
        ("any page (random cursor)", lambda: (operator, {"cursor": cursor()})),
        ("agency, sender or recipient", lambda: (operator, {"agency": rng.choice(world.agencies)})),
        ("agency, random cursor", lambda: (operator, {"agency": rng.choice(world.agencies), "cursor": cursor()})),
        ("document (gateway id)", lambda: (operator, {"document": rng.choice(world.documents)[0]})),
        ("document_id (edXML)", lambda: (operator, {"document_id": rng.choice(world.documents)[1]})),
        ("type, rare (envelope.refused)", lambda: (operator, {"type": "envelope.refused", "cursor": cursor()})),
        ("type, common (envelope.accepted)", lambda: (operator, {"type": "envelope.accepted", "cursor": cursor()})),
        ("time range, 1 hour", lambda: (operator, window(1))),
        ("time range, 1 day", lambda: (operator, window(24))),
        ("agency + type + 1 day", lambda: (operator, {"agency": rng.choice(world.agencies), "type": "envelope.accepted",
                                                      **window(24)})),
        ("as an agency, no filter", lambda: (agency_tokens[rng.choice(as_agency)], {})),
        ("as an agency, random cursor", lambda: (agency_tokens[rng.choice(as_agency)], {"cursor": cursor()})),
        ("as an agency, type + 1 day", lambda: (agency_tokens[rng.choice(as_agency)],
                                                {"type": "envelope.accepted", **window(24)})),
    ]
    results = []
    for name, make in cases:
        latencies: list[float] = []
        items = 0
        for _ in range(5):  # warm the plan cache and the connection pool
            headers, params = make()
            await client.get("/v1/ledger", params=params, headers=headers)
        for _ in range(runs):
            headers, params = make()
            t0 = time.perf_counter()
            r = await client.get("/v1/ledger", params=params, headers=headers)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"{name}: {r.status_code} {r.text[:300]}")
            items += len(r.json()["items"])
        results.append({"filter": name, "runs": runs, "p50_ms": statistics.median(latencies),
                        "p95_ms": percentile(latencies, 0.95), "max_ms": max(latencies),
                        "avg_items": items / runs})
        print(f"  {name:<36} p95 {results[-1]['p95_ms']:7.1f} ms", flush=True)
    return results


async def run(entries: int, runs: int, seed: int, keep: bool = False) -> dict[str, Any]:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found (see README, 'OS packages')")
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    server = Server(bindir=bindir, root=Path(tempfile.mkdtemp(prefix="ledger-bench-pg-")), port=free_port(),
                    user="postgres" if os.geteuid() == 0 else None)
    rng = random.Random(seed)
    out: dict[str, Any] = {"entries": entries, "runs": runs, "seed": seed}
    server.start()
    try:
        conn = await asyncpg.connect(server.dsn())
        await conn.execute("CREATE DATABASE ledger")
        await conn.close()
        db = create_database(server.url("ledger"))
        async with db.engine.begin() as c:
            await c.run_sync(upgrade_sync)
        await db.dispose()

        settings = Settings(data_dir=work / "var", database_url=server.url("ledger"), run_workers=False,
                            log_level="warning")
        key = load_or_create(settings)
        conn = await asyncpg.connect(server.dsn("ledger"))
        # The server runs with synchronous_commit off; VACUUM may not mark rows visible to all (hence no
        # index-only scans) until their commit is flushed, so the fill's own commits are synchronous.
        await conn.execute("SET synchronous_commit = on")
        t0 = time.perf_counter()
        world = await fill(conn, entries, rng)
        checkpoints = [sign(key.private_key, key.certificate, size, head, at + timedelta(seconds=1))
                       for size, (head, at) in sorted(world.heads.items()) if size <= world.size]
        await conn.copy_records_to_table(
            "ledger_checkpoints",
            records=[(c.size, c.head_hash, c.signed_at, c.algorithm, c.signature, c.certificate_sha256)
                     for c in checkpoints],
            columns=["size", "head_hash", "signed_at", "algorithm", "signature", "certificate_sha256"])
        for table in ("agencies", "documents", "deliveries", "ledger_entries", "ledger_checkpoints"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        out["fill_s"] = time.perf_counter() - t0
        out["documents"] = len(world.documents)
        out["checkpoints"] = len(checkpoints)
        table_bytes = await conn.fetchval("SELECT pg_total_relation_size('ledger_entries')")
        out["ledger_table_mb"] = table_bytes / 2**20
        await conn.close()
        print(f"filled {entries:,} entries, {len(world.documents):,} documents, {len(checkpoints)} checkpoints "
              f"in {out['fill_s']:.1f} s ({out['ledger_table_mb']:.0f} MB)", flush=True)

        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with app.state.db.transaction() as session:
                _, _, operator_token = await AuthService(session).create_operator("bench", "auditor",
                                                                                  actor="console:bench")
                agency_tokens = {}
                for code in world.agencies[::6]:
                    _, token = await AuthService(session).issue_agency_token(code, actor="console:bench")
                    agency_tokens[code] = {"Authorization": f"Bearer {token}"}
            operator = {"Authorization": f"Bearer {operator_token}"}

            out["load_average_before_verify"] = os.getloadavg()[0]
            verifier = LedgerVerifier(app.state.db, key.certificate)
            verify_runs = []
            for _ in range(VERIFY_RUNS):
                t0 = time.perf_counter()
                report = await verifier.run("genesis")
                elapsed = time.perf_counter() - t0
                if not report.ok:
                    raise SystemExit(f"the benchmark ledger does not verify: {report}")
                verify_runs.append({"seconds": elapsed, "entries": report.size, "rate": report.size / elapsed,
                                    "checkpoints_checked": report.checkpoints_checked})
                print(f"verify from genesis: {report.size:,} entries in {elapsed:.2f} s = "
                      f"{report.size / elapsed:,.0f} entries/s", flush=True)
            out["verify"] = {"runs": verify_runs,
                             "median_rate": statistics.median(r["rate"] for r in verify_runs),
                             "best_rate": max(r["rate"] for r in verify_runs)}
            t0 = time.perf_counter()
            incremental = await verifier.run("checkpoint")
            out["verify_from_checkpoint"] = {"seconds": time.perf_counter() - t0, "ok": incremental.ok}

            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.bench") as client:
                print(f"GET /v1/ledger, {runs} runs per filter:", flush=True)
                out["queries"] = await measure_queries(client, world, operator, agency_tokens, runs, rng)
                busiest = world.agencies[0]
                t0 = time.perf_counter()
                rows = 0
                async with client.stream("GET", "/v1/ledger", params={"agency": busiest},
                                         headers={**operator, "Accept": "text/csv"}) as r:
                    async for line in r.aiter_lines():
                        rows += 1 if line else 0
                elapsed = time.perf_counter() - t0
                out["csv_export"] = {"agency": busiest, "rows": rows - 1, "seconds": elapsed,
                                     "rows_per_s": (rows - 1) / elapsed}
    finally:
        if keep:
            print(f"kept: {server.url('ledger')} (data in {server.root}; stop with pg_ctl -D {server.root}/data stop)")
        else:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)
    return out


def print_table(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    summary = Table("measure", "value", "target", title=f"ledger on PostgreSQL, {out['entries']:,} entries")
    summary.add_row("machine", f"{os.cpu_count()} CPUs, load average {out['load_average_before_verify']:.2f} before "
                    f"verify, {out['load_average_end']:.2f} at the end", "")
    summary.add_row("fill (COPY, indexes, VACUUM ANALYZE)", f"{out['fill_s']:.1f} s", "")
    v = out["verify"]
    summary.add_row("verify from genesis: median (best)", f"{v['median_rate']:,.0f} ({v['best_rate']:,.0f}) entries/s",
                    "≥ 200,000/s")
    summary.add_row("  each run, entries/s", ", ".join(f"{r['rate']:,.0f}" for r in v["runs"]), "")
    summary.add_row("verify from the last checkpoint", f"{out['verify_from_checkpoint']['seconds'] * 1000:.0f} ms",
                    "")
    c = out["csv_export"]
    summary.add_row(f"CSV export, agency {c['agency']}", f"{c['rows']:,} rows, {c['rows_per_s']:,.0f} rows/s", "")
    console.print(summary)
    queries = Table("GET /v1/ledger filter", "p50 ms", "p95 ms", "max ms", "avg items", "p95 ≤ 50 ms",
                    title=f"query latency, {out['runs']} runs each (in-process ASGI, limit 100)")
    for q in out["queries"]:
        queries.add_row(q["filter"], f"{q['p50_ms']:.1f}", f"{q['p95_ms']:.1f}", f"{q['max_ms']:.1f}",
                        f"{q['avg_items']:.0f}", "yes" if q["p95_ms"] <= 50 else "NO")
    console.print(queries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--keep", action="store_true", help="leave the PostgreSQL running, to look at query plans")
    args = parser.parse_args()
    out = asyncio.run(run(args.entries, args.runs, args.seed, args.keep))
    out["load_average_end"] = os.getloadavg()[0]
    out["cpus"] = os.cpu_count()
    out["when"] = datetime.now(UTC).isoformat()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print_table(out)
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
