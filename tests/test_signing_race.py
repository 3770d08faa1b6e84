"""Several processes starting at once on an empty data directory (``uvicorn --workers N``) must all end up
with the one gateway key: a worker signing with a key other than the one on disk would sign receipts and
deliveries that nobody can verify against ``GET /v1/gateway/certificate``.

Each process is a separate interpreter. They import everything first, then wait on a start file, so that
they all call ``load_or_create`` within a millisecond or so of each other while RSA generation takes far
longer: without a lock between processes every one of them generates its own key.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

PROCESSES = 4

_CHILD = """
import sys, time
from pathlib import Path
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from gateway.config import Settings
from gateway.signing import load_or_create

data_dir, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
settings = Settings(data_dir=data_dir)
ready.touch()
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never told to start")
    time.sleep(0.001)
key = load_or_create(settings)
spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
matches = key.private_key.public_key().public_bytes(*spki) == key.certificate.public_key().public_bytes(*spki)
print(key.certificate.fingerprint(hashes.SHA256()).hex(), matches)
"""


def test_processes_starting_together_on_an_empty_data_dir_share_one_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(data_dir), str(tmp_path / f"ready-{n}"), str(go)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{n}").exists() for n in range(PROCESSES)):
            assert all(p.poll() is None for p in procs), "a process died before the start"
            assert time.monotonic() < deadline, "the processes never got ready"
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    reports = [out.split() for out, _ in outputs]
    assert all(matches == "True" for _, matches in reports), "a process holds a key that does not fit its certificate"
    fingerprints = {fingerprint for fingerprint, _ in reports}
    assert len(fingerprints) == 1, f"{len(fingerprints)} different keys among {PROCESSES} processes"

    keys_dir = data_dir / "keys"
    on_disk = x509.load_pem_x509_certificate((keys_dir / "gateway.cert.pem").read_bytes())
    assert on_disk.fingerprint(hashes.SHA256()).hex() == fingerprints.pop()
    assert sorted(p.name for p in keys_dir.glob("*.pem")) == ["gateway.cert.pem", "gateway.key.pem"]
    assert not [p for p in keys_dir.iterdir() if p.name.endswith(".tmp")], "a temporary file was left behind"
    assert stat.S_IMODE((keys_dir / "gateway.key.pem").stat().st_mode) == 0o600
