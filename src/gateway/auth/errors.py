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


class OperatorNotFound(NotFound):
    slug = "operator-not-found"
    title = "No such operator"


class OperatorRevoked(Conflict):
    """A new token for an operator who was revoked: revocation is final (create another operator)."""

    slug = "operator-revoked"
    title = "The operator was revoked"


class OperatorSelfRevoke(Conflict):
    """An admin revoking their own account would leave the gateway with whoever is left; another admin (or
    the local console, ``gateway operator revoke``) does it."""

    slug = "operator-self-revoke"
    title = "An admin cannot revoke their own account"


class TokenNotFound(NotFound):
    slug = "token-not-found"
    title = "No such token for this agency or operator"


class TokenExpiryInvalid(GatewayError):
    """``expires_at`` of a new token is not an instant in the future with an offset."""

    status = 422
    slug = "token-expiry-invalid"
    title = "The token's expiry must be an instant in the future"
