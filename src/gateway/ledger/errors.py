"""The ledger's answers to bad requests (problem+json); slugs are stable once published."""

from __future__ import annotations

from gateway.problems import GatewayError, NotFound


class LedgerFilterInvalid(GatewayError):
    """A filter, cursor or limit of ``GET /v1/ledger`` (or ``/checkpoints``) is malformed; ``field`` names it."""

    status = 422
    slug = "ledger-filter-invalid"
    title = "A ledger query parameter is invalid"


class CheckpointNotFound(NotFound):
    slug = "ledger-checkpoint-not-found"
    title = "No such ledger checkpoint"
