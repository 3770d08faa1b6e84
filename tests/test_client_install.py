"""`pip install .` is the agency client and the pure edXML core, without the server (README "Installing").

Three proofs, from cheapest to most real:

- pyproject.toml's base ``dependencies`` name no server distribution, and neither does anything they pull
  in (the closure walked over the installed distributions' own metadata, offline);
- the client, its commands and the pure core import and work in a process where every module a client-only
  install would lack is refused by an import hook (the server's, and any other installed one outside that
  closure): an envelope built, signed and fully inspected, a push signature made by the server's signer
  verified, and the ``gateway`` script falling back to the agency commands;
- (slow, opt-in because it downloads) a real ``pip install .`` into a fresh venv: what pip installed, and
  its ``gateway`` script at work.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer.main
from cryptography.hazmat.primitives import serialization
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from certs import make_keypair
from gateway.cli import app as whole_app
from gateway.command import SERVER_COMMANDS, client_only_app
from gateway.delivery.push import gateway_headers
from gateway.signing import GatewayKey
from gw import PDF

ROOT = Path(__file__).resolve().parents[1]

#: what a client-only install must never bring (distribution names); the brief's list and their kin
SERVER_DISTRIBUTIONS = frozenset({
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "pydantic-settings",
    "structlog", "prometheus-client", "clamav-client", "limits", "pyhanko", "pyhanko-certvalidator",
})
#: the same as import names: always refused by the hook, and never even attempted by the library
SERVER_MODULES = frozenset({
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "pydantic_settings",
    "structlog", "prometheus_client", "clamav_client", "limits", "pyhanko", "pyhanko_certvalidator",
})
#: the gateway modules a client-only process may load
CLIENT_SIDE = re.compile(r"^gateway(\.client(\..+)?|\.envelope(\..+)?|\.problems|\.command)?$")

# Runs first in the child process: a meta-path finder that refuses the listed top-level modules, and
# records each attempt (a guarded ``try: import x`` would otherwise go unnoticed).
REFUSE_HOOK = """
import importlib.abc, json, os, sys
REFUSED = frozenset(json.loads(os.environ["GATEWAY_TEST_REFUSE"]))
ATTEMPTED = []
class RefuseServer(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in REFUSED:
            ATTEMPTED.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (refused: not in a client-only install)",
                                      name=name)
        return None
sys.meta_path.insert(0, RefuseServer())
"""

CLIENT_WORK = """
from datetime import UTC, datetime
from pathlib import Path

import gateway.client.cli
from gateway.client import AgencyKey, Attachment, DeliverySignatureInvalid, Organ, OutgoingDocument, verify_delivery
from gateway.client.compose import prepare_document
from gateway.envelope import TrustedCertificate, inspect_envelope
from gateway.envelope.push_signature import verify_push
import gateway.command

given = json.loads(Path(sys.argv[1]).read_text())
out = {}
# An agency builds and signs a document with a PDF; the pure core runs every intake check on it.
key = AgencyKey.load(Path(given["key"]), Path(given["cert"]))
prepared = prepare_document(
    OutgoingDocument(to=["000.00.00.H41"], subject="Về việc triển khai liên thông văn bản điện tử",
                     code_number="15", code_notation="VPCP-KSTT",
                     files=[Attachment.from_bytes("cong-van-15.pdf", Path(given["pdf"]).read_bytes())]),
    Organ("000.00.00.G22", "Văn phòng Chính phủ"), key)
envelope = inspect_envelope(prepared.xml, sender="000.00.00.G22", now=datetime.now(UTC),
                            certificates=[TrustedCertificate(key.certificate_sha256, key.certificate)])
out["signed"] = envelope.signed
out["attachments"] = [(a.name, a.file_type, a.sha256) for a in envelope.attachments]
out["prepared_sha256"] = [f.sha256 for f in prepared.files]
# A push recipient checks what the server's signer made.
from cryptography import x509
gateway_cert = x509.load_pem_x509_certificate(Path(given["gateway_cert"]).read_bytes())
body = Path(given["body"]).read_bytes()
signed = verify_delivery(given["headers"], body, gateway_cert, recipient="000.00.00.H41")
out["delivery"] = [signed.delivery_id, signed.recipient, signed.content_sha256]
out["pure_verify"] = verify_push(given["headers"], body, gateway_cert).document_id
try:
    verify_delivery(given["headers"], body + b" ", gateway_cert, recipient="000.00.00.H41")
    out["tampered"] = "accepted"
