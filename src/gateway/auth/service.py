"""Issuing, listing, revoking and checking credentials: operators and their tokens, agency tokens.

A token may carry an expiry (``expires_at``); past it, it is refused like a revoked one. Revoking an operator
revokes every token of theirs and ends their console sessions in the same unit of work, and a token of a
revoked operator is refused even if it was somehow left unrevoked. Every change is ledgered
(``operator.created``, ``operator.revoked``, ``token.issued``, ``token.revoked``), never with a secret.

:class:`AuthService` works in its caller's unit of work; :class:`AgencyTokens` and :class:`Operators` are the
units of work the HTTP endpoints call (CONTRIBUTING.md, Transactions). :func:`list_operators` and
:func:`list_tokens` are reads for the API, the CLI and the web console.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.errors import AgencyNotFound
from gateway.agency.repository import AgencyRepository
from gateway.auth.errors import (
    OperatorExists,
    OperatorInvalid,
    OperatorNotFound,
    OperatorRevoked,
    OperatorSelfRevoke,
    TokenExpiryInvalid,
    TokenNotFound,
)
from gateway.auth.models import ApiToken, Operator
from gateway.auth.repository import AuthRepository
from gateway.auth.schemas import OperatorOut, TokenInfo
from gateway.auth.tokens import TOKEN_PREFIX, hash_token, new_token
from gateway.db import Database
from gateway.ledger import service as ledger
from gateway.principal import Principal, Role
from gateway.problems import AgencySuspended, RequestInvalid, Unauthenticated


def _checked_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise TokenExpiryInvalid("expires_at: an instant with an offset, e.g. 2027-01-01T00:00:00+07:00",
                                 field="expires_at")
    try:
        expiry = expires_at.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:00:00-05:00: past the end of time in UTC
        raise TokenExpiryInvalid("expires_at: not a representable instant", field="expires_at") from exc
    if expiry <= now:
        raise TokenExpiryInvalid("expires_at: must be in the future", field="expires_at")
    return expiry


def _expiry_details(expires_at: datetime | None) -> dict[str, Any]:
    return {"expires_at": expires_at.isoformat()} if expires_at is not None else {}


def _operator_out(operator: Operator, active_tokens: int) -> OperatorOut:
    return OperatorOut(name=operator.name, role="admin" if operator.role == "admin" else "auditor",
                       created_at=operator.created_at, revoked_at=operator.revoked_at, active_tokens=active_tokens)


def _token_info(token: ApiToken, operator: Operator | None, now: datetime) -> TokenInfo:
    revoked = token.revoked_at is not None or (operator is not None and operator.revoked_at is not None)
    expired = token.expires_at is not None and token.expires_at <= now
    return TokenInfo(id=token.id, agency=token.agency_code, operator=operator.name if operator else None,
                     created_at=token.created_at, expires_at=token.expires_at,
                     revoked_at=token.revoked_at or (operator.revoked_at if operator else None),
                     state="revoked" if revoked else "expired" if expired else "active")


async def list_operators(session: AsyncSession) -> list[OperatorOut]:
    """Every operator, revoked ones too, oldest first, with the count of their usable tokens."""
    repo = AuthRepository(session)
    counts = await repo.active_token_counts(datetime.now(UTC))
    return [_operator_out(o, 0 if o.revoked_at else counts.get(o.id, 0)) for o in await repo.operators()]


async def list_tokens(session: AsyncSession, *, agency: str | None = None,
                      operator: str | None = None) -> list[TokenInfo]:
    """Tokens, oldest first: one agency's, one operator's, or (neither given) every token. Never a secret
    nor anything derived from one. An unknown agency or operator is :class:`AgencyNotFound` /
    :class:`OperatorNotFound`."""
    if agency is not None and operator is not None:
        raise RequestInvalid("give an agency or an operator, not both", field="agency")
    repo = AuthRepository(session)
    operator_id: str | None = None
    if agency is not None and await AgencyRepository(session).get(agency) is None:
        raise AgencyNotFound(field="code")
    if operator is not None:
        found = await repo.operator_by_name(operator)
        if found is None:
            raise OperatorNotFound(field="name")
        operator_id = found.id
    now = datetime.now(UTC)
    return [_token_info(t, o, now) for t, o in await repo.tokens(agency=agency, operator_id=operator_id)]


class AuthService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = AuthRepository(session)

    # -- operators ---------------------------------------------------------------------------------------------

    async def create_operator(self, name: str, role: str, *, actor: str,
                              expires_at: datetime | None = None) -> tuple[Operator, str, str]:
        """A new operator and its first token (expiring at ``expires_at``, if given): (operator, token id,
        token)."""
        name = name.strip()
        # "/" would make the operator unaddressable in /v1/operators/{name}/...
        if not name or len(name) > 200 or not name.isprintable() or "/" in name:
            raise OperatorInvalid("name: 1 to 200 printable characters, no '/'", field="name")
        if role not in ("admin", "auditor"):
            raise OperatorInvalid("role: admin or auditor", field="role")
        now = datetime.now(UTC)
        expiry = _checked_expiry(expires_at, now)
        if await self.repo.operator_by_name(name) is not None:
            raise OperatorExists("name: an operator with this name exists", field="name")
        operator = Operator(id=str(uuid.uuid4()), name=name, role=role, created_at=now)
        await self.repo.add(operator)
        token_id, token = await self._issue(operator_id=operator.id, expires_at=expiry)
        await ledger.append(
            self.session, type="operator.created", actor=actor,
            details={"operator": name, "role": role, "token_id": token_id, **_expiry_details(expiry)},
        )
        return operator, token_id, token

    async def operator(self, name: str) -> Operator:
        found = await self.repo.operator_by_name(name)
        if found is None:
            raise OperatorNotFound(field="name")
        return found

    async def revoke_operator(self, name: str, *, by: Principal) -> Operator:
        """Revoke the operator: every token of theirs is revoked and their console sessions end. Revoking a
        revoked operator changes nothing (and ledgers nothing). An admin cannot revoke themselves."""
        operator = await self.operator(name)
        if by.kind == "operator" and by.name == operator.name:
            raise OperatorSelfRevoke("name: an admin cannot revoke their own account", field="name")
        if operator.revoked_at is not None:
            return operator
        now = datetime.now(UTC)
        operator.revoked_at = now
        await self.repo.flush()
        tokens = await self.repo.revoke_operator_tokens(operator.id, now)
        sessions = await self.repo.end_console_sessions(operator.id, now)
        await ledger.append(
            self.session, type="operator.revoked", actor=by.actor,
            details={"operator": operator.name, "role": operator.role, "tokens_revoked": tokens,
                     "console_sessions_ended": sessions},
        )
        return operator

    async def issue_operator_token(self, name: str, *, actor: str,
                                   expires_at: datetime | None = None) -> tuple[str, str, datetime | None]:
        """(token id, token, expiry) of a new token for the operator."""
        operator = await self.operator(name)
        if operator.revoked_at is not None:
            raise OperatorRevoked("name: the operator was revoked", field="name")
        expiry = _checked_expiry(expires_at, datetime.now(UTC))
        token_id, token = await self._issue(operator_id=operator.id, expires_at=expiry)
        await ledger.append(
            self.session, type="token.issued", actor=actor,
            details={"token_id": token_id, "operator": operator.name, **_expiry_details(expiry)},
        )
        return token_id, token, expiry

    async def revoke_operator_token(self, name: str, token_id: str, *, actor: str) -> None:
        operator = await self.operator(name)
        token = await self.repo.token(token_id)
        if token is None or token.operator_id != operator.id:
            raise TokenNotFound(field="id")
        if token.revoked_at is None:
            token.revoked_at = datetime.now(UTC)
            await self.repo.flush()
            await ledger.append(
                self.session, type="token.revoked", actor=actor,
                details={"token_id": token_id, "operator": operator.name},
            )

    # -- agencies ----------------------------------------------------------------------------------------------

    async def issue_agency_token(self, code: str, *, actor: str,
                                 expires_at: datetime | None = None) -> tuple[str, str]:
        if await AgencyRepository(self.session).get(code) is None:
            raise AgencyNotFound(field="code")
        expiry = _checked_expiry(expires_at, datetime.now(UTC))
        token_id, token = await self._issue(agency_code=code, expires_at=expiry)
        await ledger.append(
            self.session, type="token.issued", actor=actor, sender=code,
            details={"token_id": token_id, "agency": code, **_expiry_details(expiry)},
        )
        return token_id, token

    async def revoke_agency_token(self, code: str, token_id: str, *, actor: str) -> None:
        token = await self.repo.token(token_id)
        if token is None or token.agency_code != code:
            raise TokenNotFound(field="id")
        if token.revoked_at is None:
            token.revoked_at = datetime.now(UTC)
            await self.repo.flush()
            await ledger.append(
                self.session, type="token.revoked", actor=actor, sender=code,
                details={"token_id": token_id, "agency": code},
            )

    async def _issue(self, *, agency_code: str | None = None, operator_id: str | None = None,
                     expires_at: datetime | None = None) -> tuple[str, str]:
        token = new_token()
        row = ApiToken(
            id=str(uuid.uuid4()),
            token_hash=hash_token(token),
            agency_code=agency_code,
            operator_id=operator_id,
            created_at=datetime.now(UTC),
            revoked_at=None,
            expires_at=expires_at,
        )
        await self.repo.add(row)
        return row.id, token

    # -- checking ----------------------------------------------------------------------------------------------

    async def authenticate_certificate(self, pem: str) -> Principal:
        """The agency whose registered certificate this is (mutual TLS); fails closed like a token."""
        from cryptography import x509

        from gateway.agency.certificates import certificate_sha256

        try:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise Unauthenticated("the client certificate is not readable") from exc
        registered = await AgencyRepository(self.session).certificate(certificate_sha256(cert))
        now = datetime.now(UTC)
        if registered is None or registered.revoked_at is not None or not (
            registered.not_before <= now < registered.not_after
        ):
            raise Unauthenticated("the client certificate is not a registered, valid certificate")
        agency = await AgencyRepository(self.session).get(registered.agency_code)
        if agency is None:
            raise Unauthenticated()
        if not agency.active:
            raise AgencySuspended()
        return Principal(kind="agency", name=agency.code)

    async def authenticate(self, token: str) -> Principal:
        """The caller behind a bearer token; fails closed on anything unknown, revoked, expired, suspended,
        or of a revoked operator."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            raise Unauthenticated()
        found = await self.repo.resolve(hash_token(token))
        if found is None:
            raise Unauthenticated()
        row, agency, operator = found
        if row.revoked_at is not None:
            raise Unauthenticated("the token was revoked")
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            raise Unauthenticated("the token expired")
        if agency is not None:
            if not agency.active:
                raise AgencySuspended()
            return Principal(kind="agency", name=agency.code, token_id=row.id)
        if operator is not None:
            if operator.revoked_at is not None:
                raise Unauthenticated("the operator was revoked")
            role: Role = "admin" if operator.role == "admin" else "auditor"
            return Principal(kind="operator", name=operator.name, role=role, token_id=row.id)
        raise Unauthenticated()


