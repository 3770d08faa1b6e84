"""Settings: defaults under ./var, placeholder secrets refused outside development."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import Settings


def test_defaults_put_everything_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{(tmp_path / 'var' / 'gateway.sqlite3').resolve()}"
    assert settings.blobs_dir == tmp_path / "var" / "blobs"
    assert settings.keys_dir == tmp_path / "var" / "keys"


@pytest.mark.parametrize("placeholder", ["changeme", "CHANGEME", "secret", "password", ""])
def test_production_refuses_placeholder_secrets(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", signing_key_passphrase=placeholder)
    # Development tolerates them (the README's examples must run as they are).
    assert Settings(environment="development", signing_key_passphrase=placeholder).environment == "development"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9999")
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql+asyncpg://u@127.0.0.1/db")
    settings = Settings()
    assert settings.port == 9999
    assert settings.data_dir == tmp_path
    assert settings.effective_database_url == "postgresql+asyncpg://u@127.0.0.1/db"


def test_key_and_certificate_files_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="together"):
        Settings(signing_key_file=tmp_path / "k.pem")
