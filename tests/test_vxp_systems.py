"""VXP systems (the national axis SDK's system id and secret): created over the API and the console, the secret
shown once and stored only sealed, authentication of a call's system (its secret and the agencies it serves),
revocation from the next call on, and a replaced key or a moved ciphertext failing closed."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text, update

from gateway.config import Settings
from gateway.ledger.models import LedgerEntry
from gateway.vxp.models import VxpSystem
from gateway.vxp.secrets import SecretBox, SecretKeyUnusable, SecretUnreadable
from gateway.vxp.systems import VxpSystems, served_codes

PROBLEM = "application/problem+json"
# A province, one of its departments, a unit of that department (two levels under the province), a
# suspended department, and another province.
PROVINCE, DEPARTMENT, UNIT, SUSPENDED, OTHER = (
    "000.00.00.H41", "000.00.10.H41", "001.00.10.H41", "000.00.20.H41", "000.00.00.H47")


async def _agency(client: httpx.AsyncClient, headers: dict[str, str], code: str, parent: str | None = None,
                  *, active: bool = True) -> None:
    body = {"code": code, "name": f"Cơ quan {code}", "parent_code": parent, "delivery": {"mode": "pull"},
            "active": active}
    r = await client.post("/v1/agencies", json=body, headers=headers)
    assert r.status_code == 201, r.text


@pytest.fixture
async def province(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    await _agency(client, admin_headers, PROVINCE)
    await _agency(client, admin_headers, DEPARTMENT, PROVINCE)
    await _agency(client, admin_headers, UNIT, DEPARTMENT)
    await _agency(client, admin_headers, SUSPENDED, PROVINCE, active=False)
    await _agency(client, admin_headers, OTHER)


async def _create(client: httpx.AsyncClient, headers: dict[str, str], agency: str,
                  serves: str | None = None) -> dict[str, Any]:
    body = {"agency": agency} if serves is None else {"agency": agency, "serves": serves}
    r = await client.post("/v1/vxp/systems", json=body, headers=headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def _systems(app: FastAPI) -> VxpSystems:
    systems: VxpSystems = app.state.vxp_systems
    return systems


async def _ledger(app: FastAPI) -> list[LedgerEntry]:
    async with app.state.db.read() as session:
        return list((await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq))).scalars())


async def test_create_shows_the_secret_once_and_the_list_never(
    client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str], province: None
) -> None:
    created = await _create(client, admin_headers, PROVINCE)
    assert set(created) == {"system_id", "secret", "agency", "serves"}
    assert created["agency"] == PROVINCE
    assert created["serves"] == "subtree"  # the default
    assert created["system_id"].startswith("vxp-")
    assert len(created["system_id"]) == 20
    assert len(created["secret"]) >= 43
    other = await _create(client, admin_headers, DEPARTMENT, "agency")
    assert other["system_id"] != created["system_id"]
    assert other["secret"] != created["secret"]

    for headers in (admin_headers, auditor_headers):
        listed = await client.get("/v1/vxp/systems", headers=headers)
        assert listed.status_code == 200, listed.text
        assert created["secret"] not in listed.text
        assert other["secret"] not in listed.text
        items = listed.json()["items"]
        assert {i["system_id"]: (i["agency"], i["serves"]) for i in items} == {
            created["system_id"]: (PROVINCE, "subtree"), other["system_id"]: (DEPARTMENT, "agency")}
        for item in items:
            assert set(item) == {"system_id", "agency", "serves", "created_at", "revoked_at"}
            assert item["revoked_at"] is None


async def test_the_secret_is_stored_sealed_and_never_ledgered(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, province: None
) -> None:
    created = await _create(client, admin_headers, PROVINCE)
    async with app.state.db.read() as session:
        rows = (await session.execute(text("SELECT * FROM vxp_systems"))).all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert created["system_id"] in stored
    assert created["secret"] not in stored
    entries = await _ledger(app)
    assert all(created["secret"] not in " ".join(str(v) for v in vars(e).values()) for e in entries)
    made = [e for e in entries if e.type == "vxp_system.created"]
    assert [(e.actor, e.sender, json.loads(e.details)) for e in made] == [
        ("operator:admin", PROVINCE, {"system_id": created["system_id"], "serves": "subtree"})]

    key_file = settings.data_dir / "keys" / "vxp-secrets.key"
    assert key_file.stat().st_size == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_authenticate_returns_the_secret_and_the_agencies_served(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], province: None
) -> None:
    whole = await _create(client, admin_headers, PROVINCE)
    department = await _create(client, admin_headers, DEPARTMENT, "subtree")
    alone = await _create(client, admin_headers, DEPARTMENT, "agency")

    found = await _systems(app).authenticate(whole["system_id"])
    assert found is not None
    assert (found.system_id, found.agency, found.serves, found.secret) == (
        whole["system_id"], PROVINCE, "subtree", whole["secret"])
    # Two levels down, and the suspended department too (the caller decides what it may do); not the other
    # province.
    assert found.served == frozenset({PROVINCE, DEPARTMENT, UNIT, SUSPENDED})
    assert whole["secret"] not in repr(found)

    below = await _systems(app).authenticate(department["system_id"])
    assert below is not None
    assert below.served == frozenset({DEPARTMENT, UNIT})
    single = await _systems(app).authenticate(alone["system_id"])
    assert single is not None
    assert (single.serves, single.secret, single.served) == ("agency", alone["secret"], frozenset({DEPARTMENT}))

    for unknown in ("vxp-nope", "", "x" * 65, whole["system_id"] + "\n", whole["system_id"][:-1] + "\x00",
                    "vxp-" + "a" * 16):
        assert await _systems(app).authenticate(unknown) is None


def test_the_subtree_is_walked_from_parent_links_alone() -> None:
    links = [("a", None), ("b", "a"), ("c", "b"), ("d", "c"), ("e", None), ("f", "e"), ("x", "y"), ("y", "x")]
    assert served_codes("a", "subtree", links) == frozenset("abcd")
    assert served_codes("b", "subtree", links) == frozenset("bcd")
    assert served_codes("b", "agency", links) == frozenset("b")
    assert served_codes("x", "subtree", links) == frozenset("xy")  # a cycle ends


async def test_a_revoked_system_is_refused_from_the_next_call_and_kept_on_record(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], province: None
) -> None:
    created = await _create(client, admin_headers, PROVINCE)
    system_id = created["system_id"]
    assert await _systems(app).authenticate(system_id) is not None
    r = await client.delete(f"/v1/vxp/systems/{system_id}", headers=admin_headers)
    assert r.status_code == 204, r.text
    assert await _systems(app).authenticate(system_id) is None
    listed = (await client.get("/v1/vxp/systems", headers=admin_headers)).json()["items"]
    assert [i["system_id"] for i in listed] == [system_id]
    assert listed[0]["revoked_at"] is not None
    again = await client.delete(f"/v1/vxp/systems/{system_id}", headers=admin_headers)
    assert again.status_code == 204
    revoked = [e for e in await _ledger(app) if e.type == "vxp_system.revoked"]
    assert [(e.actor, e.sender, json.loads(e.details)) for e in revoked] == [
        ("operator:admin", PROVINCE, {"system_id": system_id})]

    for missing_id in ("vxp-nope", "vxp-" + "a" * 16, "x" * 300, "vxp-%00" + "a" * 14):
        missing = await client.delete(f"/v1/vxp/systems/{missing_id}", headers=admin_headers)
        assert missing.status_code == 404, missing_id
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["type"] == "urn:gateway:problem:vxp-system-not-found"


async def test_a_replaced_key_file_fails_closed_and_says_so_without_the_secret(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, province: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    created = await _create(client, admin_headers, PROVINCE)
    key_file = settings.vxp_secrets_key_path
    assert await VxpSystems(app.state.db, SecretBox(key_file)).authenticate(created["system_id"]) is not None
    capsys.readouterr()

    key_file.write_bytes(os.urandom(32))  # another key, e.g. a restore that mixed two backups
    assert await VxpSystems(app.state.db, SecretBox(key_file)).authenticate(created["system_id"]) is None
    logged = capsys.readouterr().out
    assert "vxp system refused: its secret does not open" in logged
    assert created["system_id"] in logged
    assert created["secret"] not in logged

    key_file.write_bytes(os.urandom(16))  # damaged: not an AES-256 key
    assert await VxpSystems(app.state.db, SecretBox(key_file)).authenticate(created["system_id"]) is None
    assert "holds 16 bytes, not 32" in capsys.readouterr().out


async def test_a_ciphertext_moved_to_another_system_does_not_open(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], province: None
) -> None:
    mine = await _create(client, admin_headers, OTHER)
    victim = await _create(client, admin_headers, PROVINCE)
    async with app.state.db.transaction() as session:
        sealed = (await session.execute(select(VxpSystem.secret_ciphertext)
                                        .where(VxpSystem.system_id == mine["system_id"]))).scalar_one()
        await session.execute(update(VxpSystem).where(VxpSystem.system_id == victim["system_id"])
                              .values(secret_ciphertext=sealed))
    assert await _systems(app).authenticate(victim["system_id"]) is None
    still = await _systems(app).authenticate(mine["system_id"])
    assert still is not None
    assert still.secret == mine["secret"]


def test_a_sealed_secret_opens_only_for_its_system_and_unaltered(tmp_path: Path) -> None:
    box = SecretBox(tmp_path / "keys" / "k", create=True)
    sealed = box.seal("vxp-a", "bí mật")
    assert box.open("vxp-a", sealed) == "bí mật"
    assert box.seal("vxp-a", "bí mật") != sealed  # a fresh nonce each time
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 1
    altered = base64.b64encode(bytes(raw)).decode()
    for system_id, text_ in (("vxp-b", sealed), ("vxp-a", altered), ("vxp-a", "not base64!"), ("vxp-a", "AAAA")):
        with pytest.raises(SecretUnreadable):
            box.open(system_id, text_)
    assert "bí mật" not in repr(box)


def test_a_configured_key_file_is_used_and_never_created(tmp_path: Path) -> None:
    configured = tmp_path / "elsewhere" / "vxp.key"
    settings = Settings(data_dir=tmp_path / "var", vxp_secrets_key_file=configured)
    with pytest.raises(SecretKeyUnusable):
        SecretBox.from_settings(settings).seal("vxp-a", "s")
    assert not configured.exists()
    configured.parent.mkdir()
    configured.write_bytes(os.urandom(32))
    sealed = SecretBox.from_settings(settings).seal("vxp-a", "s")
    assert SecretBox(configured).open("vxp-a", sealed) == "s"
    assert not (tmp_path / "var" / "keys").exists()


async def test_only_an_admin_creates_or_revokes(
    client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str], province: None
) -> None:
    created = await _create(client, admin_headers, PROVINCE)
    refused = await client.post("/v1/vxp/systems", json={"agency": PROVINCE}, headers=auditor_headers)
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:gateway:problem:forbidden"
    r = await client.delete(f"/v1/vxp/systems/{created['system_id']}", headers=auditor_headers)
    assert r.status_code == 403
    assert (await client.post("/v1/vxp/systems", json={"agency": PROVINCE})).status_code == 401
    assert (await client.get("/v1/vxp/systems")).status_code == 401
    listed = (await client.get("/v1/vxp/systems", headers=admin_headers)).json()["items"]
    assert len(listed) == 1
    assert listed[0]["revoked_at"] is None


async def test_an_unknown_agency_or_scope_is_refused_and_nothing_stored(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], province: None
) -> None:
    before = len(await _ledger(app))
    unknown = await client.post("/v1/vxp/systems", json={"agency": "000.00.00.H99"}, headers=admin_headers)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM
    assert unknown.json()["type"] == "urn:gateway:problem:agency-not-found"
    assert unknown.json()["field"] == "agency"
    for body in ({"agency": PROVINCE, "serves": "province"}, {"serves": "agency"},
                 {"agency": PROVINCE, "secret": "chosen"}):
        bad = await client.post("/v1/vxp/systems", json=body, headers=admin_headers)
        assert bad.status_code == 422, body
        assert bad.json()["type"] == "urn:gateway:problem:request-invalid"
    async with app.state.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(VxpSystem))).scalar_one() == 0
    assert len(await _ledger(app)) == before


def _gateway(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_DATABASE_URL": settings.effective_database_url,
           "GATEWAY_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


async def test_cli_creates_lists_and_revokes_with_the_json_alone_on_the_last_line(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, province: None
) -> None:
    out = _gateway(settings, "vxp", "system", "create", "--agency", PROVINCE).stdout
    created = json.loads(out.strip().splitlines()[-1])
    assert set(created) == {"system_id", "secret", "agency", "serves"}
    assert (created["agency"], created["serves"]) == (PROVINCE, "subtree")
    alone = json.loads(_gateway(settings, "vxp", "system", "create", "--agency", UNIT, "--serves", "agency")
                       .stdout.strip().splitlines()[-1])
    assert alone["serves"] == "agency"

    # The server opens what the console sealed: one key file in the data directory.
    found = await _systems(app).authenticate(created["system_id"])
    assert found is not None
    assert found.secret == created["secret"]
    assert found.served == frozenset({PROVINCE, DEPARTMENT, UNIT, SUSPENDED})

    listing = _gateway(settings, "vxp", "system", "list").stdout
    assert created["secret"] not in listing
    assert json.loads(listing) == (await client.get("/v1/vxp/systems", headers=admin_headers)).json()["items"]

    revoked = json.loads(_gateway(settings, "vxp", "system", "revoke", created["system_id"]).stdout)
    assert revoked["revoked_at"] is not None
    assert await _systems(app).authenticate(created["system_id"]) is None
    console = [e for e in await _ledger(app) if e.type.startswith("vxp_system.")]
    assert [e.type for e in console] == ["vxp_system.created", "vxp_system.created", "vxp_system.revoked"]
    assert all(e.actor.startswith("console:") for e in console)

    bad = _gateway(settings, "vxp", "system", "create", "--agency", "000.00.00.H99", check=False)
    assert bad.returncode == 1
    assert json.loads(bad.stderr.strip().splitlines()[-1])["type"] == "urn:gateway:problem:agency-not-found"
    bad = _gateway(settings, "vxp", "system", "create", "--agency", PROVINCE, "--serves", "all", check=False)
    assert bad.returncode == 1
    assert json.loads(bad.stderr.strip().splitlines()[-1])["type"] == "urn:gateway:problem:request-invalid"
    missing = _gateway(settings, "vxp", "system", "revoke", "vxp-nope", check=False)
    assert json.loads(missing.stderr.strip().splitlines()[-1])["type"] == "urn:gateway:problem:vxp-system-not-found"
