"""The upstream axis's register imported into the local one (issue 15, the register part), and the guard that
keeps a document for an upstream agency from being accepted and left undelivered.

The upstream is a real second gateway: ``gateway serve`` on 127.0.0.1 with its own data directory and SQLite
database (bounded: 60 s to be ready), its register and its VXP system made with its CLI as an operator would.
The sync runs as the local operator runs it (``gateway upstream agencies sync``, a subprocess configured by
``GATEWAY_UPSTREAM_*``) on the local database (both databases), and the local register is read back through
the admin API. How the three lists are merged is also checked on lists shaped like the national axis's
(numeric ids, rows without a valid code), through the real client over a scripted transport.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gateway.agency.models import Agency as AgencyRow
from gateway.config import Settings
from gateway.ledger.models import LedgerEntry
from gateway.upstream.client import SynchronizedUnit, UpstreamAgency, UpstreamAgencyQd20, UpstreamClient
from gateway.upstream.sync import UpstreamRegister, UpstreamRegisterSync, merge, plan
from gw import Agency, last_entry, only_ledger_grew, register, stored, submit
from pg import free_port
from real_processes import gateway_cli, serving

PROBLEM = "application/problem+json"
H41 = "000.00.00.H41"  # the province: registered locally, and known upstream as well
G22 = "000.00.00.G22"  # the Government Office, upstream only, with its units below
VHC, KSTT, VTH, VPL = "000.00.01.G22", "000.00.02.G22", "000.00.03.G22", "000.00.04.G22"
B01 = "000.00.00.B01"


def _env(**extra: str) -> dict[str, str]:
    """The environment of a child process: ours without any GATEWAY_UPSTREAM_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_UPSTREAM_")}
    env.update(extra)
    return env


@dataclass
class Upstream:
    """A second gateway serving its /vxp face, and its own console."""

    base: str
    env: dict[str, str]

    @property
    def vxp(self) -> str:
        return f"{self.base}/vxp"

    def cli(self, *args: str) -> str:
        return gateway_cli(self.env, *args)


@pytest.fixture
def upstream(tmp_path: Path, gateway_key_files: tuple[Path, Path]) -> Iterator[Upstream]:
    root = tmp_path / "upstream"
    root.mkdir()
    port = free_port()
    key_file, cert_file = gateway_key_files
    env = _env(GATEWAY_DATA_DIR=str(root), GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{root / 'gateway.sqlite3'}",
               GATEWAY_PORT=str(port), GATEWAY_RUN_WORKERS="false", GATEWAY_SIGNING_KEY_FILE=str(key_file),
               GATEWAY_SIGNING_CERT_FILE=str(cert_file), GATEWAY_LOG_LEVEL="warning")
    with serving(env, port, root, root / "serve.log"):
        yield Upstream(f"http://127.0.0.1:{port}", env)


