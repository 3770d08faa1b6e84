"""Run the Alembic migrations programmatically (``gateway migrate``, ``gateway serve``, the tests).

The schema comes only from these migrations; nothing calls ``metadata.create_all``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

import gateway


def migrations_dir() -> Path:
    packaged = Path(gateway.__file__).parent / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(gateway.__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _run(connection: Connection, action: str, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(cfg, target)
    else:
        command.downgrade(cfg, target)


def upgrade_sync(connection: Connection, target: str = "head") -> None:
    _run(connection, "upgrade", target)


def downgrade_sync(connection: Connection, target: str = "base") -> None:
    _run(connection, "downgrade", target)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
