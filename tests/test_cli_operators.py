"""The console's operator, token and ledger commands on the test database (in this process, and once as a real
`gateway` process), read back through the API: list, revoke and expire tokens and operators; `gateway ledger
query` with the API's filters."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from gateway.cli import app as cli_app

H41 = "000.00.00.H41"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _invoke(db_url: str, data_dir: Path, args: tuple[str, ...]) -> Ran:
    env = {"GATEWAY_DATABASE_URL": db_url, "GATEWAY_DATA_DIR": str(data_dir)}
    result = CliRunner().invoke(cli_app, list(args), env=env, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


async def gateway(db_url: str, data_dir: Path, *args: str, check: bool = True) -> Ran:
    """``gateway …`` in this process (fast); in a thread, since the command runs its own event loop."""
    ran = await asyncio.to_thread(_invoke, db_url, data_dir, args)
    if check:
        assert ran.returncode == 0, ran.stderr
    return ran


async def out(db_url: str, data_dir: Path, *args: str) -> str:
    return (await gateway(db_url, data_dir, *args)).stdout


def gateway_process(db_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``gateway …`` as the installed command runs it."""
    env = {**os.environ, "GATEWAY_DATABASE_URL": db_url, "GATEWAY_DATA_DIR": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def problem(proc: Ran) -> dict[str, Any]:
    assert proc.returncode == 1, proc.stdout
    found: dict[str, Any] = json.loads(proc.stderr.strip().splitlines()[-1])
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_cli_lists_and_revokes_operators_and_their_tokens(
    db_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    created = await gateway(db_url, tmp_path, "operator", "create", "Nguyễn Văn A", "--role", "admin",
                            "--expires-in-days", "30")
    first_line, admin_token = created.stdout.strip().splitlines()
    assert first_line.endswith("+07:00")
    assert ", expires 20" in first_line
    admin = bearer(admin_token)
    assert (await client.get("/v1/operators", headers=admin)).status_code == 200
    auditor = await out(db_url, tmp_path, "operator", "create", "kiểm toán", "--role", "auditor")
    auditor_token = auditor.strip().splitlines()[-1]

    operators = json.loads(await out(db_url, tmp_path, "operator", "list", "--json"))
    assert operators == (await client.get("/v1/operators", headers=admin)).json()["items"]
    assert [(o["name"], o["role"], o["active_tokens"]) for o in operators] == [
        ("Nguyễn Văn A", "admin", 1), ("kiểm toán", "auditor", 1)]
    table = await out(db_url, tmp_path, "operator", "list")
    assert "Nguyễn Văn A" in table
    assert "kiểm toán" in table

    # A second token for the auditor, listed (never the secret), then revoked from the console.
    extra = await gateway(db_url, tmp_path, "token", "create", "--operator", "kiểm toán", "--expires-in-days", "7")
    extra_id = extra.stdout.splitlines()[0].split("token id: ")[1].split(",")[0]
    extra_token = extra.stdout.strip().splitlines()[-1]
    assert (await client.get("/v1/agencies", headers=bearer(extra_token))).status_code == 200
    listed = json.loads(await out(db_url, tmp_path, "token", "list", "--operator", "kiểm toán", "--json"))
    assert [t["id"] for t in listed][1] == extra_id
    expires = datetime.fromisoformat(listed[1]["expires_at"])
    assert timedelta(days=6) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert extra_token not in json.dumps(listed)
    assert extra_id in await out(db_url, tmp_path, "token", "list", "--operator", "kiểm toán")
    await gateway(db_url, tmp_path, "token", "revoke", extra_id, "--operator", "kiểm toán")
    assert (await client.get("/v1/agencies", headers=bearer(extra_token))).status_code == 401
    assert (await client.get("/v1/agencies", headers=bearer(auditor_token))).status_code == 200

    # Revoking the admin from the console (no self-revocation rule there: the console is not that admin).
    await gateway(db_url, tmp_path, "operator", "revoke", "Nguyễn Văn A")
    assert (await client.get("/v1/operators", headers=admin)).status_code == 401
    after = json.loads(await out(db_url, tmp_path, "operator", "list", "--json"))
    assert after[0]["revoked_at"] is not None
    assert after[0]["active_tokens"] == 0
    assert problem(await gateway(db_url, tmp_path, "operator", "revoke", "nobody", check=False))["type"] == (
        "urn:gateway:problem:operator-not-found")
    assert problem(await gateway(db_url, tmp_path, "token", "create", "--operator", "Nguyễn Văn A", check=False)
                   )["type"] == "urn:gateway:problem:operator-revoked"


async def test_cli_agency_tokens_expire_list_and_revoke(
    db_url: str, tmp_path: Path, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await gateway(db_url, tmp_path, "agency", "add", H41, "--name", "UBND tỉnh Nghệ An", "--pull")
    plain = (await out(db_url, tmp_path, "token", "create", "--agency", H41)).strip().splitlines()
    expiring = await out(db_url, tmp_path, "token", "create", "--agency", H41, "--expires-in-days", "1")
    expiring_id = expiring.splitlines()[0].split("token id: ")[1].split(",")[0]
    listed = json.loads(await out(db_url, tmp_path, "token", "list", "--agency", H41, "--json"))
    api = (await client.get(f"/v1/agencies/{H41}/tokens", headers=admin_headers)).json()["items"]
    assert listed == api
    assert [t["expires_at"] is not None for t in listed] == [False, True]
    # `token revoke --agency` keeps working (the option before or after the id).
    plain_id = plain[0].removeprefix("token id: ")
    await gateway(db_url, tmp_path, "token", "revoke", "--agency", H41, plain_id)
    await gateway(db_url, tmp_path, "token", "revoke", expiring_id, "--agency", H41)
    states = [t["state"] for t in json.loads(await out(db_url, tmp_path, "token", "list", "--agency", H41, "--json"))]
    assert states == ["revoked", "revoked"]
    assert (await client.get("/v1/inbox", headers=bearer(plain[-1]))).status_code == 401
    # Exactly one owner; a positive number of days.
    for args in (("token", "list"), ("token", "create", "--agency", H41, "--operator", "admin"),
                 ("token", "revoke", plain_id)):
        assert problem(await gateway(db_url, tmp_path, *args, check=False))["type"] == (
            "urn:gateway:problem:request-invalid"), args
    bad_days = await gateway(db_url, tmp_path, "token", "create", "--agency", H41, "--expires-in-days", "0",
                             check=False)
    assert bad_days.returncode == 2
    unknown = await gateway(db_url, tmp_path, "token", "list", "--agency", "000.00.00.X99", check=False)
    assert problem(unknown)["type"] == "urn:gateway:problem:agency-not-found"


async def test_cli_ledger_query_prints_the_api_entries_as_json_lines(
    db_url: str, tmp_path: Path, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await gateway(db_url, tmp_path, "agency", "add", H41, "--name", "UBND tỉnh Nghệ An", "--pull")
    for _ in range(3):
        await gateway(db_url, tmp_path, "token", "create", "--agency", H41)
    api = (await client.get("/v1/ledger", params={"type": "token.issued", "agency": H41},
                            headers=admin_headers)).json()["items"]
    assert len(api) == 3
    printed = gateway_process(db_url, tmp_path, "ledger", "query", "--type", "token.issued", "--agency", H41)
    assert [json.loads(line) for line in printed.stdout.splitlines()] == api
    everything = [json.loads(line) for line in (await out(db_url, tmp_path, "ledger", "query")).splitlines()]
    assert [e["seq"] for e in everything] == sorted(e["seq"] for e in everything)
    assert {"agency.registered", "token.issued", "operator.created"} <= {e["type"] for e in everything}

    # --limit stops early and says where to continue; --after continues exactly there.
    first = await gateway(db_url, tmp_path, "ledger", "query", "--type", "token.issued", "--limit", "2")
    assert [json.loads(line)["seq"] for line in first.stdout.splitlines()] == [e["seq"] for e in api[:2]]
    assert f"--after {api[1]['seq']}" in first.stderr
    rest = await gateway(db_url, tmp_path, "ledger", "query", "--type", "token.issued", "--after",
                         str(api[1]["seq"]))
    assert [json.loads(line)["seq"] for line in rest.stdout.splitlines()] == [api[2]["seq"]]
    assert "--after" not in rest.stderr
    since = api[1]["recorded_at"]
    ranged = await gateway(db_url, tmp_path, "ledger", "query", "--type", "token.issued", "--from", since)
    assert [json.loads(line)["seq"] for line in ranged.stdout.splitlines()] == [e["seq"] for e in api[1:]]
    assert "token.issued" in await out(db_url, tmp_path, "ledger", "query", "--table")

    bad = await gateway(db_url, tmp_path, "ledger", "query", "--type", "no.such", check=False)
    assert (problem(bad)["type"], problem(bad)["field"]) == ("urn:gateway:problem:ledger-filter-invalid", "type")
    bad_from = await gateway(db_url, tmp_path, "ledger", "query", "--from", "hôm qua", check=False)
    assert problem(bad_from)["field"] == "from"
