"""The console and the API see the same register: CLI → API and API → CLI round-trip every field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from certs import make_keypair


def gateway(db_url: str, data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_DATABASE_URL": db_url, "GATEWAY_DATA_DIR": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


async def test_cli_registration_reads_back_through_the_api(
    db_url: str, tmp_path: Path, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    kp = make_keypair("Sở Nội vụ")
    pem_file = tmp_path / "cert.pem"
    pem_file.write_text(kp.cert_pem)
    gateway(db_url, tmp_path, "agency", "add", "000.00.00.H41", "--name", "UBND tỉnh Nghệ An", "--pull")
    out = gateway(db_url, tmp_path, "agency", "add", "002.00.00.H41", "--name", "Sở Nội vụ tỉnh Nghệ An",
                  "--push", "https://noivu.example/edxml", "--parent", "000.00.00.H41", "--alt-code", "SNV",
                  "--policy", "channel", "--suspended", "--cert", str(pem_file))
    printed = json.loads(out.stdout)
    api = (await client.get("/v1/agencies/002.00.00.H41", headers=admin_headers)).json()
    assert api == printed
    assert api["name"] == "Sở Nội vụ tỉnh Nghệ An"
    assert api["parent_code"] == "000.00.00.H41"
    assert api["alt_code"] == "SNV"
    assert api["delivery"] == {"mode": "push", "endpoint": "https://noivu.example/edxml"}
    assert api["signature_policy"] == "channel"
    assert api["active"] is False
    assert [c["sha256"] for c in api["certificates"]] == [kp.sha256]

    listing = gateway(db_url, tmp_path, "agency", "list").stdout
    assert "002.00.00.H41" in listing
    assert "suspended" in listing

    gateway(db_url, tmp_path, "agency", "cert-revoke", "002.00.00.H41", kp.sha256)
    gateway(db_url, tmp_path, "agency", "update", "002.00.00.H41", "--pull", "--active", "--no-parent")
    api = (await client.get("/v1/agencies/002.00.00.H41", headers=admin_headers)).json()
    assert api["delivery"] == {"mode": "pull"}
    assert api["active"] is True
    assert api["parent_code"] is None
    assert api["certificates"][0]["revoked_at"] is not None
    gateway(db_url, tmp_path, "agency", "suspend", "002.00.00.H41")
    assert (await client.get("/v1/agencies/002.00.00.H41", headers=admin_headers)).json()["active"] is False


async def test_cli_aliases_add_replace_and_clear(
    db_url: str, tmp_path: Path, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    url = "/v1/agencies/000.00.00.H41"
    out = gateway(db_url, tmp_path, "agency", "add", "000.00.00.H41", "--name", "UBND tỉnh Nghệ An", "--pull",
                  "--alias", "vxp.saas.03", "--alias", "28.22.H17")
    api = (await client.get(url, headers=admin_headers)).json()
    assert api == json.loads(out.stdout)
    assert api["aliases"] == ["28.22.H17", "vxp.saas.03"]
    gateway(db_url, tmp_path, "agency", "update", "000.00.00.H41", "--name", "UBND")
    assert (await client.get(url, headers=admin_headers)).json()["aliases"] == ["28.22.H17", "vxp.saas.03"]
    gateway(db_url, tmp_path, "agency", "update", "000.00.00.H41", "--alias", "H41.OLD")
    assert (await client.get(url, headers=admin_headers)).json()["aliases"] == ["H41.OLD"]
    gateway(db_url, tmp_path, "agency", "update", "000.00.00.H41", "--no-aliases")
    assert (await client.get(url, headers=admin_headers)).json()["aliases"] == []

    gateway(db_url, tmp_path, "agency", "update", "000.00.00.H41", "--alias", "28.22.H17")
    taken = gateway(db_url, tmp_path, "agency", "add", "000.00.00.H42", "--name", "x", "--pull",
                    "--alias", "28.22.H17", check=False)
    assert taken.returncode == 1
    problem = json.loads(taken.stderr.strip().splitlines()[-1])
    assert (problem["type"], problem["field"]) == ("urn:gateway:problem:agency-exists", "aliases")
    malformed = gateway(db_url, tmp_path, "agency", "update", "000.00.00.H41", "--alias", "ok",
                        "--alias", "28.22 H17", check=False)
    assert malformed.returncode == 1
    problem = json.loads(malformed.stderr.strip().splitlines()[-1])
    assert problem["type"] == "urn:gateway:problem:request-invalid"
    assert [e["field"] for e in problem["errors"]] == ["aliases.1"]
    both = gateway(db_url, tmp_path, "agency", "update", "000.00.00.H41", "--alias", "x", "--no-aliases",
                   check=False)
    assert json.loads(both.stderr.strip().splitlines()[-1])["field"] == "aliases"
    assert (await client.get(url, headers=admin_headers)).json()["aliases"] == ["28.22.H17"]
    assert (await client.get("/v1/agencies/000.00.00.H42", headers=admin_headers)).status_code == 404


async def test_api_registration_reads_back_through_the_cli(
    db_url: str, tmp_path: Path, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body: dict[str, Any] = {"code": "000.00.00.G22", "name": "Văn phòng Chính phủ",
                            "delivery": {"mode": "push", "endpoint": "http://127.0.0.1:9/x"}}
    created = (await client.post("/v1/agencies", json=body, headers=admin_headers)).json()
    kp = make_keypair()
    await client.post("/v1/agencies/000.00.00.G22/certificates", json={"pem": kp.cert_pem}, headers=admin_headers)
    shown = json.loads(gateway(db_url, tmp_path, "agency", "show", "000.00.00.G22").stdout)
    api = (await client.get("/v1/agencies/000.00.00.G22", headers=admin_headers)).json()
    assert shown == api
    assert shown["created_at"] == created["created_at"]


async def test_cli_tokens_and_operators_print_the_token_last(
    db_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    admin_token = gateway(db_url, tmp_path, "operator", "create", "Nguyễn Văn A", "--role", "admin")
    token = admin_token.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/agencies", headers=headers)).status_code == 200
    auditor = gateway(db_url, tmp_path, "operator", "create", "kiểm toán", "--role", "auditor")
    aud_headers = {"Authorization": f"Bearer {auditor.stdout.strip().splitlines()[-1]}"}
    assert (await client.get("/v1/agencies", headers=aud_headers)).status_code == 200
    r = await client.post("/v1/agencies", headers=aud_headers,
                          json={"code": "000.00.00.H41", "name": "x", "delivery": {"mode": "pull"}})
    assert r.status_code == 403

    gateway(db_url, tmp_path, "agency", "add", "000.00.00.H41", "--name", "UBND", "--pull")
    agency_token = gateway(db_url, tmp_path, "token", "create", "--agency", "000.00.00.H41").stdout
    assert agency_token.strip().splitlines()[-1].startswith("gw_")


def test_cli_refusals_print_a_problem_and_store_nothing(db_url: str, tmp_path: Path) -> None:
    bad = gateway(db_url, tmp_path, "agency", "add", "H41", "--name", "x", "--pull", check=False)
    assert bad.returncode == 1
    problem = json.loads(bad.stderr.strip().splitlines()[-1])
    assert problem["type"] == "urn:gateway:problem:agency-code-invalid"
    orphan = gateway(db_url, tmp_path, "agency", "add", "001.00.00.H41", "--name", "x", "--pull",
                     "--parent", "000.00.00.H41", check=False)
    assert json.loads(orphan.stderr.strip().splitlines()[-1])["type"] == "urn:gateway:problem:agency-parent-unknown"
    bad_pem = tmp_path / "bad.pem"
    bad_pem.write_text("garbage")
    with_bad_cert = gateway(db_url, tmp_path, "agency", "add", "000.00.00.H41", "--name", "x", "--pull",
                            "--cert", str(bad_pem), check=False)
    assert json.loads(with_bad_cert.stderr.strip().splitlines()[-1])["type"] == (
        "urn:gateway:problem:certificate-malformed")
    # The agency of the refused command (with its bad certificate) was not stored either.
    assert "000.00.00.H41" not in gateway(db_url, tmp_path, "agency", "list").stdout
    missing = gateway(db_url, tmp_path, "token", "create", "--agency", "000.00.00.H41", check=False)
    assert json.loads(missing.stderr.strip().splitlines()[-1])["type"] == "urn:gateway:problem:agency-not-found"