class AgencyTokens:
    """Issuing and revoking agency tokens as units of work (one committed transaction each)."""

    def __init__(self, db: Database, *, actor: str) -> None:
        self.db = db
        self.actor = actor

    async def issue(self, code: str, expires_at: datetime | None = None) -> tuple[str, str]:
        async with self.db.transaction() as session:
            return await AuthService(session).issue_agency_token(code, actor=self.actor, expires_at=expires_at)

    async def revoke(self, code: str, token_id: str) -> None:
        async with self.db.transaction() as session:
            await AuthService(session).revoke_agency_token(code, token_id, actor=self.actor)


class Operators:
    """Operator management as units of work (one committed transaction each), for the HTTP endpoints."""

    def __init__(self, db: Database, *, by: Principal) -> None:
        self.db = db
        self.by = by

    async def create(self, name: str, role: str, expires_at: datetime | None) -> tuple[OperatorOut, str, str]:
        """(the operator, token id, token)."""
        async with self.db.transaction() as session:
            operator, token_id, token = await AuthService(session).create_operator(
                name, role, actor=self.by.actor, expires_at=expires_at)
            return _operator_out(operator, 1), token_id, token

    async def revoke(self, name: str) -> OperatorOut:
        async with self.db.transaction() as session:
            operator = await AuthService(session).revoke_operator(name, by=self.by)
            return _operator_out(operator, 0)

    async def issue_token(self, name: str, expires_at: datetime | None) -> tuple[str, str, datetime | None]:
        async with self.db.transaction() as session:
            return await AuthService(session).issue_operator_token(name, actor=self.by.actor, expires_at=expires_at)

    async def revoke_token(self, name: str, token_id: str) -> None:
        async with self.db.transaction() as session:
            await AuthService(session).revoke_operator_token(name, token_id, actor=self.by.actor)
