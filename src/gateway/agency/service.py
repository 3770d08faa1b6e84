"""Register rules.

:class:`AgencyService` works in its caller's transaction (the ledger entry of each change inside it) and never
commits; :class:`Register` is the unit of work the API calls: one committed transaction per change.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
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
from gateway.agency.repository import AgencyRepository, NameHolder
from gateway.agency.schemas import AgencyCreate, AgencyOut, AgencyUpdate, CertificateOut, PushDelivery
from gateway.db import Database
from gateway.ledger import service as ledger
from gateway.problems import RequestInvalid


@dataclass(frozen=True)
class AgencyView:
    agency: Agency
    certificates: list[AgencyCertificate]
    aliases: list[str]

    def out(self) -> AgencyOut:
        return AgencyOut.of(self.agency, self.certificates, self.aliases)


def _check_code(code: str, field: str) -> None:
    if not is_valid_code(code):
        raise AgencyCodeInvalid(f"{field}: must match LLL.KK.JJ.Xnn (e.g. 000.00.00.H41)", field=field)


def _clean_name(name: str) -> str:
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned or len(cleaned) > 300 or any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise AgencyNameInvalid("name: 1 to 300 printable characters", field="name")
    return cleaned


_HELD_AS = {"code": "the code", "alt_code": "the alt_code", "alias": "an alias"}


def _taken(field: str, holder: NameHolder, *, where: str | None = None, same_kind: str | None = None) -> AgencyExists:
    """409 naming ``field`` (``where``: the item, e.g. ``aliases[2]``); ``same_kind``: the detail when the name
    is held in the same role (the register's original wording for a code or an alt_code)."""
    if same_kind is not None and holder.kind == field:
        return AgencyExists(same_kind, field=field)
    return AgencyExists(f"{where or field}: already {_HELD_AS[holder.kind]} of agency {holder.agency_code}",
                        field=field)


def _alias_is_own(aliases: Sequence[str], own: dict[str, str | None]) -> None:
    """Refuse (422, the request's own shape) an alias that repeats the request's own code or alt_code."""
    errors = [
        {"field": f"aliases.{i}", "message": f"the same as the {what} of this request"}
        for i, alias in enumerate(aliases)
        for what, value in own.items()
        if value is not None and alias == value
    ]
    if errors:
        fields = ", ".join(e["field"] for e in errors)
        raise RequestInvalid(f"invalid fields: {fields}", errors=errors)


def _concurrent(field: str) -> AgencyExists:
    """The database refused what the checks let through (a change committed in between)."""
    return AgencyExists(f"{field}: registered by a concurrent change", field=field)


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
        return AgencyView(agency, list(await self.repo.certificates(code)), await self.repo.aliases_of(code))

    async def list(self) -> list[AgencyView]:
        agencies = await self.repo.all()
        codes = [a.code for a in agencies]
        certs = await self.repo.certificates_for(codes)
        aliases = await self.repo.aliases_for(codes)
        return [AgencyView(a, certs[a.code], aliases[a.code]) for a in agencies]

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

    async def _names_held(self, names: Sequence[str | None]) -> Sequence[NameHolder]:
        """Who holds ``names`` now: the register's names lock first, so that what is read stays true until
        this transaction commits (codes, alt_codes and aliases share one namespace no constraint covers)."""
        await self.repo.lock_names()
        return await self.repo.holders([n for n in names if n is not None])

    @staticmethod
    def _refuse_taken(code: str, held: Sequence[NameHolder], *, alt_code: str | None, alt_code_given: bool,
                      aliases: Sequence[str], aliases_given: bool) -> None:
        """409 for a given alt_code or alias another agency holds as code, alt_code or alias, or that this
        agency (``code``) holds under another role it keeps: its code, or a stored alt_code or aliases the
        change does not replace. (An alt_code equal to the agency's own code stays allowed.)"""
        position = {alias: i for i, alias in enumerate(aliases)}
        for holder in held:
            if holder.agency_code == code:
                replaced = (holder.kind == "alt_code" and alt_code_given) or (holder.kind == "alias" and aliases_given)
                if replaced or (holder.kind == "code" and holder.name not in position):
                    continue
            if alt_code is not None and holder.name == alt_code:
                raise _taken("alt_code", holder, same_kind="alt_code: already used by another agency")
            if holder.name in position:
                raise _taken("aliases", holder, where=f"aliases[{position[holder.name]}]")

    async def register(self, data: AgencyCreate) -> AgencyView:
        _check_code(data.code, "code")
        name = _clean_name(data.name)
        endpoint = _check_endpoint(data.delivery.endpoint) if isinstance(data.delivery, PushDelivery) else None
        _alias_is_own(data.aliases, {"code": data.code, "alt_code": data.alt_code})
        held = await self._names_held([data.code, data.alt_code, *data.aliases])
        for holder in held:
            if holder.name == data.code:
                raise _taken("code", holder, same_kind="code: an agency with this code is already registered")
        if data.parent_code is not None:
            await self._check_parent(data.code, data.parent_code)
        self._refuse_taken(data.code, held, alt_code=data.alt_code, alt_code_given=True, aliases=data.aliases,
                           aliases_given=True)
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
            source="local",
            synced_at=None,
        )
        try:
            await self.repo.add(agency)
        except IntegrityError as exc:
            raise _concurrent("alt_code" if "alt_code" in str(exc.orig) else "code") from exc
        try:
            await self.repo.replace_aliases(agency.code, data.aliases)
        except IntegrityError as exc:
            raise _concurrent("aliases") from exc
        view = AgencyView(agency, [], sorted(data.aliases))
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
        alt_code_given, aliases_given = "alt_code" in fields, "aliases" in fields
        aliases = sorted(patch.aliases or [])
        if alt_code_given or aliases_given:
            if alt_code_given and aliases_given:
                _alias_is_own(patch.aliases or [], {"alt_code": patch.alt_code})
            held = await self._names_held([patch.alt_code if alt_code_given else None, *aliases])
            self._refuse_taken(code, held, alt_code=patch.alt_code if alt_code_given else None,
                               alt_code_given=alt_code_given, aliases=patch.aliases or [],
                               aliases_given=aliases_given)
        if alt_code_given:
            agency.alt_code = patch.alt_code
            changed["alt_code"] = patch.alt_code
        if aliases_given:
            changed["aliases"] = aliases
        if "delivery" in fields:
            if patch.delivery is None:
                raise AgencyEndpointInvalid("delivery: cannot be removed", field="delivery")
            if isinstance(patch.delivery, PushDelivery):
                agency.endpoint = _check_endpoint(patch.delivery.endpoint)
            else:
                agency.endpoint = None
            agency.delivery_mode = patch.delivery.mode
            changed["delivery"] = patch.delivery.model_dump(mode="json")
            if agency.source == "upstream":
                # An operator who delivers to an imported agency directly takes it over: it is local from
                # now on, and the upstream sync leaves it alone (gateway.upstream.sync).
                agency.source = "local"
                changed["source"] = "local"
        if "signature_policy" in fields and patch.signature_policy is not None:
            agency.signature_policy = patch.signature_policy
            changed["signature_policy"] = patch.signature_policy
        if "active" in fields and patch.active is not None:
            agency.active = patch.active
            changed["active"] = patch.active
        if changed:
            agency.updated_at = datetime.now(UTC)
            try:
                await self.repo.flush()
            except IntegrityError as exc:
                raise _concurrent("alt_code") from exc
            if aliases_given:
                try:
                    await self.repo.replace_aliases(code, aliases)
                except IntegrityError as exc:
                    raise _concurrent("aliases") from exc
                view = AgencyView(agency, view.certificates, aliases)
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
