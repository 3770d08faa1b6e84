"""The one place a refusal is written to the ledger.

A refused request leaves nothing stored but this record: who asked, which rule it broke (the problem's
slug and status), and what it concerned (an envelope by digest and size, a delivery by id; never content).
The HTTP face records through the dependency :func:`gateway.deps.ledgered_refusals`; a caller without a
request (an upstream poll) calls :meth:`RefusalLog.record` itself. The record has a transaction of its own:
the refused work's transaction, if any, was rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import metrics
from gateway.db import Database
from gateway.ledger import service as ledger
from gateway.problems import GatewayError


class RefusalLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, *, event: str, actor: str, sender: str | None, error: GatewayError,
                     details: Mapping[str, Any]) -> None:
        async with self.db.transaction() as session:
            await ledger.append(session, type=event, actor=actor, sender=sender,
                                details={"rule": error.slug, "status": error.status, **details})
        metrics.count_refusal(event, error.slug)
