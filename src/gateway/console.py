"""What every console command shares: run a coroutine on the configured database, and print a refusal as
the same problem document the API would answer with (standard error, exit 1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer

from gateway import logs
from gateway.config import Settings
from gateway.db import Database, create_database
from gateway.problems import GatewayError

T = TypeVar("T")


def fail(error: GatewayError) -> NoReturn:
    typer.echo(json.dumps(error.to_problem(), ensure_ascii=False), err=True)
    raise typer.Exit(code=1)


def run_on_database(fn: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """``fn(db, settings)`` on the configured database, disposed afterwards; a GatewayError is :func:`fail`."""
    settings = Settings()
    # Logs go to standard error: standard output carries the answer (JSON or a table).
    logs.configure(settings.log_level, json=settings.log_json, to_stderr=True)

    async def runner() -> T:
        db = create_database(settings.effective_database_url)
        try:
            return await fn(db, settings)
        finally:
            await db.dispose()

    try:
        return asyncio.run(runner())
    except GatewayError as error:
        fail(error)
