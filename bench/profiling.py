"""Sampling profiles of the gateway's worker processes while a benchmark loads them (py-spy), summarised.

Optional: py-spy is not a project dependency (``.venv/bin/pip install py-spy``). The benchmarks take
``--profile``; without py-spy they say so and run without. py-spy samples only the thread holding the GIL
(``--gil``: where the Python CPU time goes; waits on sockets, the disk and the GIL drop out), per thread.
The raw collapsed stacks go to ``bench/results/profiles/<name>.<pid>.txt`` (speedscope or any flame-graph
tool reads them), and :func:`summarise` says where the samples fell, separately for the event-loop thread
(HTTP, framework, ORM, driver: everything a request does between its awaits) and the worker threads
(``asyncio.to_thread``: envelope checks, signing, blob writes):

- by package of the leaf frame (the code that was running: sqlalchemy, asyncpg, lxml/signxml, …);
- by function including callees, for the gateway's own functions.

SQLAlchemy's asyncio layer runs each statement in a greenlet, so stacks under ``Session.execute`` do not
reach up to the request that issued them; the package view is the reliable one for the ORM's share.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PROFILES = Path(__file__).resolve().parent / "results" / "profiles"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]+?)(?::\d+)?\)$")
_THREAD = re.compile(r"^thread \((?P<tid>\d+)\): ?(?P<name>.*)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


class Recorder:
    """``py-spy record`` on each pid for ``seconds`` (started now, runs in the background)."""

    def __init__(self, name: str, pids: list[int], seconds: float, rate: int = 250) -> None:
        self.paths: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        exe = py_spy()
        if exe is None:
            print("(--profile: py-spy is not installed; `.venv/bin/pip install py-spy`)", flush=True)
            return
        PROFILES.mkdir(parents=True, exist_ok=True)
        for old in PROFILES.glob(f"{name}.*.txt"):
            old.unlink()
        for pid in pids:
            path = PROFILES / f"{name}.{pid}.txt"
            self.paths.append(path)
            self.procs.append(subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
                 "--format", "raw", "--nonblocking", "--threads", "--gil", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))

    def wait(self) -> list[Path]:
        for proc in self.procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=10)
        return [p for p in self.paths if p.exists()]


def _frame(text: str) -> tuple[str, str]:
    """(function, file relative to its package root)."""
    m = _FRAME.match(text.strip())
    if not m:
        return text.strip(), ""
    file = m["file"]
    for marker in ("/site-packages/", "/src/", "/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return m["func"], file


def _package(file: str) -> str:
    if not file:
        return "native"
    top = file.split("/", 1)[0]
    if top == "gateway":
        parts = file.split("/")
        return "gateway." + parts[1].removesuffix(".py") if len(parts) > 1 else "gateway"
    if top.startswith("<"):
        return "generated (sqlalchemy)"
    return top.removesuffix(".py")


def summarise(paths: list[Path], top: int = 20) -> dict[str, object]:
    """Shares of the samples by thread kind, and within each by leaf package and by gateway function."""
    threads: Counter[str] = Counter()
    packages: dict[str, Counter[str]] = {"event loop": Counter(), "worker threads": Counter()}
    functions: dict[str, Counter[str]] = {"event loop": Counter(), "worker threads": Counter()}
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            raw = stack.split(";")
            kind = "worker threads"
            m = _THREAD.match(raw[0])
            if m:
                kind = "event loop" if m["name"].startswith("MainThread") else "worker threads"
                raw = raw[1:]
            frames = [_frame(f) for f in raw if f.strip()]
            if not frames:
                continue
            threads[kind] += count
            packages[kind][_package(frames[-1][1])] += count
            for func, file in {(f, p) for f, p in frames if p.startswith("gateway/")}:
                functions[kind][f"{func} ({file})"] += count
    total = max(1, sum(threads.values()))
    return {
        "samples": sum(threads.values()),
        "threads": {k: n / total for k, n in threads.items()},
        "packages": {k: [(p, n / total) for p, n in c.most_common(top)] for k, c in packages.items()},
        "functions": {k: [(f, n / total) for f, n in c.most_common(top)] for k, c in functions.items()},
    }


def print_summary(title: str, summary: dict[str, object], top: int = 15) -> None:
    threads: dict[str, float] = summary["threads"]  # type: ignore[assignment]
    packages: dict[str, list[tuple[str, float]]] = summary["packages"]  # type: ignore[assignment]
    functions: dict[str, list[tuple[str, float]]] = summary["functions"]  # type: ignore[assignment]
    print(f"\n{title}: {summary['samples']} samples holding the GIL (shares of all of them)")
    for kind in ("event loop", "worker threads"):
        print(f"  {kind}: {threads.get(kind, 0):.0%}")
        print("    by package of the running frame: " + ", ".join(
            f"{p} {s:.1%}" for p, s in packages[kind][:top] if s >= 0.005))
        for func, share in functions[kind][:top]:
            print(f"    {share:6.1%}  {func}")
