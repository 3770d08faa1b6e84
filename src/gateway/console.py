"""What every console command shares: open the configured database only when it can serve the command, run a
coroutine on it, and print a refusal as the same problem document the API would answer with (standard error,
exit 1).

A command that needs the schema refuses, in one line on standard error and exit 1, a database it cannot use:
one it cannot connect to, one without the schema (a missing SQLite file is never created: that would leave an
empty database behind for the next command to trip on), and one at another revision than this gateway's
migrations end with. The line names the database by its URL without the password.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

import gateway
from gateway import logs
from gateway.config import Settings
from gateway.db import Database, create_database
from gateway.db.migrate import alembic_config, current_revision
from gateway.problems import GatewayError

T = TypeVar("T")

MIGRATE = "run `gateway migrate`"


class DatabaseNotReady(Exception):
    """The configured database cannot serve a console command; the message is one line for a person."""


def fail(error: GatewayError) -> NoReturn:
    typer.echo(json.dumps(error.to_problem(), ensure_ascii=False), err=True)
    raise typer.Exit(code=1)


def not_ready(error: DatabaseNotReady) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code=1)


def shown_url(url: str) -> str:
    """``url`` as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable GATEWAY_DATABASE_URL)"


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return " ".join(text.split("\n", 1)[0].split())


def connection_refused(url: str, exc: BaseException) -> DatabaseNotReady:
    return DatabaseNotReady(f"cannot connect to the database at {shown_url(url)}: {_one_line(exc)}")


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def check_sqlite_file(url: str) -> None:
    """A SQLite database file that exists but cannot be opened is refused before the driver sees it: aiosqlite
    leaves a thread behind, and a traceback at exit, when its connection fails. A missing file passes."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is None or not sqlite_file.exists():
        return
    if not sqlite_file.is_file():
        raise DatabaseNotReady(f"cannot connect to the database at {shown_url(url)}: not a file")
    if not os.access(sqlite_file, os.R_OK | os.W_OK):
        raise DatabaseNotReady(f"cannot connect to the database at {shown_url(url)}: no permission to read and "
                               "write it")


def _revisions() -> tuple[str | None, set[str]]:
    script = ScriptDirectory.from_config(alembic_config())
    return script.get_current_head(), {r.revision for r in script.walk_revisions()}


def _check_revision(url: str, revision: str | None) -> None:
    head, known = _revisions()
    where = f"the database at {shown_url(url)}"
    if revision is None:
        raise DatabaseNotReady(f"{where} has no schema (revision none; latest {head}): {MIGRATE}")
    if revision == head:
        return
    if revision in known:
        raise DatabaseNotReady(f"{where} is at revision {revision}, this gateway needs {head}: {MIGRATE}")
    raise DatabaseNotReady(f"{where} is at revision {revision}, which this gateway ({gateway.__version__}, latest "
                           f"revision {head}) does not know: a newer gateway migrated it; run that one")


async def open_database(settings: Settings) -> Database:
    """The configured database, connected once and at this gateway's latest revision, else
    :class:`DatabaseNotReady` (and nothing created: no SQLite file, no directory, no table)."""
    url = settings.effective_database_url
    try:
        sqlite_file = _sqlite_file(url)
    except ArgumentError as exc:
        raise DatabaseNotReady(f"GATEWAY_DATABASE_URL is not a database URL: {_one_line(exc)}") from exc
    if sqlite_file is not None and not sqlite_file.exists():
        head, _ = _revisions()
        raise DatabaseNotReady(f"the database at {shown_url(url)} has no schema (no such file; latest revision "
                               f"{head}): {MIGRATE}")
    check_sqlite_file(url)
    if sqlite_file is not None and sqlite_file.stat().st_size == 0:
        _check_revision(url, None)  # an empty file: connecting would write a header into it
    db = create_database(url)
    try:
        async with db.engine.connect() as conn:
            revision = await conn.run_sync(current_revision)
        _check_revision(url, revision)
    except (DBAPIError, OSError) as exc:
        await db.dispose()
        raise connection_refused(url, exc) from exc
    except BaseException:
        await db.dispose()
        raise
    return db


def require_schema(settings: Settings) -> None:
    """:func:`open_database` for a command that reaches the database by other means (``gateway backup``):
    refuse in one line, exit 1, unless the database is ready."""

    async def check() -> None:
        db = await open_database(settings)
        await db.dispose()

    try:
        asyncio.run(check())
    except DatabaseNotReady as error:
        not_ready(error)


def settings_or_exit() -> Settings:
    """The settings from the environment, or one line naming what is wrong with them and exit 1."""
    try:
        return Settings()
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: the settings are invalid: {_one_line(Exception(reasons))}", err=True)
        raise typer.Exit(code=1) from exc


def run_on_database(fn: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """``fn(db, settings)`` on the configured database, disposed afterwards; a GatewayError is :func:`fail`,
    a database that is not ready (:func:`open_database`) one line on standard error."""
    settings = settings_or_exit()
    # Logs go to standard error: standard output carries the answer (JSON or a table).
    logs.configure(settings.log_level, json=settings.log_json, to_stderr=True)

    async def runner() -> T:
        db = await open_database(settings)
        try:
            return await fn(db, settings)
        finally:
            await db.dispose()

    try:
        return asyncio.run(runner())
    except GatewayError as error:
        fail(error)
    except DatabaseNotReady as error:
        not_ready(error)
