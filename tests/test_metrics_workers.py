"""``gateway serve --workers 2`` on PostgreSQL: a scrape, answered by either worker process, counts every request
that either of them answered — and nothing of an earlier run.

Which process answered what is read from the per-process files in the metrics directory the server made
(``<data_dir>/run/prometheus``, prometheus_client's multiprocess mode): the test keeps sending (fresh connections,
several at once) until both processes have answered some, within a bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from pg import free_port
from real_processes import serving

HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}
BATCH = 16
MAX_REQUESTS = 2_000


def answered_per_process(directory: Path) -> Counter[int]:
    """GET /healthz answered, per worker pid, from the counter files ``counter_<pid>.db``."""
    per_pid: Counter[int] = Counter()
    for path in directory.glob("counter_*.db"):
        pid = int(re.fullmatch(r"counter_(\d+)\.db", path.name).group(1))  # type: ignore[union-attr]
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _family, sample, labels, _help = json.loads(key)
            if sample == "gateway_http_requests_total" and labels == HEALTHZ:
                per_pid[pid] += int(value)
    return per_pid


def scraped(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def stale_run(directory: Path) -> None:
    """What an earlier run would have left: 1000 GET /healthz counted by a process long gone."""
    directory.mkdir(parents=True)
    stale = MmapedDict(str(directory / "counter_999999.db"))
    stale.write_value(mmap_key("gateway_http_requests", "gateway_http_requests_total", list(HEALTHZ),
                               list(HEALTHZ.values()), "HTTP requests answered, by method, route template and "
                               "status code"), 1000.0, 0.0)
    stale.close()


async def send_until_both_answered(base: str, directory: Path) -> int:
    sent = 0
    # no keep-alive: every request is a new connection, which either process may accept
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        while sent < MAX_REQUESTS:
            answers = await asyncio.gather(*(client.get("/healthz") for _ in range(BATCH)))
            assert all(a.status_code == 200 for a in answers)
            sent += BATCH
            if len([pid for pid, n in answered_per_process(directory).items() if n]) >= 2:
                break
    return sent


def test_two_worker_processes_report_the_requests_both_answered(
    pg_url: str, tmp_path: Path, gateway_key_files: tuple[Path, Path]
) -> None:
    key_file, cert_file = gateway_key_files
    data_dir = tmp_path / "var"
    directory = data_dir / "run" / "prometheus"
    stale_run(directory)
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_DATABASE_URL": pg_url,
           "GATEWAY_SIGNING_KEY_FILE": str(key_file), "GATEWAY_SIGNING_CERT_FILE": str(cert_file),
           "GATEWAY_LOG_LEVEL": "warning"}
    for name in ("GATEWAY_PORT", "GATEWAY_WORKERS", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with serving(env, port, tmp_path, log, args=("--workers", "2", "--port", str(port))):
        sent = asyncio.run(send_until_both_answered(base, directory))
        # A request is counted once its answer is out (its duration is the whole answer): the client can read
        # the last answers an instant before their counts land. Wait for them, bounded; never more than sent.
        deadline = time.monotonic() + 10
        per_process = answered_per_process(directory)
        while sum(per_process.values()) < sent and time.monotonic() < deadline:
            time.sleep(0.05)
            per_process = answered_per_process(directory)
        assert len(per_process) == 2, f"{per_process} after {sent} requests\n{log.read_text(errors='replace')}"
        assert all(per_process.values()), per_process
        assert sum(per_process.values()) == sent
        assert 999999 not in per_process  # the earlier run's files were wiped at start

        text = httpx.get(f"{base}/metrics", timeout=10).text
        assert scraped(text, "gateway_http_requests_total", **HEALTHZ) == sent
        assert scraped(text, "gateway_http_request_duration_seconds_count", **HEALTHZ) == sent
        assert scraped(text, "gateway_operational_figures_up") == 1
        assert scraped(text, "gateway_deliveries_in_state", state="pending") == 0
        in_use = scraped(text, "gateway_db_pool_connections_in_use")
        assert in_use is not None
        assert in_use >= 0
        live = list(directory.glob("gauge_livesum_*.db"))
        assert {int(p.stem.rsplit("_", 1)[1]) for p in live} == set(per_process)  # one per worker, none else
    # Both workers stopped gracefully: their live gauges no longer count.
    assert not list(directory.glob("gauge_livesum_*.db"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_processes_end_when_their_supervisor_is_killed(
    pg_url: str, tmp_path: Path, gateway_key_files: tuple[Path, Path]
) -> None:
    """SIGKILL leaves uvicorn no chance to stop its workers: they end by themselves (gateway.supervision) instead
    of serving the port with nobody to stop them."""
    import signal

    key_file, cert_file = gateway_key_files
    data_dir = tmp_path / "var"
    directory = data_dir / "run" / "prometheus"
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_DATABASE_URL": pg_url,
           "GATEWAY_SIGNING_KEY_FILE": str(key_file), "GATEWAY_SIGNING_CERT_FILE": str(cert_file),
           "GATEWAY_LOG_LEVEL": "warning"}
    for name in ("GATEWAY_PORT", "GATEWAY_WORKERS", "PROMETHEUS_MULTIPROC_DIR", "GATEWAY_SUPERVISOR_PID"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    with serving(env, port, tmp_path, log, args=("--workers", "2", "--port", str(port))) as supervisor:
        asyncio.run(send_until_both_answered(f"http://127.0.0.1:{port}", directory))
        workers = set(answered_per_process(directory))
        assert len(workers) == 2
        assert supervisor.pid not in workers
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        survivors = [pid for pid in workers if _alive(pid)]
        for pid in survivors:  # do not leave them behind whatever the outcome
            os.kill(pid, signal.SIGKILL)
        assert survivors == [], f"workers {survivors} outlived their supervisor\n{log.read_text(errors='replace')}"
