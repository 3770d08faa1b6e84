"""Console sessions: an operator token exchanged for a session cookie, and the dependencies every console
page declares to know who is looking.

The cookie ``gateway_console`` holds 32 random bytes; the database keeps only their SHA-256 (the
``console_sessions`` row's id), so a database leak opens no session. Each session has its own CSRF token,
which every POST form carries as ``csrf_token``. A session is refused, and the visitor sent back to the
sign-in form, when it was ended (sign-out), when it has been idle longer than
``GATEWAY_CONSOLE_IDLE_SECONDS``, when it is older than ``GATEWAY_CONSOLE_MAX_SECONDS``, or when its
operator or the token it was opened with has been revoked or has expired since.

Signing in and out are ledgered (``console.signed_in`` / ``console.signed_out``, actor the operator);
idling out is not (nobody acted).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, Request

from gateway.auth.repository import AuthRepository
from gateway.auth.service import AuthService
from gateway.db import Database
from gateway.deps import DatabaseDep, SettingsDep
from gateway.ledger import service as ledger
from gateway.principal import Principal
from gateway.problems import Forbidden, Unauthenticated
from gateway.webconsole.errors import ConsoleCsrfInvalid, ConsoleOperatorTokenRequired, SignInRequired
from gateway.webconsole.models import ConsoleSession
from gateway.webconsole.repository import ConsoleRepository

SESSION_COOKIE = "gateway_console"
COOKIE_PATH = "/console"
#: the sign-in form's double-submit cookie (login CSRF): set with the form, checked against its hidden field
LOGIN_COOKIE = "gateway_console_login"
LOGIN_COOKIE_PATH = "/console/login"
LOGIN_FORM_SECONDS = 600
#: last_seen_at is written at most this often, not on every page (the idle limit is minutes, not seconds)
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class ConsoleUser:
    operator_id: str
    name: str
    role: Literal["admin", "auditor"]
    session_id: str
    csrf_token: str
    principal: Principal

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def session_id_of(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class ConsoleSessions:
    """Opening, resolving and ending console sessions, each write its own unit of work."""

    def __init__(self, db: Database, *, idle_seconds: float, max_seconds: float) -> None:
        self.db = db
        self.idle = timedelta(seconds=idle_seconds)
        self.max = timedelta(seconds=max_seconds)

    async def sign_in(self, token: str) -> tuple[str, ConsoleUser]:
        """(cookie secret, user) for an operator token; raises Unauthenticated for an unknown, revoked or
        expired token and ConsoleOperatorTokenRequired for an agency's."""
        async with self.db.transaction() as session:
            principal = await AuthService(session).authenticate(token)
            if principal.kind != "operator" or principal.token_id is None:
                raise ConsoleOperatorTokenRequired()
            operator = await AuthRepository(session).operator_by_name(principal.name)
            if operator is None or operator.revoked_at is not None:
                raise Unauthenticated("the operator was revoked")
            secret = secrets.token_urlsafe(32)
            now = _now()
            row = ConsoleSession(id=session_id_of(secret), operator_id=operator.id, token_id=principal.token_id,
                                 csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                                 expires_at=now + self.max, ended_at=None)
            await ConsoleRepository(session).add(row)
            await ledger.append(session, type="console.signed_in", actor=principal.actor,
                                details={"token_id": principal.token_id})
        return secret, _user(row, principal)

    async def resolve(self, secret: str, *, touch: bool = True) -> ConsoleUser | None:
        """The signed-in operator behind a cookie secret, or None (and the session ended if it idled out).
        ``touch``: this is the operator's activity (a page), which keeps the session from idling out; the live
        feed's periodic checks are not."""
        if not secret or len(secret) > 200:
            return None
        session_id = session_id_of(secret)
        now = _now()
        async with self.db.read() as session:
            found = await ConsoleRepository(session).resolve(session_id)
        if found is None:
            return None
        row, operator, token = found
        if row.ended_at is not None:
            return None
        if now - row.last_seen_at > self.idle or now >= row.expires_at:
            await self._end(session_id, now)
            return None
        if operator.revoked_at is not None or token.revoked_at is not None or (
                token.expires_at is not None and now >= token.expires_at):
            await self._end(session_id, now)
            return None
        if touch and now - row.last_seen_at >= TOUCH_EVERY:
            async with self.db.transaction() as session:
                await ConsoleRepository(session).touch(session_id, now)
        role: Literal["admin", "auditor"] = "admin" if operator.role == "admin" else "auditor"
        return _user(row, Principal(kind="operator", name=operator.name, role=role, token_id=token.id))

    async def sign_out(self, user: ConsoleUser) -> None:
        async with self.db.transaction() as session:
            if await ConsoleRepository(session).end(user.session_id, _now()):
                await ledger.append(session, type="console.signed_out", actor=user.principal.actor,
                                    details={"token_id": user.principal.token_id})

    async def _end(self, session_id: str, now: datetime) -> None:
        async with self.db.transaction() as session:
            await ConsoleRepository(session).end(session_id, now)


def _user(row: ConsoleSession, principal: Principal) -> ConsoleUser:
    role: Literal["admin", "auditor"] = "admin" if principal.role == "admin" else "auditor"
    return ConsoleUser(operator_id=row.operator_id, name=principal.name, role=role, session_id=row.id,
                       csrf_token=row.csrf_token, principal=principal)


def get_console_sessions(db: DatabaseDep, settings: SettingsDep) -> ConsoleSessions:
    return ConsoleSessions(db, idle_seconds=settings.console_idle_seconds, max_seconds=settings.console_max_seconds)


ConsoleSessionsDep = Annotated[ConsoleSessions, Depends(get_console_sessions)]


def cookie_secure(request: Request, settings_secure: bool) -> bool:
    """Secure cookies when the request came over https, or always when the setting says so (TLS ended at a
    reverse proxy that talks plain HTTP to the gateway)."""
    return settings_secure or request.url.scheme == "https"


def _here(request: Request) -> str:
    if request.method != "GET":
        return "/console"
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def console_user(request: Request, sessions: ConsoleSessionsDep) -> ConsoleUser:
    """The signed-in operator; anyone else is sent (303) to the sign-in form."""
    user = await sessions.resolve(request.cookies.get(SESSION_COOKIE, ""))
    if user is None:
        raise SignInRequired(_here(request))
    request.state.console_user = user  # the error pages show the navigation to a signed-in user
    return user


CurrentConsoleUser = Annotated[ConsoleUser, Depends(console_user)]


def csrf_matches(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


async def checked_console_user(request: Request, user: CurrentConsoleUser) -> ConsoleUser:
    """The signed-in operator of a POST whose form carries the session's CSRF token (or, for a script, the
    ``X-CSRF-Token`` header)."""
    given: object = request.headers.get("x-csrf-token")
    if given is None:
        form = await request.form()
        given = form.get("csrf_token")
    if not csrf_matches(user.csrf_token, given):
        raise ConsoleCsrfInvalid()
    return user


CheckedConsoleUser = Annotated[ConsoleUser, Depends(checked_console_user)]


async def console_admin(user: CheckedConsoleUser) -> ConsoleUser:
    if not user.is_admin:
        raise Forbidden("this action needs an admin operator; an auditor sees but does not act")
    return user


ConsoleAdmin = Annotated[ConsoleUser, Depends(console_admin)]
