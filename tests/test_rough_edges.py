"""The rough edges a new user met (issue 16, item 5), each shown gone:

- the CLI on a missing or unmigrated database says so in one line, exits 1 and creates nothing (no SQLite file,
  no directory, no table), names both revisions when the schema is behind, and one line too when the database
  cannot be reached at all; ``gateway migrate`` then makes the same command work;
- ``gateway --version``;
- ``/docs`` and ``/redoc`` load everything from the gateway itself (``GATEWAY_API_DOCS=false`` removes them);
- the ledger's CSV export opens in a spreadsheet with its Vietnamese text intact (UTF-8 with a BOM).

Every command runs as a real ``python -m gateway`` process, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import typer.main
from fastapi import FastAPI
from sqlalchemy import text
from typer.testing import CliRunner

import gateway
from gateway.app import create_app
from gateway.client.cli import register_client_commands
from gateway.command import SERVER_COMMANDS, client_only_app
from gateway.config import Settings
from gateway.db import create_database
from gateway.db.migrate import head_revision
from gateway.docs import ASSETS
from gateway.ledger.endpoints import CSV_BOM
from pg import PostgresServer, free_port

HEAD = head_revision()
MIGRATE = "run `gateway migrate`"

#: server commands that do not need the schema: they make it, restore onto an empty database, need no database,
#: or start a gateway of their own
NO_SCHEMA_NEEDED = frozenset({("serve",), ("migrate",), ("openapi",), ("demo",), ("restore",)})


@dataclass
class Unready:
    """A database a console command cannot use, and how to tell that nothing was made in it."""

    kind: str
    env: dict[str, str]
    data_dir: Path
    url: str
    nothing_created: Callable[[], bool]


def run_gateway(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _base_env(data_dir: Path, gateway_key_files: tuple[Path, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    key, cert = gateway_key_files
    # A worker needs the gateway key before it looks at the database: the key is given, so that it gets there.
    return {**env, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_SIGNING_KEY_FILE": str(key),
            "GATEWAY_SIGNING_CERT_FILE": str(cert), "GATEWAY_LOG_LEVEL": "warning"}


@pytest.fixture(params=["sqlite", "postgresql"])
def unready(request: pytest.FixtureRequest, tmp_path: Path,
            gateway_key_files: tuple[Path, Path]) -> Iterator[Unready]:
    """SQLite: a data directory that does not exist (the default database inside it); PostgreSQL: a new, empty
    database."""
    data_dir = tmp_path / "var"
    env = _base_env(data_dir, gateway_key_files)
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{(data_dir / 'gateway.sqlite3').resolve()}"
        yield Unready("sqlite", env, data_dir, url, lambda: not data_dir.exists())
        return
    server: PostgresServer | None = request.getfixturevalue("postgres")
    if server is None:
        pytest.skip("no PostgreSQL binaries on this machine (CI sets GATEWAY_TEST_REQUIRE_POSTGRES=1)")
    name = f"empty_{os.getpid()}_{tmp_path.name[-12:].replace('-', '_').lower()}"
    server.psql(f"CREATE DATABASE {name}")

    def nothing_created() -> bool:
        tables = server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database=name)
        return tables.strip() == "0" and not data_dir.exists()

    try:
        url = server.url(name)
        yield Unready("postgresql", {**env, "GATEWAY_DATABASE_URL": url}, data_dir, url, nothing_created)
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _no_schema_line(db: Unready) -> str:
    if db.kind == "sqlite":
        return f"error: the database at {db.url} has no schema (no such file; latest revision {HEAD}): {MIGRATE}"
    return f"error: the database at {db.url} has no schema (revision none; latest {HEAD}): {MIGRATE}"


#: commands that need the schema, with arguments they would accept on a migrated database: each way a command
#: opens the database (gateway.cli._in_transaction, gateway.console.run_on_database, the worker, backup)
SCHEMA_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("agency", "list"),
    ("agency", "add", "000.00.00.H41", "--name", "Sở Y tế tỉnh Nghệ An", "--pull"),
    ("operator", "create", "Nguyễn Văn An"),
    ("ledger", "verify"),
    ("ledger", "checkpoint"),
    ("report", "monthly", "--month", "2026-11"),
    ("vxp", "system", "create", "--agency", "000.00.00.H41"),
    ("worker",),
)


def _all_at_once(env: dict[str, str], commands: list[tuple[str, ...]]) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run_gateway(env, *args), commands))


def test_commands_refuse_a_database_without_schema_in_one_line_and_create_nothing(unready: Unready,
                                                                                   tmp_path: Path) -> None:
    commands = [*SCHEMA_COMMANDS, ("backup", "--output", str(tmp_path / "backup"))]
    expected = _no_schema_line(unready)
    for args, proc in zip(commands, _all_at_once(unready.env, commands), strict=True):
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert proc.stderr.splitlines() == [expected], (args, proc.stderr[-3000:])
        assert proc.stdout == "", args
    assert unready.nothing_created()
    assert not (tmp_path / "backup").exists()


def _leaf_commands(existing_file: Path) -> list[tuple[tuple[str, ...], list[str]]]:
    """Every server command of ``gateway`` (names and dummy values for its required parameters; a path is
    ``existing_file``), but the ones that need no schema and the agency (client) commands."""
    from gateway.cli import app

    client = typer.Typer()
    register_client_commands(client)
    client_names = set(typer.main.get_command(client).commands)  # type: ignore[attr-defined]

    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], list[str]]]:
        children = getattr(command, "commands", None)
        if children is not None:
            for name, child in children.items():
                yield from walk(child, (*path, name))
            return
        args: list[str] = []
        for param in getattr(command, "params", []):
            if not param.required:
                continue
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", str)
            value = {Path: str(existing_file), int: "1", float: "1"}.get(annotation, "x")
            args.extend([value] if param.param_type_name == "argument" else [param.opts[0], value])
        yield path, args

    found = []
    for path, args in walk(typer.main.get_command(app), ()):
        if path[0] in client_names or path[0] not in SERVER_COMMANDS or path[:1] in NO_SCHEMA_NEEDED:
            continue
        found.append((path, args))
    return found


def test_every_other_server_command_refuses_an_unready_database_without_a_traceback(unready: Unready,
                                                                                    tmp_path: Path) -> None:
    """Every other command, those added later too, with placeholder values for what it requires: a non-zero
    exit, no traceback, nothing made; the schema's line when the placeholders got it as far as the database."""
    existing = tmp_path / "some-file.pem"
    existing.write_text("not a certificate", encoding="utf-8")
    leaves = _leaf_commands(existing)
    listed = {path for path, _ in leaves if any(args[: len(path)] == path for args in SCHEMA_COMMANDS)}
    others = [(path, args) for path, args in leaves if path not in listed and path != ("backup",)]
    assert len(others) >= 10, others  # the walk found the commands
    reached = 0
    for (path, _), proc in zip(others, _all_at_once(unready.env, [(*p, *a) for p, a in others]), strict=True):
        assert proc.returncode != 0, (path, proc.stdout)
        assert "Traceback" not in proc.stderr, (path, proc.stderr[-3000:])
        if proc.stderr.splitlines() == [_no_schema_line(unready)]:
            reached += 1
    assert reached >= len(others) // 2, "most commands should have got as far as the database"
    assert unready.nothing_created()


