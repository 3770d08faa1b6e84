"""The federation fixture: two real gateways, B upstream of A (``twogateways``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from twogateways import Federation, two_gateways


@pytest.fixture
def federation(tmp_path: Path, pg_url: str) -> Iterator[Federation]:
    """B serving on a fresh PostgreSQL database, A on SQLite with B as its upstream, both running workers."""
    with two_gateways(tmp_path, pg_url) as fed:
        yield fed
