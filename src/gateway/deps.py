"""FastAPI dependencies as ``Annotated`` aliases: the session, the settings and who is calling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.principal import Principal
from gateway.auth.service import AuthService
from gateway.config import Settings
from gateway.db import Database
from gateway.problems import Forbidden, Unauthenticated
from gateway.ratelimit import AgencyRateLimiter
from gateway.signing import GatewayKey


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_gateway_key(request: Request) -> GatewayKey:
    key: GatewayKey = request.app.state.gateway_key
    return key


async def get_session(db: Annotated[Database, Depends(get_database)]) -> AsyncIterator[AsyncSession]:
    """One session per request. Endpoints that change state commit explicitly before they answer, so a
    success answer is never sent for work that did not commit; anything uncommitted is rolled back."""
    async with db.sessionmaker() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
GatewayKeyDep = Annotated[GatewayKey, Depends(get_gateway_key)]

_bearer = HTTPBearer(auto_error=False, description="an agency or operator token issued by an admin")


def _proxied_client_certificate(request: Request) -> str | None:
    """The client certificate a trusted reverse proxy verified and passed on, or None.

    Believed only when the direct peer is one of ``settings.trusted_proxies``: anyone else could write the
    header themselves.
    """
    settings: Settings = request.app.state.settings
    value = request.headers.get(settings.client_cert_header)
    if not value or request.client is None or request.client.host not in settings.trusted_proxies:
        return None
    pem = unquote(value)
    return pem if "-----BEGIN CERTIFICATE-----" in pem else None


async def current_principal(
    request: Request,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    client_pem = _proxied_client_certificate(request)
    if (credentials is None or credentials.scheme.lower() != "bearer") and client_pem is None:
        raise Unauthenticated()
    # Reads only, ended before the endpoint runs (no BEGIN/COMMIT on PostgreSQL; on SQLite no writer lock,
    # which the endpoint's own transactions would otherwise wait behind).
    async with db.read() as session:
        if credentials is not None and credentials.scheme.lower() == "bearer":
            principal = await AuthService(session).authenticate(credentials.credentials)
        else:
            assert client_pem is not None
            principal = await AuthService(session).authenticate_certificate(client_pem)
    request.state.principal = principal
    limiter: AgencyRateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None and principal.kind == "agency":
        limiter.check(principal.name)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_admin(principal: CurrentPrincipal) -> Principal:
    if principal.role != "admin":
        raise Forbidden("this action needs an admin operator token")
    return principal


async def current_operator(principal: CurrentPrincipal) -> Principal:
    if not principal.is_operator:
        raise Forbidden("this action needs an operator token")
    return principal


async def current_agency(principal: CurrentPrincipal) -> Principal:
    if principal.kind != "agency":
        raise Forbidden("this action needs an agency token")
    return principal


CurrentAdmin = Annotated[Principal, Depends(current_admin)]
CurrentOperator = Annotated[Principal, Depends(current_operator)]
CurrentAgency = Annotated[Principal, Depends(current_agency)]
