"""Agency aliases: other codes an agency is known by in the wild, one namespace with codes and alt_codes.

Round trips (create, view, list, PATCH replacing the list), the uniqueness across the whole register (409
agency-exists naming the field, nothing stored), malformed lists (422 request-invalid naming the field), the
ledger's record of both, :meth:`AgencyRepository.alias_map` (what intake resolves a To or From with), and the
database backing the rule when two changes race.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from gateway.agency.errors import AgencyExists
from gateway.agency.models import Agency, AgencyAlias
from gateway.agency.repository import AgencyRepository, NameHolder
from gateway.agency.schemas import AgencyCreate, AgencyUpdate
from gateway.agency.service import AgencyService, Register
from gateway.db import Database, create_database
from gateway.ledger.models import LedgerEntry

PROBLEM = "application/problem+json"
A, B, C = "000.00.00.H41", "000.00.00.H42", "000.00.00.H43"


def body(code: str, **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "name": f"Cơ quan {code}", "delivery": {"mode": "pull"}}
    out.update(over)
    return out


async def _register(client: httpx.AsyncClient, headers: dict[str, str], code: str, **over: Any) -> dict[str, Any]:
    r = await client.post("/v1/agencies", json=body(code, **over), headers=headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def _counts(app: FastAPI) -> tuple[int, int, int]:
    async with app.state.db.read() as session:
        agencies = (await session.execute(select(func.count()).select_from(Agency))).scalar_one()
        aliases = (await session.execute(select(func.count()).select_from(AgencyAlias))).scalar_one()
        entries = (await session.execute(select(func.count()).select_from(LedgerEntry))).scalar_one()
    return agencies, aliases, entries


async def _ledger(app: FastAPI, type_: str) -> list[dict[str, Any]]:
    async with app.state.db.read() as session:
        rows = (await session.execute(
            select(LedgerEntry.details).where(LedgerEntry.type == type_).order_by(LedgerEntry.seq)
        )).scalars().all()
    return [json.loads(r) for r in rows]


async def _alias_map(app: FastAPI) -> dict[str, str]:
    async with app.state.db.read() as session:
        return await AgencyRepository(session).alias_map()


def _field(problem: dict[str, Any]) -> str:
    return problem.get("field") or ",".join(e["field"] for e in problem.get("errors", []))


async def test_aliases_round_trip_through_create_view_list_and_the_ledger(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await _register(client, admin_headers, A, aliases=["vxp.saas.03", "28.22.H17"])
    assert created["aliases"] == ["28.22.H17", "vxp.saas.03"]  # sorted
    shown = (await client.get(f"/v1/agencies/{A}", headers=admin_headers)).json()
    assert shown == created
    plain = await _register(client, admin_headers, B)
    assert plain["aliases"] == []
    listed = (await client.get("/v1/agencies", headers=admin_headers)).json()["items"]
    assert {a["code"]: a["aliases"] for a in listed} == {A: ["28.22.H17", "vxp.saas.03"], B: []}
    registered = await _ledger(app, "agency.registered")
    assert [d["agency"]["aliases"] for d in registered] == [["28.22.H17", "vxp.saas.03"], []]


async def test_patch_replaces_the_whole_list_and_absent_leaves_it(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _register(client, admin_headers, A, aliases=["28.22.H17", "old.tenant"])
    url = f"/v1/agencies/{A}"
    r = await client.patch(url, json={"aliases": ["vxp.saas.03", "28.22.H17"]}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["aliases"] == ["28.22.H17", "vxp.saas.03"]
    r = await client.patch(url, json={"name": "Tên mới"}, headers=admin_headers)
    assert r.json()["aliases"] == ["28.22.H17", "vxp.saas.03"]
    assert (await client.get(url, headers=admin_headers)).json()["aliases"] == ["28.22.H17", "vxp.saas.03"]
    # A removed alias is free again: another agency may take it.
    await _register(client, admin_headers, B, aliases=["old.tenant"])
    r = await client.patch(url, json={"aliases": []}, headers=admin_headers)
    assert r.json()["aliases"] == []
    await client.patch(url, json={"aliases": ["x1"]}, headers=admin_headers)
    r = await client.patch(url, json={"aliases": None}, headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["aliases"] == []
    assert (await client.get(url, headers=admin_headers)).json()["aliases"] == []
    changed = [d["changed"] for d in await _ledger(app, "agency.updated")]
    assert [c.get("aliases") for c in changed] == [["28.22.H17", "vxp.saas.03"], None, [], ["x1"], []]


async def test_an_agency_may_move_its_own_names_between_alt_code_and_aliases(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _register(client, admin_headers, A, alt_code="H41.OLD", aliases=["28.22.H17"])
    url = f"/v1/agencies/{A}"
    r = await client.patch(url, json={"alt_code": "H41.NEW", "aliases": ["28.22.H17", "H41.OLD"]},
                           headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["alt_code"], r.json()["aliases"]) == ("H41.NEW", ["28.22.H17", "H41.OLD"])
    r = await client.patch(url, json={"alt_code": "28.22.H17", "aliases": ["H41.OLD"]}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["alt_code"], r.json()["aliases"]) == ("28.22.H17", ["H41.OLD"])
    # Sending the agency's own aliases again changes nothing and conflicts with nothing.
    r = await client.patch(url, json={"aliases": ["H41.OLD"]}, headers=admin_headers)
    assert r.status_code == 200, r.text


#: (setup of agency B, the request, the field the 409 names). Agency A holds code A, alt_code "A.ALT",
#: alias "a.alias" and alias C (an old code of a unit that moved).
CONFLICTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("alias = another agency's alias", "POST", body(B, aliases=["ok.1", "a.alias"]), "aliases"),
    ("alias = another agency's code", "POST", body(B, aliases=[A]), "aliases"),
    ("alias = another agency's alt_code", "POST", body(B, aliases=["A.ALT"]), "aliases"),
    ("code = an existing alias", "POST", body(C), "code"),
    ("alt_code = an existing alias", "POST", body(B, alt_code="a.alias"), "alt_code"),
    ("alt_code = another agency's code", "POST", body(B, alt_code=A), "alt_code"),
    ("PATCH alias = another agency's alias", "PATCH", {"aliases": ["a.alias"]}, "aliases"),
    ("PATCH alias = another agency's code", "PATCH", {"aliases": [A]}, "aliases"),
    ("PATCH alias = another agency's alt_code", "PATCH", {"aliases": ["A.ALT"]}, "aliases"),
    ("PATCH alt_code = another agency's alias", "PATCH", {"alt_code": "a.alias"}, "alt_code"),
    ("PATCH alias = the agency's own code", "PATCH", {"aliases": [B]}, "aliases"),
    ("PATCH alias = the agency's own kept alt_code", "PATCH", {"aliases": ["B.ALT"]}, "aliases"),
    ("PATCH alt_code = the agency's own kept alias", "PATCH", {"alt_code": "b.alias"}, "alt_code"),
]


@pytest.mark.parametrize(("why", "method", "request_body", "field"), CONFLICTS, ids=[c[0] for c in CONFLICTS])
async def test_a_name_held_anywhere_in_the_register_is_a_conflict_and_nothing_is_stored(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str],
    why: str, method: str, request_body: dict[str, Any], field: str,
) -> None:
    await _register(client, admin_headers, A, alt_code="A.ALT", aliases=["a.alias", C])
    if method == "PATCH":
        await _register(client, admin_headers, B, alt_code="B.ALT", aliases=["b.alias"])
    before = await _counts(app)
    before_b = (await client.get(f"/v1/agencies/{B}", headers=admin_headers)).json()
    url = "/v1/agencies" if method == "POST" else f"/v1/agencies/{B}"
    r = await client.request(method, url, json=request_body, headers=admin_headers)
    assert r.status_code == 409, (why, r.text)
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == "urn:gateway:problem:agency-exists"
    assert r.json()["field"] == field
    assert await _counts(app) == before
    assert (await client.get(f"/v1/agencies/{B}", headers=admin_headers)).json() == before_b


MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("a space", body(A, aliases=["28.22 H17"]), "aliases.0"),
    ("empty", body(A, aliases=["ok", ""]), "aliases.1"),
    ("65 characters", body(A, aliases=["x" * 65]), "aliases.0"),
    ("a trailing newline", body(A, aliases=["28.22.H17\n"]), "aliases.0"),
    ("not ASCII", body(A, aliases=["sở.nội.vụ"]), "aliases.0"),
    ("a slash", body(A, aliases=["a/b"]), "aliases.0"),
    ("not a list", body(A, aliases="28.22.H17"), "aliases"),
    ("twice in one list", body(A, aliases=["x1", "x2", "x1"]), "aliases"),
    ("the request's own code", body(A, aliases=[A]), "aliases.0"),
    ("the request's own alt_code", body(A, alt_code="A.ALT", aliases=["ok", "A.ALT"]), "aliases.1"),
]


@pytest.mark.parametrize(("why", "request_body", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_a_malformed_alias_list_is_request_invalid_and_nothing_is_stored(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str],
    why: str, request_body: dict[str, Any], field: str,
) -> None:
    before = await _counts(app)
    r = await client.post("/v1/agencies", json=request_body, headers=admin_headers)
    assert r.status_code == 422, (why, r.text)
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == "urn:gateway:problem:request-invalid"
    assert _field(r.json()) == field
    assert await _counts(app) == before


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"aliases": ["bad alias"]}, "aliases.0"),
        ({"aliases": ["x1", "x1"]}, "aliases"),
        ({"alt_code": "A.NEW", "aliases": ["A.NEW"]}, "aliases.0"),
    ],
)
async def test_a_malformed_patch_is_request_invalid_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], patch: dict[str, Any], field: str
) -> None:
    await _register(client, admin_headers, A, aliases=["28.22.H17"])
    before = await _counts(app)
    r = await client.patch(f"/v1/agencies/{A}", json=patch, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:gateway:problem:request-invalid"
    assert _field(r.json()) == field
    assert await _counts(app) == before
    shown = (await client.get(f"/v1/agencies/{A}", headers=admin_headers)).json()
    assert (shown["alt_code"], shown["aliases"]) == (None, ["28.22.H17"])


async def test_alias_map_names_every_alias_and_every_alt_code(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    assert await _alias_map(app) == {}
    await _register(client, admin_headers, A, alt_code="H41.SOTTTT", aliases=["28.22.H17", "vxp.saas.03"])
    await _register(client, admin_headers, B, aliases=["27.01.G22"])
    await _register(client, admin_headers, C, alt_code="G43")
    await _register(client, admin_headers, "000.00.00.H44")
    assert await _alias_map(app) == {
        "H41.SOTTTT": A, "28.22.H17": A, "vxp.saas.03": A, "27.01.G22": B, "G43": C,
    }
    await client.patch(f"/v1/agencies/{A}", json={"alt_code": None, "aliases": ["vxp.saas.03"]},
                       headers=admin_headers)
    assert await _alias_map(app) == {"vxp.saas.03": A, "27.01.G22": B, "G43": C}
    async with app.state.db.read() as session:
        repo = AgencyRepository(session)
        assert await repo.aliases_of(A) == ["vxp.saas.03"]
        assert await repo.aliases_of(C) == []
        assert await repo.holders(["G43", B, "27.01.G22", "nobody"]) == [
            NameHolder("000.00.00.H42", "code", B), NameHolder("27.01.G22", "alias", B),
            NameHolder("G43", "alt_code", C),
        ]


async def test_the_primary_key_refuses_an_alias_the_checks_missed(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change that read the register before another committed the same alias: the service's reads saw
    nothing, the database's primary key refuses, and the answer is the same 409 with nothing stored."""
    await _register(client, admin_headers, A, aliases=["28.22.H17"])
    await _register(client, admin_headers, B)

    async def sees_nothing(self: AgencyRepository, names: Sequence[str]) -> list[NameHolder]:
        return []

    monkeypatch.setattr(AgencyRepository, "holders", sees_nothing)
    before = await _counts(app)
    for method, url, request_body in (
        ("POST", "/v1/agencies", body(C, aliases=["ok.1", "28.22.H17"])),
        ("PATCH", f"/v1/agencies/{B}", {"aliases": ["28.22.H17"]}),
    ):
        r = await client.request(method, url, json=request_body, headers=admin_headers)
        assert r.status_code == 409, (method, r.text)
        assert r.json()["type"] == "urn:gateway:problem:agency-exists"
        assert r.json()["field"] == "aliases"
    assert await _counts(app) == before
    assert (await client.get(f"/v1/agencies/{B}", headers=admin_headers)).json()["aliases"] == []


