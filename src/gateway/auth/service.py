"""Issuing, revoking and checking credentials."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.errors import AgencyNotFound
from gateway.agency.repository import AgencyRepository
from gateway.auth.errors import OperatorExists, OperatorInvalid, TokenNotFound
from gateway.auth.models import ApiToken, Operator
from gateway.auth.repository import AuthRepository
from gateway.auth.tokens import TOKEN_PREFIX, hash_token, new_token
from gateway.db import Database
from gateway.ledger import service as ledger
from gateway.principal import Principal, Role
from gateway.problems import AgencySuspended, Unauthenticated


class AuthService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = AuthRepository(session)

    async def create_operator(self, name: str, role: str, *, actor: str) -> tuple[Operator, str, str]:
        """A new operator and its first token: (operator, token id, token)."""
        name = name.strip()
        if not name or len(name) > 200 or not name.isprintable():
            raise OperatorInvalid("name: 1 to 200 printable characters", field="name")
        if role not in ("admin", "auditor"):
            raise OperatorInvalid("role: admin or auditor", field="role")
        if await self.repo.operator_by_name(name) is not None:
            raise OperatorExists("name: an operator with this name exists", field="name")
        operator = Operator(id=str(uuid.uuid4()), name=name, role=role, created_at=datetime.now(UTC))
        await self.repo.add(operator)
        token_id, token = await self._issue(operator_id=operator.id)
        await ledger.append(
            self.session, type="operator.created", actor=actor,
            details={"operator": name, "role": role, "token_id": token_id},
        )
        return operator, token_id, token

    async def issue_agency_token(self, code: str, *, actor: str) -> tuple[str, str]:
        if await AgencyRepository(self.session).get(code) is None:
            raise AgencyNotFound(field="code")
        token_id, token = await self._issue(agency_code=code)
        await ledger.append(
            self.session, type="token.issued", actor=actor, sender=code, details={"token_id": token_id}
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
                self.session, type="token.revoked", actor=actor, sender=code, details={"token_id": token_id}
            )

    async def _issue(self, *, agency_code: str | None = None, operator_id: str | None = None) -> tuple[str, str]:
        token = new_token()
        row = ApiToken(
            id=str(uuid.uuid4()),
            token_hash=hash_token(token),
            agency_code=agency_code,
            operator_id=operator_id,
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        await self.repo.add(row)
        return row.id, token

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
        """The caller behind a bearer token; fails closed on anything unknown, revoked or suspended."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            raise Unauthenticated()
        found = await self.repo.resolve(hash_token(token))
        if found is None:
            raise Unauthenticated()
        row, agency, operator = found
        if row.revoked_at is not None:
            raise Unauthenticated("the token was revoked")
        if agency is not None:
            if not agency.active:
                raise AgencySuspended()
            return Principal(kind="agency", name=agency.code, token_id=row.id)
        if operator is not None:
            role: Role = "admin" if operator.role == "admin" else "auditor"
            return Principal(kind="operator", name=operator.name, role=role, token_id=row.id)
        raise Unauthenticated()


class AgencyTokens:
    """Issuing and revoking agency tokens as units of work (one committed transaction each)."""

    def __init__(self, db: Database, *, actor: str) -> None:
        self.db = db
        self.actor = actor

    async def issue(self, code: str) -> tuple[str, str]:
        async with self.db.transaction() as session:
            return await AuthService(session).issue_agency_token(code, actor=self.actor)

    async def revoke(self, code: str, token_id: str) -> None:
        async with self.db.transaction() as session:
            await AuthService(session).revoke_agency_token(code, token_id, actor=self.actor)
