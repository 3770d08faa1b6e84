"""``gateway demo`` as a newcomer runs it: a subprocess, its exit code, and the facts it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

G22, H41, H42 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H42"
INSTANT = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+07:00)"


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "demo", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def _one(pattern: str, text: str) -> re.Match[str]:
    found = list(re.finditer(pattern, text, re.MULTILINE))
    assert len(found) == 1, f"{pattern!r} found {len(found)} times in:\n{text}"
    return found[0]


def test_the_demo_runs_the_whole_flow_and_prints_what_the_gateway_proves() -> None:
    proc = _demo("--timeout", "90")
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"

    # The signed receipt, verified, for a document to both recipients with its PDF.
    assert _one(r"^    receipt verified +signed by the gateway \(certificate sha256 ([0-9a-f]{64})\)", out)
    assert _one(rf"^    recipients +{H41}, {H42}$", out)
    assert _one(r"^    attachment +\S+\.pdf +\d+ bytes +sha256 [0-9a-f]{64}$", out)
    assert _one(r"^    ledger +entry #\d+ +hash [0-9a-f]{64}$", out)
    sent_at = datetime.fromisoformat(_one(rf"^    sent at +{INSTANT}", out)[1])

    # Each delivery with its received instant, after the sent instant.
    pushed = datetime.fromisoformat(_one(rf"^    {H41} push .*gateway signature verified.* received at {INSTANT}$",
                                         out)[1])
    pulled = datetime.fromisoformat(_one(rf"^    {H42} pull .*ack done = received at {INSTANT}$", out)[1])
    assert sent_at < pushed
    assert sent_at < pulled

    # The statuses flowing back: the gateway's automatic 01 for each, and each recipient's own 03.
    for code in (H41, H42):
        assert _one(rf"^    01 Đã đến +from {code} .*\(automatic, signed by the gateway\)$", out)
        assert _one(rf"^    03 Đã tiếp nhận +from {code} .*\(signed by the recipient\): Đã vào sổ", out)
    # Where the document is, as the sender sees it.
    assert _one(rf"^    {H41} +push +delivered +received at {INSTANT} +latest status 03$", out)
    assert _one(rf"^    {H42} +pull +delivered +received at {INSTANT} +latest status 03$", out)

    # The ledger recomputed from genesis.
    assert _one(r"^\[8\] ledger +verified: ok, \d+ entries recomputed from genesis", out)
    assert _one(r"^demo finished in [\d.]+ s: every step verified", out)
    workdir = Path(_one(r"^work directory +(\S+)$", out)[1])
    assert not workdir.exists()


def test_the_demo_gives_up_clearly_when_its_time_runs_out() -> None:
    proc = _demo("--timeout", "0.5")
    assert proc.returncode == 1
    assert re.search(r"^demo failed after [\d.]+ s \(limit 0\.5 s\): .*timed out waiting for", proc.stderr,
                     re.MULTILINE), proc.stderr
    workdir = Path(_one(r"^work directory +(\S+)$", proc.stdout)[1])
    assert not workdir.exists()