def test_migrate_makes_the_refused_command_work(unready: Unready) -> None:
    refused = run_gateway(unready.env, "agency", "list")
    assert refused.returncode == 1
    assert MIGRATE in refused.stderr
    migrated = run_gateway(unready.env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    listed = run_gateway(unready.env, "agency", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""


def test_an_empty_sqlite_file_is_no_schema_and_stays_empty(tmp_path: Path,
                                                           gateway_key_files: tuple[Path, Path]) -> None:
    """What earlier versions left behind (SQLite only: a PostgreSQL database is never made by connecting)."""
    path = tmp_path / "gateway.sqlite3"
    path.touch()
    url = f"sqlite+aiosqlite:///{path}"
    env = {**_base_env(tmp_path / "var", gateway_key_files), "GATEWAY_DATABASE_URL": url}
    proc = run_gateway(env, "ledger", "verify")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: the database at {url} has no schema (revision none; latest {HEAD}): {MIGRATE}"]
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.sqlite3"]


async def _set_revision(url: str, revision: str) -> None:
    db = create_database(url)
    try:
        async with db.transaction() as session:
            await session.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await db.dispose()


def test_a_schema_behind_is_named_with_both_revisions(db_url: str, tmp_path: Path,
                                                      gateway_key_files: tuple[Path, Path]) -> None:
    older = "0009"
    asyncio.run(_set_revision(db_url, older))
    env = {**_base_env(tmp_path / "var", gateway_key_files), "GATEWAY_DATABASE_URL": db_url}
    for args in (("agency", "list"), ("ledger", "verify"), ("worker",)):
        proc = run_gateway(env, *args)
        assert proc.returncode == 1, args
        assert proc.stderr.splitlines() == [
            f"error: the database at {db_url} is at revision {older}, this gateway needs {HEAD}: {MIGRATE}"], args


def test_a_schema_from_a_newer_gateway_is_not_taken_for_an_older_one(db_url: str, tmp_path: Path,
                                                                      gateway_key_files: tuple[Path, Path]) -> None:
    asyncio.run(_set_revision(db_url, "9999"))
    env = {**_base_env(tmp_path / "var", gateway_key_files), "GATEWAY_DATABASE_URL": db_url}
    proc = run_gateway(env, "agency", "list")
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert "revision 9999" in line, line
    assert "newer gateway" in line, line
    assert MIGRATE not in line, line


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_that_cannot_be_reached_is_one_line_without_the_password(
    kind: str, tmp_path: Path, gateway_key_files: tuple[Path, Path]
) -> None:
    if kind == "sqlite":
        where = tmp_path / "a-directory.sqlite3"  # a directory where the file should be: cannot be opened
        where.mkdir()
        url = f"sqlite+aiosqlite:///{where}"
        shown = url
    else:
        url = f"postgresql+asyncpg://gateway:s3cret-Passw0rd@127.0.0.1:{free_port()}/gateway"
        shown = url.replace("s3cret-Passw0rd", "***")
    env = {**_base_env(tmp_path / "var", gateway_key_files), "GATEWAY_DATABASE_URL": url}
    commands = [("agency", "list"), ("ledger", "verify"), ("worker",), ("migrate",)]
    for args, proc in zip(commands, _all_at_once(env, commands), strict=True):
        assert proc.returncode == 1, args
        [line] = proc.stderr.splitlines() or [""]
        assert line.startswith(f"error: cannot connect to the database at {shown}: "), (args, proc.stderr[-3000:])
        assert "s3cret" not in proc.stderr + proc.stdout


def test_a_postgresql_database_that_does_not_exist_is_one_line(postgres: PostgresServer | None, tmp_path: Path,
                                                               gateway_key_files: tuple[Path, Path]) -> None:
    """The server answers, the database is not there (a typo in GATEWAY_DATABASE_URL): nothing is created."""
    if postgres is None:
        pytest.skip("no PostgreSQL binaries on this machine (CI sets GATEWAY_TEST_REQUIRE_POSTGRES=1)")
    url = postgres.url("no_such_database")
    env = {**_base_env(tmp_path / "var", gateway_key_files), "GATEWAY_DATABASE_URL": url}
    proc = run_gateway(env, "agency", "list")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f'error: cannot connect to the database at {url}: database "no_such_database" does not exist']
    assert "no_such_database" not in postgres.psql("SELECT datname FROM pg_database")


# -- gateway --version ---------------------------------------------------------------------------------------

def test_version_is_printed_by_the_whole_command_and_by_the_client_only_one(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"gateway {gateway.__version__}\n", "")
    assert list(tmp_path.iterdir()) == []
    client_only = CliRunner().invoke(client_only_app("fastapi"), ["--version"])
    assert (client_only.exit_code, client_only.stdout) == (0, f"gateway {gateway.__version__}\n")


# -- /docs and /redoc ----------------------------------------------------------------------------------------

class _Links(HTMLParser):
    """Every URL a page makes the browser load or follow: src and href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.spec_urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append(value)
            if name == "spec-url" and value is not None:
                self.spec_urls.append(value)


def _links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
    ("/redoc", {"redoc.standalone.js", "favicon.png"}),
])
async def test_docs_pages_load_every_asset_from_the_gateway(client: httpx.AsyncClient, page: str,
                                                            assets: set[str]) -> None:
    r = await client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    links = _links(r.text)
    assert links.urls, r.text
    for url in links.urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), url  # nothing from another host
        assert parts.path.startswith(ASSETS + "/"), url
    assert {urlsplit(u).path.rsplit("/", 1)[1] for u in links.urls} == assets
    assert "fonts.googleapis.com" not in r.text
    assert "cdn.jsdelivr.net" not in r.text
    for url in links.urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    if page == "/docs":
        # the spec is never sent to validator.swagger.io for a badge
        assert '"validatorUrl": null' in r.text
        assert "url: '/openapi.json'" in r.text
    else:
        assert links.spec_urls == ["/openapi.json"]
    assert (await client.get("/openapi.json")).status_code == 200


async def test_docs_assets_name_no_outside_host_to_load_and_are_cached(client: httpx.AsyncClient) -> None:
    redoc = await client.get(f"{ASSETS}/redoc.standalone.js")
    assert redoc.headers["content-type"].startswith("text/javascript")
    # ReDoc's side menu would load its logo from Redocly's CDN: the bundle is served without that URL.
    assert b"cdn.redoc.ly" not in redoc.content
    assert b"Redoc" in redoc.content
    css = await client.get(f"{ASSETS}/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")
    again = await client.get(f"{ASSETS}/swagger-ui.css", headers={"If-None-Match": css.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
    for name in ("../core.py", "..%2Fcore.py", "consts.py", "nothing.js"):
        missing = await client.get(f"{ASSETS}/{name}")
        assert missing.status_code == 404, name
        assert missing.headers["content-type"] == "application/problem+json", name


async def test_api_docs_false_removes_the_pages_and_keeps_the_spec(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_docs": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            for path in ("/docs", "/redoc", f"{ASSETS}/swagger-ui-bundle.js", f"{ASSETS}/redoc.standalone.js"):
                assert (await client.get(path)).status_code == 404, path
            assert (await client.get("/openapi.json")).status_code == 200


def test_api_docs_setting_reads_gateway_api_docs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().api_docs is True
    monkeypatch.setenv("GATEWAY_API_DOCS", "false")
    assert Settings().api_docs is False


# -- CSV for spreadsheets ------------------------------------------------------------------------------------

async def test_ledger_csv_starts_with_a_bom_and_keeps_vietnamese_text(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    name = "Sở Thông tin và Truyền thông tỉnh Nghệ An"
    r = await client.post("/v1/agencies", json={"code": "000.00.00.H41", "name": name, "delivery": {"mode": "pull"}},
                          headers=admin_headers)
    assert r.status_code == 201, r.text
    r = await client.get("/v1/ledger", headers={**admin_headers, "Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="ledger.csv"'
    assert r.content.startswith(b"\xef\xbb\xbf")
    assert CSV_BOM.encode("utf-8") == b"\xef\xbb\xbf"
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert next(iter(rows[0])) == "seq"
    registered = next(row for row in rows if row["type"] == "agency.registered")
    assert json.loads(registered["details"])["agency"]["name"] == name
    assert name.encode("utf-8") in r.content


def test_cert_add_with_a_missing_pem_file_is_a_usage_error_not_a_traceback(
        tmp_path: Path, gateway_key_files: tuple[Path, Path]) -> None:
    env = _base_env(tmp_path / "var", gateway_key_files)
    proc = run_gateway(env, "agency", "cert-add", "000.00.00.G22", str(tmp_path / "missing.pem"))
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "var").exists()