def _sync(settings: Settings, **upstream: str) -> subprocess.CompletedProcess[str]:
    """``gateway upstream agencies sync`` on the local database, with GATEWAY_UPSTREAM_<KEY> = each of
    ``upstream``."""
    env = _env(GATEWAY_DATA_DIR=str(settings.data_dir), GATEWAY_DATABASE_URL=settings.effective_database_url,
               GATEWAY_LOG_LEVEL="warning",
               **{f"GATEWAY_UPSTREAM_{k.upper()}": v for k, v in upstream.items()})
    return subprocess.run([sys.executable, "-m", "gateway", "upstream", "agencies", "sync"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _summary(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr
    summary: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return summary


async def _register_of(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = await client.get("/v1/agencies", headers=admin)
    assert r.status_code == 200, r.text
    return {a["code"]: a for a in r.json()["items"]}


async def _ledger(app: FastAPI, type_: str) -> list[LedgerEntry]:
    async with app.state.db.read() as session:
        rows = await session.execute(select(LedgerEntry).where(LedgerEntry.type == type_).order_by(LedgerEntry.seq))
        return list(rows.scalars())


def _pick(agency: dict[str, Any]) -> dict[str, Any]:
    return {k: agency[k] for k in ("name", "parent_code", "alt_code", "aliases", "delivery", "source", "active")}


def _upstream_agency(**over: Any) -> dict[str, Any]:
    return {"delivery": {"mode": "upstream"}, "source": "upstream", "active": True, "parent_code": None,
            "alt_code": None, "aliases": [], **over}


# ------------------------------------------------------------------------------------- the real upstream


async def test_the_register_is_imported_from_a_real_upstream_gateway_refreshed_and_never_touches_a_local_agency(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings,
    upstream: Upstream, tmp_path: Path,
) -> None:
    # The local register: the province, also known by its old-format code.
    h41 = await register(client, admin_headers, H41, "UBND tỉnh Nghệ An (sổ tỉnh)", aliases=["28.22.H17"])
    local_h41 = (await client.get(f"/v1/agencies/{H41}", headers=admin_headers)).json()
    # The upstream's register: the Government Office and its units (one with a QĐ 20 code, one with an alias,
    # one suspended), a ministry claiming the province's alias, and the province itself.
    upstream.cli("agency", "add", G22, "--name", "Văn phòng Chính phủ", "--pull")
    upstream.cli("agency", "add", VHC, "--name", "Vụ Hành chính", "--pull", "--parent", G22, "--alt-code", "G22.VHC")
    upstream.cli("agency", "add", KSTT, "--name", "Cục Kiểm soát thủ tục hành chính", "--pull", "--parent", G22,
                 "--alias", "01.02.G22")
    upstream.cli("agency", "add", VTH, "--name", "Vụ Tổng hợp", "--pull", "--parent", G22, "--suspended")
    upstream.cli("agency", "add", B01, "--name", "Bộ Nội vụ", "--pull", "--alias", "28.22.H17")
    upstream.cli("agency", "add", H41, "--name", "UBND tỉnh Nghệ An", "--pull")
    system = json.loads(upstream.cli("vxp", "system", "create", "--agency", H41).strip().splitlines()[-1])
    credentials = {"url": upstream.vxp, "system_id": system["system_id"], "secret": system["secret"]}

    # 1. The first sync imports every upstream agency but the local one.
    out = _sync(settings, **credentials)
    summary = _summary(out)
    assert system["secret"] not in out.stdout + out.stderr
    assert (summary["added"], summary["updated"], summary["deactivated"], summary["skipped"]) == (5, 0, 0, 1)
    assert sorted(summary["codes"]["added"]) == sorted([G22, VHC, KSTT, VTH, B01])
    added = summary["codes"]["added"]
    assert added.index(G22) < min(added.index(VHC), added.index(KSTT), added.index(VTH))  # parents first
    assert summary["skipped_codes"] == [{"code": H41, "reason": "local-agency"}]
    assert summary["dropped_names"] == [{"code": B01, "field": "aliases", "value": "28.22.H17",
                                         "reason": "held-locally"}]
    assert summary["upstream"] == upstream.vxp
    assert summary["system_id"] == system["system_id"]
    agencies = await _register_of(client, admin_headers)
    assert agencies[H41] == local_h41  # never touched, not even its updated_at
    assert {code: _pick(a) for code, a in agencies.items() if code != H41} == {
        G22: _upstream_agency(name="Văn phòng Chính phủ"),
        VHC: _upstream_agency(name="Vụ Hành chính", parent_code=G22, alt_code="G22.VHC"),
        KSTT: _upstream_agency(name="Cục Kiểm soát thủ tục hành chính", parent_code=G22, aliases=["01.02.G22"]),
        VTH: _upstream_agency(name="Vụ Tổng hợp", parent_code=G22, active=False),
        B01: _upstream_agency(name="Bộ Nội vụ"),
    }
    assert all(agencies[c]["synced_at"] is not None and agencies[c]["certificates"] == []
               for c in (G22, VHC, KSTT, VTH, B01))
    assert local_h41["source"] == "local"
    assert local_h41["synced_at"] is None
    entries = await _ledger(app, "upstream.agencies_synced")
    assert len(entries) == 1
    assert entries[0].actor.startswith("console:")
    assert json.loads(entries[0].details) == summary
    assert system["secret"] not in entries[0].details

    # 2. The guard: without an upstream configured, a document to an upstream agency is refused, by code or by
    # alias, even beside a local one.
    for to, refused in (([VHC], [VHC]), ([H41, "01.02.G22"], [KSTT])):
        organs = [Agency(code, "Cơ quan nhận", h41.keys) for code in to]
        before = await stored(app)
        r = await submit(client, h41, h41.envelope(*organs, sign_it=True))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["type"] == "urn:gateway:problem:recipient-upstream-not-forwarded"
        assert problem["recipients"] == refused
        assert "no upstream is configured" in problem["detail"]
        assert only_ledger_grew(before, await stored(app))
        entry = await last_entry(app)
        assert entry.type == "envelope.refused"
        assert json.loads(entry.details)["rule"] == "recipient-upstream-not-forwarded"

    # 3. Refreshed: a name changed, a ministry suspended (this gateway never deletes: it lists it deleted), a
    # unit activated, a unit added. The secret from a file this time.
    upstream.cli("agency", "update", KSTT, "--name", "Cục Kiểm soát TTHC")
    upstream.cli("agency", "suspend", B01)
    upstream.cli("agency", "activate", VTH)
    upstream.cli("agency", "add", VPL, "--name", "Vụ Pháp luật", "--pull", "--parent", G22)
    secret_file = tmp_path / "upstream.secret"
    secret_file.write_text(system["secret"] + "\n")
    summary = _summary(_sync(settings, url=upstream.vxp, system_id=system["system_id"],
                             secret_file=str(secret_file)))
    assert summary["codes"] == {"added": [VPL], "updated": [KSTT, VTH], "deactivated": [B01]}
    assert (summary["unchanged"], summary["skipped_codes"]) == (2, [{"code": H41, "reason": "local-agency"}])
    agencies = await _register_of(client, admin_headers)
    assert agencies[H41] == local_h41
    assert (agencies[KSTT]["name"], agencies[KSTT]["aliases"]) == ("Cục Kiểm soát TTHC", ["01.02.G22"])
    assert (agencies[B01]["active"], agencies[VTH]["active"]) == (False, True)
    assert _pick(agencies[VPL]) == _upstream_agency(name="Vụ Pháp luật", parent_code=G22)
    assert agencies[B01]["synced_at"] is not None  # still listed (as deleted)

    # 4. An operator who delivers to an upstream agency directly takes it over: the sync leaves it alone.
    r = await client.patch(f"/v1/agencies/{VPL}", json={"delivery": {"mode": "pull"}}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["source"], r.json()["delivery"]) == ("local", {"mode": "pull"})
    taken_over = r.json()
    summary = _summary(_sync(settings, **credentials))
    assert summary["codes"] == {"added": [], "updated": [], "deactivated": []}
    assert summary["skipped_codes"] == [{"code": H41, "reason": "local-agency"},
                                        {"code": VPL, "reason": "local-agency"}]
    agencies = await _register_of(client, admin_headers)
    assert agencies[VPL] == taken_over

    # 5. The upstream refusing the call (a wrong secret): exit 1, a clear message, nothing changed.
    before_register, before_stored = agencies, await stored(app)
    out = _sync(settings, **{**credentials, "secret": "not-the-secret"})
    assert out.returncode == 1
    assert "refused" in out.stderr
    problem = json.loads(out.stderr.strip().splitlines()[-1])
    assert (problem["type"], problem["error_code"]) == ("urn:gateway:problem:upstream-refused", "vxp-hmac-invalid")
    assert await _register_of(client, admin_headers) == before_register
    assert await stored(app) == before_stored


async def test_an_upstream_that_does_not_answer_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    await register(client, admin_headers, H41, "UBND tỉnh Nghệ An")
    before_register, before_stored = await _register_of(client, admin_headers), await stored(app)
    out = _sync(settings, url=f"http://127.0.0.1:{free_port()}/vxp", system_id="province.h41", secret="s3cr3t-value")
    assert out.returncode == 1
    assert "unavailable" in out.stderr
    assert "nothing was changed" in out.stderr
    assert "s3cr3t-value" not in out.stdout + out.stderr
    problem = json.loads(out.stderr.strip().splitlines()[-1])
    assert problem["type"] == "urn:gateway:problem:upstream-unavailable"
    assert await _register_of(client, admin_headers) == before_register
    assert await stored(app) == before_stored


async def test_without_an_upstream_configured_the_sync_says_what_to_set(
    app: FastAPI, settings: Settings
) -> None:
    before = await stored(app)
    out = _sync(settings)
    assert out.returncode == 1
    assert "no upstream is configured" in out.stderr
    assert "GATEWAY_UPSTREAM_URL" in out.stderr
    assert out.stdout == ""
    assert await stored(app) == before


async def test_operators_cannot_put_an_agency_into_upstream_delivery(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, H41)
    before_register, before_stored = await _register_of(client, admin_headers), await stored(app)
    created = await client.post("/v1/agencies", headers=admin_headers, json={
        "code": G22, "name": "Văn phòng Chính phủ", "delivery": {"mode": "upstream"}})
    patched = await client.patch(f"/v1/agencies/{H41}", headers=admin_headers, json={"delivery": {"mode": "upstream"}})
    for r in (created, patched):
        assert r.status_code == 422, r.text
        assert r.json()["type"] == "urn:gateway:problem:request-invalid"
        assert any(e["field"].startswith("delivery") for e in r.json()["errors"])
    assert await _register_of(client, admin_headers) == before_register
    assert await stored(app) == before_stored


# ------------------------------------------------------------------ lists shaped like the national axis's


def _answer(data: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(200, json={"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "data": data})


def _scripted(lists: Callable[[], dict[str, list[dict[str, Any]]]]) -> httpx.MockTransport:
    """An upstream that answers getAgenciesList, getAgenciesListQD20, getSynchronizeUnit with ``lists()``."""

    def handle(request: httpx.Request) -> httpx.Response:
        return _answer(lists()[request.url.path.rsplit("/", 1)[-1]])

    return httpx.MockTransport(handle)


def _axis(agencies: list[dict[str, Any]], qd20: list[dict[str, Any]], units: list[dict[str, Any]]
          ) -> dict[str, list[dict[str, Any]]]:
    return {"getAgenciesList": agencies, "getAgenciesListQD20": qd20, "getSynchronizeUnit": units}


async def test_a_refresh_moves_names_between_upstream_agencies_and_deactivates_the_unlisted_ones(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """Numeric ids and pids, a QĐ 20 row found only by its id, a unit with no valid code; then a listing in
    which one agency is gone and its QĐ 20 code and old code belong to another (the unique alt_code moves
    within the one transaction), and two agencies name each other as parent."""
    await register(client, admin_headers, H41, aliases=["28.22.H17"])
    first = _axis(
        agencies=[
            {"id": 1, "pid": None, "code": G22, "name": "Văn phòng Chính phủ", "mail": "", "oldCode": ""},
            {"id": 2, "pid": 1, "code": VHC, "name": "Vụ Hành chính", "mail": "", "oldCode": "G22.01.OLD"},
            {"id": 3, "pid": "1", "code": KSTT, "name": "Cục KSTT", "mail": "", "oldCode": "bad alias"},
        ],
        qd20=[
            {"id": 2, "code": "G22.A", "code102": VHC, "name": "Vụ Hành chính", "mail": ""},
            {"id": 3, "code": "G22.B", "code102": "", "name": "Cục KSTT", "mail": ""},
        ],
        units=[
            {"id": 4, "pid": 1, "code": VTH, "name": "Vụ Tổng hợp", "mail": "", "deleted": True, "isAgency": True},
            {"id": 9, "pid": 1, "code": "vxp.saas.03", "name": "SaaS", "mail": "", "deleted": False},
            {"id": 8, "pid": 77, "code": B01, "name": "Bộ Nội vụ", "mail": "", "deleted": "false"},
            {"id": 7, "pid": 1, "code": H41, "name": "UBND tỉnh Nghệ An", "mail": "", "deleted": False},
        ],
    )
    second = _axis(
        agencies=[
            {"id": 1, "pid": None, "code": G22, "name": "Văn phòng Chính phủ", "mail": "", "oldCode": ""},
            {"id": 3, "pid": 5, "code": KSTT, "name": "Cục KSTT", "mail": "", "oldCode": "G22.01.OLD"},
            {"id": 5, "pid": 3, "code": VPL, "name": "Vụ Pháp luật", "mail": "", "oldCode": "28.22.H17"},
        ],
        qd20=[{"id": 3, "code": "G22.A", "code102": KSTT, "name": "Cục KSTT", "mail": ""}],
        units=[{"id": 4, "pid": 1, "code": VTH, "name": "Vụ Tổng hợp", "mail": "", "deleted": True}],
    )
    listing = {"now": first}
    client_up = UpstreamClient("http://axis.test/vxp", "province.h41", "secret",
                               transport=_scripted(lambda: listing["now"]))
    sync = UpstreamRegisterSync(app.state.db, client_up, actor="console:test")

    summary = (await sync.run()).as_json()
    assert sorted(summary["codes"]["added"]) == sorted([G22, VHC, KSTT, VTH, B01])
    assert summary["skipped_codes"] == [{"code": H41, "reason": "local-agency"},
                                        {"code": "vxp.saas.03", "reason": "code-invalid"}]
    assert summary["dropped_names"] == [
        {"code": B01, "field": "parent_code", "value": "77", "reason": "parent-unknown"},
        {"code": KSTT, "field": "aliases", "value": "bad alias", "reason": "name-invalid"},
    ]
    agencies = await _register_of(client, admin_headers)
    assert _pick(agencies[VHC]) == _upstream_agency(name="Vụ Hành chính", parent_code=G22, alt_code="G22.A",
                                                    aliases=["G22.01.OLD"])
    assert _pick(agencies[KSTT]) == _upstream_agency(name="Cục KSTT", parent_code=G22, aliases=["G22.B"])
    assert _pick(agencies[VTH]) == _upstream_agency(name="Vụ Tổng hợp", parent_code=G22, active=False)
    assert _pick(agencies[B01]) == _upstream_agency(name="Bộ Nội vụ")

    listing["now"] = second
    summary = (await sync.run()).as_json()
    assert summary["codes"] == {"added": [VPL], "updated": [KSTT], "deactivated": [B01, VHC]}
    assert {(d["code"], d["reason"]) for d in summary["dropped_names"]} == {
        (VPL, "held-locally"), (KSTT, "parent-cycle")}
    agencies = await _register_of(client, admin_headers)
    assert _pick(agencies[VHC]) == _upstream_agency(name="Vụ Hành chính", parent_code=G22, active=False)
    assert _pick(agencies[KSTT]) == _upstream_agency(name="Cục KSTT", alt_code="G22.A", aliases=["G22.01.OLD"])
    assert _pick(agencies[VPL]) == _upstream_agency(name="Vụ Pháp luật", parent_code=KSTT)
    assert agencies[H41]["aliases"] == ["28.22.H17"]
    assert agencies[VHC]["synced_at"] < agencies[KSTT]["synced_at"]  # last listed by the first sync

    # Nothing listed at all is a fault, not "everything is gone".
    listing["now"] = _axis([], [], [])
    before = await stored(app)
    with pytest.raises(Exception, match="listed no agency"):
        await sync.run()
    assert await stored(app) == before
    await client_up.aclose()


def test_merge_and_plan_name_every_conflict() -> None:
    """The pure core: two upstream agencies claiming one alias get neither; an alias that is another agency's
    code is dropped; a row with a code and no name is skipped; a local agency holding an upstream code as an
    alias makes that upstream agency skipped."""
    now = datetime.now(UTC)
    local = AgencyRow(code=H41, alt_code=None, name="UBND", parent_code=None, delivery_mode="pull", endpoint=None,
                      signature_policy="required", active=True, created_at=now, updated_at=now, source="local",
                      synced_at=None)
    listed = UpstreamRegister(
        agencies=[UpstreamAgency("1", "", G22, "VPCP", "", "SHARED"),
                  UpstreamAgency("2", "1", VHC, "Vụ", "", "SHARED"),
                  UpstreamAgency("3", "1", KSTT, "Cục", "", VHC),
                  UpstreamAgency("4", "", VTH, "  \x07 ", "", ""),
                  UpstreamAgency("5", "", "000.00.00.H99", "Old code of H41", "", "")],
        qd20=[UpstreamAgencyQd20("1", G22, "VPCP", "", G22)],
        units=[SynchronizedUnit("2", "1", VHC, "Vụ (unit)", "", "1", "", False, "", True)],
    )
    entries, skipped = merge(listed)
    assert entries[VHC].name == "Vụ"  # getAgenciesList's name first
    assert entries[VHC].parents == [G22, G22]
    assert entries[G22].alt_code() is None  # a QĐ 20 code equal to the code is no second name
    todo = plan(entries, skipped, [local], {H41: ["000.00.00.H99"]})
    assert [(s.code, s.reason) for s in todo.skipped] == [("000.00.00.H99", "name-held-locally"),
                                                          (VTH, "name-missing")]
    assert [(d.code, d.value, d.reason) for d in todo.dropped] == [
        (G22, "SHARED", "ambiguous"), (VHC, "SHARED", "ambiguous"), (KSTT, VHC, "is-a-code")]
    assert [t.code for t in todo.added] == [G22, VHC, KSTT]
    assert all(t.aliases == () for t in todo.added)
