"""VXP systems: the credentials of the QLVB installations that speak the national axis protocol.

One installation usually serves many agencies (a province's departments), so a system is registered for one
agency and serves, by default, every agency registered under it (``subtree``: the register's ``parent_code``
chain leads to it), or that agency alone (``agency``). It signs each call with an HMAC keyed by its shared
secret (``/work/shared/VXP.md``, "Authentication"), which the gateway must read again: the secret is stored
sealed (:mod:`gateway.vxp.secrets`), shown once when the system is created, and never again.

:class:`VxpSystemService` works in its caller's transaction (the ledger entry of each change inside it) and
never commits; :class:`VxpSystems` is the unit of work the admin API calls, and what the VXP face asks who is
calling (:meth:`VxpSystems.authenticate`).
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.errors import AgencyNotFound
from gateway.agency.repository import AgencyRepository
from gateway.db import Database
from gateway.ledger import service as ledger
from gateway.logs import get_logger
from gateway.problems import NotFound
from gateway.vxp.models import VxpSystem
from gateway.vxp.repository import VxpRepository
from gateway.vxp.schemas import Serves, VxpSystemCreated
from gateway.vxp.secrets import SecretBox, SecretKeyUnusable, SecretUnreadable

_log = get_logger("gateway.vxp")

SYSTEM_ID_PREFIX = "vxp-"
#: What :func:`new_system_id` makes; anything else names no system and is refused before any read (a header
#: the caller chose never reaches the database).
SYSTEM_ID_PATTERN = re.compile(r"vxp-[A-Za-z0-9_-]{16}")


class VxpSystemNotFound(NotFound):
    slug = "vxp-system-not-found"
    title = "No VXP system with this id is registered"


def new_system_id() -> str:
    """``vxp-`` and 16 url-safe characters (96 random bits): readable in a config file, unique in practice (the
    primary key refuses the rare repeat)."""
    return SYSTEM_ID_PREFIX + secrets.token_urlsafe(12)


def new_secret() -> str:
    """256 random bits as 43 url-safe characters: the SDK uses the secret as text."""
    return secrets.token_urlsafe(32)


def served_codes(agency: str, serves: str, links: Iterable[tuple[str, str | None]]) -> frozenset[str]:
    """The codes a system registered for ``agency`` serves: the agency itself and, for ``subtree``, every code
    whose ``parent_code`` chain in ``links`` leads to it."""
    if serves != "subtree":
        return frozenset({agency})
    children: dict[str, list[str]] = defaultdict(list)
    for code, parent in links:
        if parent is not None:
            children[parent].append(code)
    found = {agency}
    pending = [agency]
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:  # the register refuses cycles; this keeps a walk finite regardless
                found.add(child)
                pending.append(child)
    return frozenset(found)


@dataclass(frozen=True)
class CreatedSystem:
    """A new system and its secret in clear, which leaves the gateway once: in the answer to its creation."""

    system: VxpSystem
    secret: str = field(repr=False)

    def out(self) -> VxpSystemCreated:
        return VxpSystemCreated(system_id=self.system.system_id, secret=self.secret,
                                agency=self.system.agency_code,
                                serves="agency" if self.system.serves == "agency" else "subtree")


@dataclass(frozen=True)
class AuthenticatedSystem:
    """A system the VXP face may check a call's HMAC for (:meth:`VxpSystems.authenticate`).

    ``served``: the agency codes the system speaks for (its agency, plus for ``subtree`` every agency whose
    ``parent_code`` chain leads to it), suspended ones included: the caller decides what a suspended agency
    may do. ``secret``: the shared secret in clear, for this one call; never logged (not in the ``repr``).
    """

    system_id: str
    agency: str
    serves: Serves
    secret: str = field(repr=False)
    served: frozenset[str]


class VxpSystemService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = VxpRepository(session)

    async def create(self, agency: str, serves: Serves, *, box: SecretBox, actor: str) -> CreatedSystem:
        if await AgencyRepository(self.session).get(agency) is None:
            raise AgencyNotFound("agency: no agency with this code is registered", field="agency")
        system_id, secret = new_system_id(), new_secret()
        system = VxpSystem(
            system_id=system_id,
            agency_code=agency,
            serves=serves,
            secret_ciphertext=box.seal(system_id, secret),
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        await self.repo.add(system)
        await ledger.append(
            self.session, type="vxp_system.created", actor=actor, sender=agency,
            details={"system_id": system_id, "serves": serves},
        )
        return CreatedSystem(system, secret)

    async def list(self) -> Sequence[VxpSystem]:
        return await self.repo.all()

    async def revoke(self, system_id: str, *, actor: str) -> VxpSystem:
        """Revoke: the system stays on record (with ``revoked_at``) and is refused from its next call on."""
        system = await self.repo.get_for_update(system_id) if SYSTEM_ID_PATTERN.fullmatch(system_id) else None
        if system is None:
            raise VxpSystemNotFound(field="system_id")
        if system.revoked_at is None:
            system.revoked_at = datetime.now(UTC)
            await self.repo.flush()
            await ledger.append(
                self.session, type="vxp_system.revoked", actor=actor, sender=system.agency_code,
                details={"system_id": system.system_id},
            )
        return system


class VxpSystems:
    """The VXP systems as units of work (CONTRIBUTING.md, "Transactions"): each change one committed
    transaction, the ledger entry inside; and the authentication of a call, reads only."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box

    async def create(self, agency: str, serves: Serves, *, actor: str) -> CreatedSystem:
        async with self.db.transaction() as session:
            return await VxpSystemService(session).create(agency, serves, box=self.box, actor=actor)

    async def revoke(self, system_id: str, *, actor: str) -> VxpSystem:
        async with self.db.transaction() as session:
            return await VxpSystemService(session).revoke(system_id, actor=actor)

    async def authenticate(self, system_id: str) -> AuthenticatedSystem | None:
        """The system ``system_id`` names, with its secret in clear and the codes it serves; None when it is
        unknown or revoked, or when its secret does not open (the key file was replaced, the row altered):
        every such call fails closed.

        Nothing is cached: each call reads the system again, so a revocation refuses the very next call.
        """
        if SYSTEM_ID_PATTERN.fullmatch(system_id) is None:
            return None
        async with self.db.read() as session:
            repo = VxpRepository(session)
            system = await repo.get(system_id)
            if system is None or system.revoked_at is not None:
                return None
            try:
                secret = self.box.open(system.system_id, system.secret_ciphertext)
            except (SecretUnreadable, SecretKeyUnusable) as exc:
                _log.error("vxp system refused: its secret does not open", system_id=system.system_id,
                           error=str(exc), key_file=str(self.box.key_file))
                return None
            links = await repo.parent_links() if system.serves == "subtree" else []
        serves: Serves = "agency" if system.serves == "agency" else "subtree"
        return AuthenticatedSystem(
            system_id=system.system_id,
            agency=system.agency_code,
            serves=serves,
            secret=secret,
            served=served_codes(system.agency_code, serves, links),
        )
