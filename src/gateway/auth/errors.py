"""Credential rules."""

from __future__ import annotations

from gateway.problems import Conflict, GatewayError, NotFound


class OperatorExists(Conflict):
    slug = "operator-exists"
    title = "An operator with this name exists"


class OperatorInvalid(GatewayError):
    status = 422
    slug = "operator-invalid"
    title = "Operator name or role is invalid"


class TokenNotFound(NotFound):
    slug = "token-not-found"
    title = "No such token for this agency"
