"""``gateway demo --federation`` as a newcomer runs it: a subprocess, its exit code, and the facts it prints about
a document crossing the border between a province hub and its upstream axis, both ways, with its statuses."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

G22, H41 = "000.00.00.G22", "000.00.01.H41"
INSTANT = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+07:00)"
UUID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "demo", "--federation", *args], capture_output=True,
                          text=True, timeout=180, check=False)


def _one(pattern: str, text: str) -> re.Match[str]:
    found = list(re.finditer(pattern, text, re.MULTILINE))
    assert len(found) == 1, f"{pattern!r} found {len(found)} times in:\n{text}"
    return found[0]


def _at(pattern: str, text: str) -> datetime:
    return datetime.fromisoformat(_one(pattern, text)[1])


def test_the_federation_demo_carries_a_document_and_its_statuses_across_the_border_both_ways() -> None:
    proc = _demo("--timeout", "120")
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"

    # Two gateways; the province hub's VXP system on the upstream; the upstream's register imported.
    up_base = _one(r"^\[1\] upstream gateway +(http://127\.0\.0\.1:\d+) +trục quốc gia \(mô phỏng\)", out)[1]
    system = _one(rf"^    VXP system +(vxp-\S+) for {H41} \(serves its subtree", out)[1]
    assert system
    _one(rf"^\[2\] province gateway +http://127\.0\.0\.1:\d+ .*upstream {re.escape(up_base)}/vxp ", out)
    _one(r"^    gateway upstream agencies sync: register synced from .*: 1 added,", out)
    _one(rf"^    imported +{G22} +Văn phòng Chính phủ +delivery mode upstream$", out)

    # Outbound: the signed receipt on the province hub, the forward with the upstream's DocId and hand-off instant.
    _one(rf"^\[3\] sent +{H41} → {G22} on the province hub: Công văn 27/SNV-VP with a PDF", out)
    _one(r"^    receipt verified +signed by the gateway \(certificate sha256 [0-9a-f]{64}\)", out)
    _one(rf"^    recipients +{G22}$", out)
    _one(r"^    attachment +\S+\.pdf +\d+ bytes +sha256 [0-9a-f]{64}$", out)
    sent_at = _at(rf"^    sent at +{INSTANT}", out)
    forward = _one(rf"^    {G22} +mode upstream, state forwarded: upstream DocId {UUID}, handed off at {INSTANT} "
                   r"\(sendEdoc\)$", out)
    handed_off = datetime.fromisoformat(forward[2])
    assert sent_at <= handed_off

    # Received upstream, and the same instant learned back on the province hub (to the millisecond).
    pulled = _at(rf"^\[4\] received upstream {G22} pull on the upstream: .*PDF sha256 matches the receipt\) → "
                 rf"ack done = received at {INSTANT}$", out)
    learned = _at(rf"^    {G22} +on the province hub: delivered, received at {INSTANT} as the upstream reported it",
                  out)
    assert handed_off <= pulled
    assert timedelta(0) <= pulled - learned < timedelta(milliseconds=1)

    # The statuses back to the sender on the province hub: the upstream's automatic 01, G22's own 03.
    _one(rf"^    01 Đã đến +from {G22} .*\(automatic, signed by the upstream gateway\)$", out)
    _one(rf"^    03 Đã tiếp nhận +from {G22} .*\(signed by {G22}\): Đã vào sổ", out)
    _one(rf"^    where it is +{G22} +upstream +delivered +received at {INSTANT} +latest status 03 ", out)

    # The reverse: accepted on the province hub from the upstream, received instants on both sides, statuses back.
    _one(rf"^\[6\] the reverse +{G22} → {H41} on the upstream: Công văn 88/VPCP-TCCV", out)
    _one(rf"^    province hub +fetched and accepted as {UUID} \(upstream DocId {UUID}\), then acknowledged upstream$",
         out)
    upstream_received = _at(rf"^    upstream +{H41} received at {INSTANT} there", out)
    province_received = _at(rf"^    {H41} +pull on the province hub: .* ack done = received at {INSTANT}$", out)
    assert upstream_received < province_received
    _one(rf"^    01 Đã đến +from {H41} .*\(automatic, signed by the upstream gateway\)$", out)
    _one(rf"^    03 Đã tiếp nhận +from {H41} .*\(signed by {H41}\): Đã vào sổ", out)
    _one(rf"^    where it is +{H41} +pull +delivered +received at {INSTANT} +latest status 03 ", out)

    # Both ledgers recomputed from genesis; nothing left behind.
    _one(r"^\[7\] ledgers +upstream: +verified ok, \d+ entries recomputed from genesis", out)
    _one(r"^ +province: +verified ok, \d+ entries recomputed from genesis", out)
    _one(r"^demo finished in [\d.]+ s: every step verified", out)
    assert not Path(_one(r"^work directory +(\S+)$", out)[1]).exists()


def test_the_federation_demo_names_the_step_it_gave_up_on_with_both_logs() -> None:
    proc = _demo("--timeout", "0.5")
    assert proc.returncode == 1
    assert re.search(r"^demo failed at step \[1\] upstream gateway after [\d.]+ s \(limit 0\.5 s\): .*timed out "
                     "waiting for", proc.stderr, re.MULTILINE), proc.stderr
    assert "the upstream gateway's log" in proc.stderr
    assert not Path(_one(r"^work directory +(\S+)$", proc.stdout)[1]).exists()