except DeliverySignatureInvalid as exc:
    out["tampered"] = str(exc)
try:
    import sqlalchemy  # the hook must be live: this is what a client-only install would answer
    out["hook"] = "not active"
except ModuleNotFoundError:
    out["hook"] = "active"
out["attempted"] = ATTEMPTED[:-1]  # all but the deliberate sqlalchemy probe just above
out["gateway_modules"] = sorted(m for m in sys.modules if m == "gateway" or m.startswith("gateway."))
print(json.dumps(out))
"""

SCRIPT = "from gateway.command import main\nmain()\n"


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _names(requirements: Iterable[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _closure(requirements: Iterable[str]) -> set[str]:
    """Every distribution ``requirements`` pull in, read from the installed distributions' metadata."""
    seen: set[tuple[str, str]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for raw in metadata.requires(name) or []:
                dep = Requirement(raw)
                if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                    todo.append(dep)
    return {name for name, _ in seen}


def _refused_modules() -> list[str]:
    """The top-level modules a client-only install would not have: the server's, and every installed one
    that no distribution of the base closure provides."""
    allowed = _closure(_pyproject()["project"]["dependencies"]) | {"gateway"}
    outside = {
        module for module, dists in metadata.packages_distributions().items()
        if module not in sys.stdlib_module_names and not any(canonicalize_name(d) in allowed for d in dists)
    }
    return sorted(outside | SERVER_MODULES)


def _client_only(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_TEST_REFUSE": json.dumps(_refused_modules())}
    return subprocess.run([sys.executable, "-c", REFUSE_HOOK + code, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def test_pip_install_dot_lists_no_server_distribution() -> None:
    project = _pyproject()["project"]
    base = _names(project["dependencies"])
    server = _names(project["optional-dependencies"]["server"])
    assert base.isdisjoint(SERVER_DISTRIBUTIONS), base & SERVER_DISTRIBUTIONS
    assert base.isdisjoint(server), "a dependency is either the client's (base) or the server's (extra)"
    assert {"fastapi", "uvicorn", "sqlalchemy", "alembic", "asyncpg", "pyhanko", "clamav-client"} <= server
    assert {"httpx", "cryptography", "lxml", "signxml"} <= base
    # `make run` / `make test` and the image install the server with it.
    assert "-e '.[server,test]'" in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --no-cache-dir '.[server]'" in (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_nothing_the_base_dependencies_pull_in_is_a_server_distribution() -> None:
    project = _pyproject()["project"]
    base = _closure(project["dependencies"])
    assert base.isdisjoint(SERVER_DISTRIBUTIONS), sorted(base & SERVER_DISTRIBUTIONS)
    # The walk sees through requirements: with the server extra, they all appear.
    assert _closure(project["optional-dependencies"]["server"]) >= SERVER_DISTRIBUTIONS


def test_the_client_and_the_pure_core_work_with_every_server_module_refused(tmp_path: Path) -> None:
    agency = make_keypair("Văn phòng Chính phủ")
    (tmp_path / "g22.key.pem").write_bytes(agency.key_pem)
    (tmp_path / "g22.cert.pem").write_text(agency.cert_pem, encoding="ascii")
    (tmp_path / "doc.pdf").write_bytes(PDF)
    # The server's own signer, as the push worker calls it.
    gw_pair = make_keypair("gateway", kind="rsa")
    gateway_key = GatewayKey(gw_pair.key, gw_pair.cert)
    body = b"<edXMLEnvelope>the bytes delivered</edXMLEnvelope>"
    headers = gateway_headers(
        delivery_id="0b6f6a55-8e3c-4c43-9a6f-2f7f0a0c1d11", document="a4b96bcc-4a08-4bc2-8288-97ffcaea9a12",
        kind="document", sender="000.00.00.G22", recipient="000.00.00.H41", sent_at=datetime.now(UTC),
        content_sha256=hashlib.sha256(body).hexdigest(), refers_to=None, key=gateway_key, now=datetime.now(UTC))
    (tmp_path / "body.xml").write_bytes(body)
    (tmp_path / "gateway.cert.pem").write_bytes(gw_pair.cert.public_bytes(serialization.Encoding.PEM))
    given = {"key": str(tmp_path / "g22.key.pem"), "cert": str(tmp_path / "g22.cert.pem"),
             "pdf": str(tmp_path / "doc.pdf"), "headers": headers, "body": str(tmp_path / "body.xml"),
             "gateway_cert": str(tmp_path / "gateway.cert.pem")}
    (tmp_path / "given.json").write_text(json.dumps(given), encoding="utf-8")

    proc = _client_only(CLIENT_WORK, str(tmp_path / "given.json"), cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["hook"] == "active"
    # Others may be tried and handled (typer probes for a `click` it no longer needs); the server's, never.
    tried = [m for m in out["attempted"] if m.partition(".")[0] in SERVER_MODULES]
    assert tried == [], "the client or the core tried to import a server module"
    strays = [m for m in out["gateway_modules"] if not CLIENT_SIDE.match(m)]
    assert strays == [], "the client imported the server's packages"
    assert out["signed"] is True
    assert out["attachments"] == [["cong-van-15.pdf", "pdf", out["prepared_sha256"][0]]]
    assert out["delivery"] == ["0b6f6a55-8e3c-4c43-9a6f-2f7f0a0c1d11", "000.00.00.H41",
                               headers["X-Gateway-Content-SHA256"]]
    assert out["pure_verify"] == "a4b96bcc-4a08-4bc2-8288-97ffcaea9a12"
    assert "differ" in out["tampered"]


def test_the_gateway_script_offers_the_agency_commands_without_the_server(tmp_path: Path) -> None:
    listed = _client_only(SCRIPT, "--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for command in ("send", "inbox", "fetch", "ack", "document", "status", "keys"):
        assert re.search(rf"│ {command}\s", listed.stdout), command
    assert "pip install 'gateway[server]'" in " ".join(listed.stdout.replace("│", " ").split())

    made = _client_only(SCRIPT, "keys", "generate", "--agency", "000.00.00.G22", "--out", str(tmp_path),
                        cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "000.00.00.G22.key.pem").exists()
    assert (tmp_path / "000.00.00.G22.cert.pem").exists()

    refused = _client_only(SCRIPT, "serve", "--port", "9", cwd=tmp_path)
    assert refused.returncode == 1
    assert "`gateway serve` is a server command" in refused.stderr
    assert "pip install 'gateway[server]'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_client_only_script_refuses_exactly_the_commands_only_the_server_has() -> None:
    def visible(app: typer.Typer) -> set[str]:
        group = typer.main.get_group(app)
        return {name for name, command in group.commands.items() if not command.hidden}

    client = client_only_app("sqlalchemy")
    assert visible(whole_app) - visible(client) == set(SERVER_COMMANDS)
    assert set(typer.main.get_group(client).commands) == visible(whole_app)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GATEWAY_TEST_INSTALL") != "1",
                    reason="downloads from the package index, and the suite downloads nothing; "
                           "GATEWAY_TEST_INSTALL=1 runs it")
def test_a_real_pip_install_dot_brings_no_server_distribution_and_its_gateway_script_works(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    installed = subprocess.run([*pip, "install", "--quiet", str(ROOT)], capture_output=True, text=True,
                               timeout=600, check=False, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    listing = subprocess.run([*pip, "list", "--format", "json"], capture_output=True, text=True, timeout=120,
                             check=True)
    names = {canonicalize_name(d["name"]) for d in json.loads(listing.stdout)}
    assert {"gateway", "httpx", "lxml", "signxml", "cryptography"} <= names
    assert names.isdisjoint(SERVER_DISTRIBUTIONS), sorted(names & SERVER_DISTRIBUTIONS)
    # What pip installed is what the offline walk over this venv's metadata predicts.
    assert names - {"pip", "setuptools"} == _closure(_pyproject()["project"]["dependencies"]) | {"gateway"}

    gateway = str(venv / "bin" / "gateway")
    made = subprocess.run([gateway, "keys", "generate", "--agency", "000.00.00.G22", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "000.00.00.G22.cert.pem").exists()
    refused = subprocess.run([gateway, "serve"], capture_output=True, text=True, timeout=120, check=False,
                             cwd=tmp_path)
    assert refused.returncode == 1
    assert "pip install 'gateway[server]'" in refused.stderr
    # The wheel carries the XSD the pure core validates against.
    schema = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "from gateway.envelope import schema_path; print(schema_path().is_file())"],
                            capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path)
    assert schema.stdout.strip() == "True"
