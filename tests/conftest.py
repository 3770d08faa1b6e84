"""Shared fixtures: both databases (a real throwaway PostgreSQL and SQLite), the app, keys and tokens.

Every test that takes ``db_url`` (directly or through ``app``/``client``) runs twice: on SQLite and on
PostgreSQL. Each test gets a fresh database copied from a migrated template, so tests never share state.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.auth.service import AuthService
from gateway.config import Settings
from gateway.db import create_database
from gateway.db.migrate import upgrade_sync
from gateway.signing import load_or_create
from pg import PostgresServer, start_server

REQUIRE_POSTGRES = os.environ.get("GATEWAY_TEST_REQUIRE_POSTGRES") == "1"
# A `gateway serve` a test starts runs one process unless the test asks for more: `--workers` defaults to one per
# core on PostgreSQL, and a test that kills "the gateway" means all of it (tests/test_metrics_workers.py tests N).
os.environ.setdefault("GATEWAY_WORKERS", "1")
_counter = itertools.count()


async def _migrate(url: str) -> None:
    db = create_database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade_sync)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    server = start_server()
    if server is None:
        if REQUIRE_POSTGRES:
            raise RuntimeError("GATEWAY_TEST_REQUIRE_POSTGRES=1 but no PostgreSQL binaries were found")
        yield None
        return
    try:
        server.psql("CREATE DATABASE gw_template")
        asyncio.run(_migrate(server.url("gw_template")))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@contextmanager
def _fresh_postgres_database(server: PostgresServer | None) -> Iterator[str]:
    """A new PostgreSQL database copied from the migrated template, dropped afterwards."""
    if server is None:
        pytest.skip("no PostgreSQL binaries on this machine (CI sets GATEWAY_TEST_REQUIRE_POSTGRES=1)")
    name = f"t_{os.getpid()}_{next(_counter)}"
    server.psql(f"CREATE DATABASE {name} TEMPLATE gw_template")
    try:
        yield server.url(name)
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if request.param == "sqlite":
        target = tmp_path / "gateway.sqlite3"
        shutil.copyfile(sqlite_template, target)
        yield f"sqlite+aiosqlite:///{target}"
        return
    with _fresh_postgres_database(request.getfixturevalue("postgres")) as url:
        yield url


@pytest.fixture
def pg_url(postgres: PostgresServer | None) -> Iterator[str]:
    """A fresh PostgreSQL database, for the few behaviours only PostgreSQL has (TRUNCATE, SKIP LOCKED)."""
    with _fresh_postgres_database(postgres) as url:
        yield url


@pytest.fixture(scope="session")
def gateway_key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One gateway key for the whole run (RSA key generation is slow)."""
    data_dir = tmp_path_factory.mktemp("gateway-key")
    load_or_create(Settings(data_dir=data_dir))
    return data_dir / "keys" / "gateway.key.pem", data_dir / "keys" / "gateway.cert.pem"


@pytest.fixture
def settings(db_url: str, tmp_path: Path, gateway_key_files: tuple[Path, Path]) -> Settings:
    key_file, cert_file = gateway_key_files
    return Settings(
        data_dir=tmp_path / "var",
        database_url=db_url,
        signing_key_file=key_file,
        signing_cert_file=cert_file,
        run_workers=False,
        log_json=True,
        log_level="warning",
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


async def _operator_token(app: FastAPI, name: str, role: str) -> str:
    async with app.state.db.transaction() as session:
        _, _, token = await AuthService(session).create_operator(name, role, actor="console:test")
    return token


@pytest.fixture
async def admin_headers(app: FastAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _operator_token(app, 'admin', 'admin')}"}


@pytest.fixture
async def auditor_headers(app: FastAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _operator_token(app, 'auditor', 'auditor')}"}
