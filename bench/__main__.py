"""`make bench`: every benchmark in this folder, one after the other, each printing its own table; then
the targets of issue 8, met or not, from the JSON each one wrote to bench/results/, and the wall time.

    .venv/bin/python -m bench [--profile] [--only intake,e2e,large,ledger,fanout,proofs,tree_ab]

The HTTP benchmarks (intake, end to end, fan-out) start their own PostgreSQL and the gateway as in
production (bench/harness.py); the large-attachment one starts ``gateway serve`` on SQLite; the ledger
one its own PostgreSQL with a million entries. ``--profile`` passes ``--profile`` to the three HTTP
benchmarks (needs py-spy, not a project dependency: ``.venv/bin/pip install py-spy``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: (key, title, script and arguments, result file, takes --profile)
BENCHES = [
    ("intake", "1. intake: signed envelopes accepted per second, and the signature ceiling",
     ["intake_bench.py"], "intake.json", True),
    ("e2e", "2. end to end: POST to the push recipients' 2xx at half the end-to-end capacity",
     ["e2e_bench.py"], "e2e.json", True),
    ("large", "3. large attachment by multipart (1 GiB, 2 GiB; blobs on disk and in PostgreSQL)",
     ["large_upload.py", "--size-mb", "1024", "--size-mb", "2048"], "large_upload.json", False),
    ("ledger", "4. ledger: verify rate and query p95 over 1,000,000 entries",
     ["ledger_bench.py"], "ledger.json", False),
    ("fanout", "5. fan-out: one document to 500 push recipients",
     ["fanout_bench.py"], "fanout.json", True),
    ("proofs", "6. ledger proofs: Merkle tree extension and proofs per second over 200,000 entries",
     ["proof_bench.py"], "proofs.json", False),
    ("tree_ab", "6b. intake with checkpoints and the Merkle tree every 100 entries, against none",
     ["tree_ab_bench.py", "--rounds", "4"], "tree_ab.json", False),
]


def _load(name: str) -> Any:
    try:
        return json.loads((RESULTS / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def targets(ran: set[str]) -> list[tuple[str, str, str, str]]:
    """(target, figure, wanted, met) for each benchmark that ran and wrote its result."""
    rows: list[tuple[str, str, str, str]] = []
    intake = _load("intake.json") if "intake" in ran else None
    if intake:
        c = intake["ceiling"]
        if "ratio_verify" in intake:  # issue 17: the in-process ceiling is inspect_envelope on every core
            rows.append(("intake / in-process ceiling (inspect_envelope, all cores)",
                         f"{intake['best_accepted_per_s']:.0f}/s of {c['envelope_checks_per_s']:.0f}/s = "
                         f"{intake['ratio']:.3f}", "≥ 0.5", _yes(intake["ratio"] >= 0.5)))
            rows.append(("intake / signature verifications (all cores)",
                         f"{intake['best_accepted_per_s']:.0f}/s of {c['signature_verifications_per_s']:.0f}/s = "
                         f"{intake['ratio_verify']:.3f}", "≥ 0.15", _yes(intake["ratio_verify"] >= 0.15)))
        else:  # a result file written before issue 17
            rows.append(("intake / signature ceiling", f"{intake['best_accepted_per_s']:.0f}/s of "
                         f"{c['signature_verifications_per_s']:.0f}/s = {intake['ratio']:.2f}", "≥ 0.5",
                         _yes(intake["ratio"] >= 0.5)))
        if "vxp" in intake:
            v = intake["vxp"]
            rows.append(("VXP intake / native intake", f"{v['phase']['accepted_per_s']:.0f}/s of "
                         f"{v['native_accepted_per_s']:.0f}/s = {v['ratio']:.2f}", "≥ 0.9", _yes(v["ratio"] >= 0.9)))
        o = intake["open_loop"]
        half = f", half of {o['capacity_per_s']:.0f}/s" if "capacity_per_s" in o else ""
        rows.append((f"intake p99 at {o['offered_per_s']:g}/s offered{half}",
                     f"{o['p99_ms']:.0f} ms (accepted {o['accepted_per_s']:.0f}/s)", "≤ 50 ms",
                     _yes(intake["targets"]["p99_le_50ms_at_rate"])))
    e2e = _load("e2e.json") if "e2e" in ran else None
    if e2e:
        cap = f", half of {e2e['capacity_per_s']:.0f}/s" if e2e.get("capacity_per_s") else ""
        rows.append((f"end to end p99 at {e2e['offered_per_s']:g}/s{cap}, 2 push recipients",
                     f"{e2e['end_to_end']['p99_ms']:.0f} ms "
                     f"({e2e['delivered']}/{e2e['deliveries_expected']} delivered)",
                     "≤ 100 ms", _yes(e2e["targets"]["p99_le_100ms"])))
    large = _load("large_upload.json") if "large" in ran else None
    if large:
        for row in large:
            store = f", {row['store']} store" if "store" in row else ""
            rows.append((f"large attachment {row['size_mb'] // 1024} GiB{store}: speed / sha256sum",
                         f"{row['speed_ratio']:.2f}", "≥ 0.5", _yes(row["speed_ratio"] >= 0.5)))
            rows.append((f"large attachment {row['size_mb'] // 1024} GiB{store}: gateway RSS growth",
                         f"{row['rss_growth_mb']:.1f} MB", "< 100 MB", _yes(row["rss_growth_mb"] < 100)))
    ledger = _load("ledger.json") if "ledger" in ran else None
    if ledger:
        rate = ledger["verify"]["median_rate"]
        rows.append((f"ledger verify rate (median of {len(ledger['verify']['runs'])})", f"{rate:,.0f}/s",
                     "≥ 200,000/s", _yes(rate >= 200_000)))
        worst = max(ledger["queries"], key=lambda q: q["p95_ms"])
        rows.append((f"ledger query p95, worst filter ({worst['filter']})", f"{worst['p95_ms']:.1f} ms", "≤ 50 ms",
                     _yes(worst["p95_ms"] <= 50)))
    fanout = _load("fanout.json") if "fanout" in ran else None
    if fanout:
        rows.append((f"fan-out to {fanout['recipients']}: all delivered (median of {len(fanout['runs'])})",
                     f"{fanout['median_all_delivered_s']:.1f} s", "≤ 5 s",
                     _yes(fanout["targets"]["all_delivered_le_5s"])))
    proofs = _load("proofs.json") if "proofs" in ran else None
    if proofs:
        rows.append(("ledger inclusion proofs/s (+ root, verified), concurrency 8",
                     f"{proofs['inclusion_per_s_c8']:,.0f}/s", "measured", "-"))
        if proofs["intake_overhead"] is not None:
            rows.append(("Merkle tree upkeep per second of intake (the checkpointer's CPU)",
                         f"{proofs['intake_overhead'] * 100:.2f} %", "≤ 5 %", _yes(proofs["intake_overhead"] <= 0.05)))
    tree_ab = _load("tree_ab.json") if "tree_ab" in ran else None
    if tree_ab:
        rows.append((f"intake with tree+checkpoints every {tree_ab['every']} / without ({tree_ab['rounds']} rounds)",
                     f"{tree_ab['with_per_s']:.0f}/s of {tree_ab['without_per_s']:.0f}/s = {tree_ab['ratio']:.2f}",
                     "≥ 0.95", _yes(tree_ab["ratio"] >= 0.95)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway during the HTTP benchmarks")
    parser.add_argument("--only", default="",
                        help="comma-separated keys: intake,e2e,large,ledger,fanout,proofs,tree_ab")
    args = parser.parse_args()
    only = {k for k in args.only.split(",") if k}
    started = time.perf_counter()
    ran: set[str] = set()
    failures: list[str] = []
    durations: dict[str, float] = {}
    for key, title, (script, *script_args), _result, profiles in BENCHES:
        if only and key not in only:
            continue
        if not (HERE / script).exists():
            print(f"\n== {title}: {script} is not there, skipped ==", flush=True)
            continue
        print(f"\n== {title} ==", flush=True)
        extra = ["--profile"] if args.profile and profiles else []
        t0 = time.perf_counter()
        code = subprocess.run([sys.executable, str(HERE / script), *script_args, *extra], check=False).returncode
        durations[key] = time.perf_counter() - t0
        if code == 0:
            ran.add(key)
        else:
            failures.append(key)
            print(f"!! {script} exited {code}", flush=True)
    wall = time.perf_counter() - started
    rows = targets(ran)
    load = os.getloadavg()
    print(f"\n== targets (issue 8): {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"`make bench` wall time {wall / 60:.1f} min, load average at the end {load[0]:.1f} ==")
    if rows:
        width = max(len(r[0]) for r in rows)
        fig = max(len(r[1]) for r in rows)
        for target, figure, wanted, met in rows:
            print(f"  {target.ljust(width)}  {figure.rjust(fig)}  {wanted:>12}  {met}")
    if failures:
        print(f"  failed: {', '.join(failures)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps({
        "wall_s": wall, "durations_s": durations, "failed": failures, "load_average_end": load,
        "targets": [{"target": t, "figure": f, "wanted": w, "met": m == "yes"} for t, f, w, m in rows],
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
