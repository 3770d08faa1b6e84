"""Register rules.

:class:`AgencyService` works in its caller's transaction (the ledger entry of each change inside it) and never
commits; :class:`Register` is the unit of work the API calls: one committed transaction per change.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.certificates import read_pem_certificate
from gateway.agency.codes import is_valid_code
from gateway.agency.errors import (
    AgencyCodeInvalid,
    AgencyEndpointInvalid,
    AgencyExists,
    AgencyNameInvalid,
    AgencyNotFound,
    AgencyParentUnknown,
    CertificateExists,
    CertificateNotFound,
)
from gateway.agency.models import Agency, AgencyCertificate
from gateway.agency.repository import AgencyRepository
from gateway.agency.schemas import AgencyCreate, AgencyOut, AgencyUpdate, CertificateOut, PushDelivery
from gateway.db import Database
from gateway.ledger import service as ledger


@dataclass(frozen=True)
class AgencyView:
    agency: Agency
    certificates: list[AgencyCertificate]

    def out(self) -> AgencyOut:
        return AgencyOut.of(self.agency, self.certificates)


def _check_code(code: str, field: str) -> None:
    if not is_valid_code(code):
        raise AgencyCodeInvalid(f"{field}: must match LLL.KK.JJ.Xnn (e.g. 000.00.00.H41)", field=field)


def _clean_name(name: str) -> str:
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned or len(cleaned) > 300 or any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise AgencyNameInvalid("name: 1 to 300 printable characters", field="name")
    return cleaned


def _check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise AgencyEndpointInvalid(
            "delivery.endpoint: an absolute http(s) URL without credentials", field="delivery.endpoint"
        )
    return endpoint


class AgencyService:
    def __init__(self, session: AsyncSession, *, actor: str) -> None:
        self.session = session
        self.repo = AgencyRepository(session)
        self.actor = actor

    async def view(self, code: str) -> AgencyView:
        agency = await self.repo.get(code)
        if agency is None:
            raise AgencyNotFound(field="code")
        return AgencyView(agency, list(await self.repo.certificates(code)))

    async def list(self) -> list[AgencyView]:
        agencies = await self.repo.all()
        certs = await self.repo.certificates_for([a.code for a in agencies])
        return [AgencyView(a, certs[a.code]) for a in agencies]

    async def _check_parent(self, code: str, parent_code: str) -> None:
        _check_code(parent_code, "parent_code")
        # Walk up from the proposed parent: it must exist and must not lead back to this agency.
        cursor: str | None = parent_code
        while cursor is not None:
            if cursor == code:
                raise AgencyParentUnknown("parent_code: would make the agency its own ancestor",
                                          field="parent_code")
            parent = await self.repo.get(cursor)
            if parent is None:
                raise AgencyParentUnknown("parent_code: no such agency is registered", field="parent_code")
            cursor = parent.parent_code

    async def _check_alt_code(self, code: str, alt_code: str | None) -> None:
        if alt_code is None:
            return
        other = await self.repo.by_alt_code(alt_code)
        if other is not None and other.code != code:
            raise AgencyExists("alt_code: already used by another agency", field="alt_code")

    async def register(self, data: AgencyCreate) -> AgencyView:
        _check_code(data.code, "code")
        name = _clean_name(data.name)
        endpoint = _check_endpoint(data.delivery.endpoint) if isinstance(data.delivery, PushDelivery) else None
        if await self.repo.get(data.code) is not None:
            raise AgencyExists("code: an agency with this code is already registered", field="code")
        if data.parent_code is not None:
            await self._check_parent(data.code, data.parent_code)
        await self._check_alt_code(data.code, data.alt_code)
        now = datetime.now(UTC)
        agency = Agency(
            code=data.code,
            alt_code=data.alt_code,
            name=name,
            parent_code=data.parent_code,
            delivery_mode=data.delivery.mode,
            endpoint=endpoint,
            signature_policy=data.signature_policy,
            active=data.active,
            created_at=now,
            updated_at=now,
        )
        await self.repo.add(agency)
        view = AgencyView(agency, [])
        await ledger.append(
            self.session,
            type="agency.registered",
            actor=self.actor,
            sender=agency.code,
            details={"agency": view.out().model_dump(mode="json", exclude={"certificates"})},
        )
        return view

    async def update(self, code: str, patch: AgencyUpdate) -> AgencyView:
        view = await self.view(code)
        agency = view.agency
        fields = patch.model_fields_set
        changed: dict[str, object] = {}
        if "name" in fields:
            if patch.name is None:
                raise AgencyNameInvalid("name: cannot be removed", field="name")
            agency.name = _clean_name(patch.name)
            changed["name"] = agency.name
        if "parent_code" in fields:
            if patch.parent_code is not None:
                await self._check_parent(code, patch.parent_code)
            agency.parent_code = patch.parent_code
            changed["parent_code"] = patch.parent_code
        if "alt_code" in fields:
            await self._check_alt_code(code, patch.alt_code)
            agency.alt_code = patch.alt_code
            changed["alt_code"] = patch.alt_code
        if "delivery" in fields:
            if patch.delivery is None:
                raise AgencyEndpointInvalid("delivery: cannot be removed", field="delivery")
            if isinstance(patch.delivery, PushDelivery):
                agency.endpoint = _check_endpoint(patch.delivery.endpoint)
            else:
                agency.endpoint = None
            agency.delivery_mode = patch.delivery.mode
            changed["delivery"] = patch.delivery.model_dump(mode="json")
        if "signature_policy" in fields and patch.signature_policy is not None:
            agency.signature_policy = patch.signature_policy
            changed["signature_policy"] = patch.signature_policy
        if "active" in fields and patch.active is not None:
            agency.active = patch.active
            changed["active"] = patch.active
        if changed:
            agency.updated_at = datetime.now(UTC)
            await self.repo.flush()
            await ledger.append(
                self.session, type="agency.updated", actor=self.actor, sender=code, details={"changed": changed}
            )
        return view

    async def add_certificate(self, code: str, pem: str) -> CertificateOut:
        await self.view(code)
        now = datetime.now(UTC)
        info = read_pem_certificate(pem, now=now)
        if await self.repo.certificate(info.sha256) is not None:
            raise CertificateExists("pem: this certificate is already registered", field="pem")
        cert = AgencyCertificate(
            sha256=info.sha256,
            agency_code=code,
            pem=info.pem,
            subject=info.subject,
            not_before=info.not_before,
            not_after=info.not_after,
            added_at=now,
            revoked_at=None,
        )
        await self.repo.add_certificate(cert)
        await ledger.append(
            self.session,
            type="certificate.added",
            actor=self.actor,
            sender=code,
            details={"sha256": info.sha256, "subject": info.subject,
                     "not_before": info.not_before.isoformat(), "not_after": info.not_after.isoformat()},
        )
        return CertificateOut.of(cert)

    async def revoke_certificate(self, code: str, sha256: str) -> CertificateOut:
        await self.view(code)
        cert = await self.repo.certificate(sha256.lower())
        if cert is None or cert.agency_code != code:
            raise CertificateNotFound(field="sha256")
        if cert.revoked_at is None:
            cert.revoked_at = datetime.now(UTC)
            await self.repo.flush()
            await ledger.append(
                self.session, type="certificate.revoked", actor=self.actor, sender=code,
                details={"sha256": cert.sha256},
            )
        return CertificateOut.of(cert)


class Register:
    """The register's changes as units of work (CONTRIBUTING.md, "Transactions"): each opens one transaction
    and commits it, the ledger entry inside, before the caller answers."""

    def __init__(self, db: Database, *, actor: str) -> None:
        self.db = db
        self.actor = actor

    async def register(self, data: AgencyCreate) -> AgencyView:
        async with self.db.transaction() as session:
            return await AgencyService(session, actor=self.actor).register(data)

    async def update(self, code: str, patch: AgencyUpdate) -> AgencyView:
        async with self.db.transaction() as session:
            return await AgencyService(session, actor=self.actor).update(code, patch)

    async def add_certificate(self, code: str, pem: str) -> CertificateOut:
        async with self.db.transaction() as session:
            return await AgencyService(session, actor=self.actor).add_certificate(code, pem)

    async def revoke_certificate(self, code: str, sha256: str) -> CertificateOut:
        async with self.db.transaction() as session:
            return await AgencyService(session, actor=self.actor).revoke_certificate(code, sha256)