async def test_two_agencies_racing_for_one_alias_one_wins(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _register(client, admin_headers, A)
    await _register(client, admin_headers, B)
    answers = await asyncio.gather(*(
        client.patch(f"/v1/agencies/{code}", json={"aliases": ["vxp.saas.03"]}, headers=admin_headers)
        for code in (A, B)
    ))
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    holders = [(await client.get(f"/v1/agencies/{code}", headers=admin_headers)).json()["aliases"]
               for code in (A, B)]
    assert sorted(holders) == [[], ["vxp.saas.03"]]


async def _blocked_or_done(db: Database, task: asyncio.Task[Any]) -> None:
    """Return once ``task`` finished or a session waits on a lock (PostgreSQL's view, no clock involved in
    the outcome: the deadline only turns a hang into a failure)."""
    for _ in range(3000):
        if task.done():
            return
        async with db.read() as session:
            waiting = (await session.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ))).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the racing change neither finished nor waited")


async def test_postgresql_a_code_registered_while_it_becomes_an_alias_is_refused(pg_url: str) -> None:
    """Codes, alt_codes and aliases share one namespace no single constraint covers: a registration that
    reads the register while another transaction is making its code an alias waits for that transaction
    (the register's names lock) and then sees the alias."""
    db = create_database(pg_url)
    try:
        register = Register(db, actor="console:test")
        for code in (A,):
            await register.register(AgencyCreate.model_validate(body(code)))
        async with db.transaction() as session:
            await AgencyService(session, actor="console:test").update(A, AgencyUpdate(aliases=[B]))
            racing = asyncio.create_task(register.register(AgencyCreate.model_validate(body(B))))
            await _blocked_or_done(db, racing)
        with pytest.raises(AgencyExists) as refused:
            await racing
        assert refused.value.extensions["field"] == "code"
        async with db.read() as session:
            assert await AgencyRepository(session).get(B) is None
            assert await AgencyRepository(session).alias_map() == {B: A}
    finally:
        await db.dispose()
