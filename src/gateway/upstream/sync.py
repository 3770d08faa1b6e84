"""The upstream axis's register, imported into the local one (issue 15: ``gateway upstream agencies sync``).

A province's gateway reaches ministries, other provinces and the Government Office through its upstream
axis. For a document to name them, the local register must know them: this module reads the upstream's
register (getAgenciesList, getAgenciesListQD20, getSynchronizeUnit) and keeps a copy of it as agencies of
delivery mode ``upstream``, ``source = upstream``. A document to one is forwarded there by the delivery worker
(:mod:`gateway.delivery.forward`); a message from one arrives through the upstream poller.

Two steps, the network outside the transaction:

1. :func:`fetch`: the three lists, over the VXP protocol (:class:`gateway.upstream.client.UpstreamClient`).
   Any failure there (:class:`~gateway.upstream.errors.UpstreamError`) ends the sync with nothing changed.
2. :meth:`UpstreamRegisterSync.run`'s one transaction: the register's names lock, the register read,
   :func:`merge` and :func:`plan` (pure), the rows written, and one ledger entry ``upstream.agencies_synced``
   (the counts, the codes, what was skipped or dropped and why; never a secret), last.

The lists are merged by agency code (the OrganId, ``LLL.KK.JJ.Xnn``): a row's code is the first of its
candidates that is a valid OrganId (getAgenciesList: ``code``, then ``oldCode``; getAgenciesListQD20:
``code102``, then ``code``; getSynchronizeUnit: ``code``); its other candidates become the agency's other
names. The QĐ 20 identifier (getAgenciesListQD20's ``code`` beside a valid ``code102``) becomes the
``alt_code``, every other name an alias. A row with no valid OrganId is attached by its ``id`` to the agency
another list gave that ``id`` (its codes become aliases), else it is skipped. The name is getAgenciesList's,
else getSynchronizeUnit's, else getAgenciesListQD20's; ``pid`` names the parent by the upstream's ``id`` (or
directly by code); ``deleted`` in getSynchronizeUnit makes the agency inactive.

The rules:

- a LOCAL agency is never changed. An upstream agency whose code a local agency holds as its code
  (``local-agency``) or as its alt_code or an alias (``name-held-locally``) is skipped;
- an upstream agency is skipped when its code is no OrganId (``code-invalid``) or it has no name
  (``name-missing``);
- a name (alt_code or alias) is dropped, the agency imported without it, when it is not 1 to 64 of
  ``A-Z a-z 0-9 . _ -`` (``name-invalid``), a local agency holds it (``held-locally``), it is an agency's
  code (``is-a-code``), or two upstream agencies claim it (``ambiguous``: it would route to either);
- a parent that is not in the register after the sync is dropped (``parent-unknown``), and so is one that
  would make the agency its own ancestor (``parent-cycle``): the agency is imported without a parent;
- refreshable: running again updates the names, parents, alt_codes, aliases and active flag of the upstream agencies,
  adds new ones, and makes inactive the ones no longer listed (never deleted: documents and the ledger may
  name them). A name the listing gives another agency is taken from the upstream agency that held it.

An operator who switches an upstream agency to push or pull delivery takes it over (it becomes local) and
the sync leaves it alone from then on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.codes import ALIAS_PATTERN, is_valid_code
from gateway.agency.models import Agency
from gateway.agency.repository import AgencyRepository
from gateway.db import Database
from gateway.ledger import service as ledger
from gateway.upstream.client import SynchronizedUnit, UpstreamAgency, UpstreamAgencyQd20, UpstreamClient

__all__ = [
    "EVENT",
    "Dropped",
    "EmptyUpstreamRegister",
    "Listed",
    "Skipped",
    "SyncSummary",
    "UpstreamRegister",
    "UpstreamRegisterSync",
    "fetch",
    "merge",
    "plan",
]

EVENT = "upstream.agencies_synced"
#: the register's longest name (gateway.agency.service._clean_name)
MAX_NAME = 300
#: the most items of each list kept in the ledger entry and the summary (the counts stay exact)
MAX_LISTED = 1000
#: the most of a value from the upstream shown in a report (its text is not trusted to be short)
MAX_SHOWN = 80

SkipReason = Literal["code-invalid", "local-agency", "name-held-locally", "name-missing"]
DropReason = Literal["name-invalid", "held-locally", "is-a-code", "ambiguous", "parent-unknown", "parent-cycle"]
Field = Literal["alt_code", "aliases", "parent_code"]


class EmptyUpstreamRegister(Exception):
    """The upstream listed no agency at all: taken as a fault (a misconfigured upstream, a lost answer), never
    as "every upstream agency is gone"; nothing is changed."""


def _shown(value: str) -> str:
    """``value`` as a report may show it: control characters as spaces, bounded."""
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def _clean_name(name: str) -> str:
    cleaned = " ".join(
        "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in unicodedata.normalize("NFC", name)).split()
    )
    return cleaned[:MAX_NAME].rstrip()


# ----------------------------------------------------------------------------------------- the lists


@dataclass(frozen=True)
class UpstreamRegister:
    """What the upstream answered: its three register lists (QĐ 20 rows of every level asked)."""

    agencies: Sequence[UpstreamAgency]
    qd20: Sequence[UpstreamAgencyQd20]
    units: Sequence[SynchronizedUnit]
    qd20_levels: Sequence[str] = ()

    def counts(self) -> dict[str, int]:
        return {"getAgenciesList": len(self.agencies), "getAgenciesListQD20": len(self.qd20),
                "getSynchronizeUnit": len(self.units)}


async def fetch(client: UpstreamClient, qd20_levels: Sequence[int | str] = (1,)) -> UpstreamRegister:
    """The three lists, one call each (getAgenciesListQD20 once per level). Raises what the client raises."""
    agencies = await client.agencies()
    qd20: list[UpstreamAgencyQd20] = []
    for level in qd20_levels:
        qd20 += await client.agencies_qd20(level)
    units = await client.synchronize_unit()
    return UpstreamRegister(agencies, qd20, units, tuple(str(level) for level in qd20_levels))


# ----------------------------------------------------------------------------------------- merge (pure)


@dataclass(frozen=True)
class Skipped:
    code: str
    reason: SkipReason

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class Dropped:
    code: str
    field: Field
    value: str
    reason: DropReason

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "value": self.value, "reason": self.reason}


@dataclass
class Listed:
    """One upstream agency as the three lists describe it together (see the module docstring)."""

    code: str
    names: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    qd20: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    deleted: list[bool] = field(default_factory=list)

    @property
    def name(self) -> str:
        return next((n for n in (_clean_name(n) for n in self.names) if n), "")

    @property
    def active(self) -> bool:
        return not self.deleted or not all(self.deleted)

    def alt_code(self) -> str | None:
        return next((q for q in self.qd20 if q and q != self.code), None)

    def aliases(self) -> list[str]:
        alt = self.alt_code()
        return list(dict.fromkeys(n for n in (*self.qd20, *self.others) if n and n not in (self.code, alt)))


@dataclass(frozen=True)
class _Row:
    id: str
    candidates: tuple[str, ...]  # the first valid OrganId among them is the key
    name: str = ""
    pid: str = ""
    qd20: str = ""  # the QĐ 20 identifier, when the key is another candidate
    deleted: bool | None = None


def _rows(register: UpstreamRegister) -> list[_Row]:
    """Every row of the three lists in the order their names take precedence."""
    rows = [_Row(a.id.strip(), (a.code.strip(), a.old_code.strip()), a.name, a.pid.strip())
            for a in register.agencies]
    rows += [_Row(u.id.strip(), (u.code.strip(),), u.name, u.pid.strip(), deleted=u.deleted) for u in register.units]
    for q in register.qd20:
        code102, code = q.code102.strip(), q.code.strip()
        rows.append(_Row(q.id.strip(), (code102, code), q.name, qd20=code if is_valid_code(code102) else ""))
    return rows


def merge(register: UpstreamRegister) -> tuple[dict[str, Listed], list[Skipped]]:
    """The upstream agencies by code (parents resolved to codes where the upstream names them by ``id``), and
    the rows skipped because no code of theirs is an OrganId and no other list gives their ``id`` a code."""
    rows = _rows(register)
    listed: dict[str, Listed] = {}
    by_id: dict[str, str] = {}
    orphans: list[_Row] = []
    for row in rows:
        key = next((c for c in row.candidates if is_valid_code(c)), None)
        if key is None:
            orphans.append(row)
            continue
        if row.id:
            by_id.setdefault(row.id, key)
        entry = listed.setdefault(key, Listed(key))
        entry.names.append(row.name)
        if row.pid:
            entry.parents.append(row.pid)
        if row.qd20:
            entry.qd20.append(row.qd20)
        entry.others += [c for c in row.candidates if c and c != key and c != row.qd20]
        if row.deleted is not None:
            entry.deleted.append(row.deleted)
    skipped: dict[str, Skipped] = {}
    for row in orphans:
        owner = by_id.get(row.id) if row.id else None
        if owner is None:
            shown = _shown(next((c for c in row.candidates if c), row.id))
            skipped.setdefault(shown, Skipped(shown, "code-invalid"))
            continue
        entry = listed[owner]
        entry.names.append(row.name)
        entry.others += [c for c in row.candidates if c]
        if row.deleted is not None:
            entry.deleted.append(row.deleted)
    for entry in listed.values():
        entry.parents = [by_id.get(p, p) for p in entry.parents]
    return listed, sorted(skipped.values(), key=lambda s: s.code)


# ----------------------------------------------------------------------------------------- plan (pure)


@dataclass(frozen=True)
class Target:
    """What one upstream agency becomes."""

    code: str
    name: str
    parent_code: str | None
    alt_code: str | None
    aliases: tuple[str, ...]
    active: bool


@dataclass(frozen=True)
class Change:
    """An upstream agency already in the register and what it becomes (``listed``: the upstream listed it;
    ``fields``: the ones that change; ``was_active``: as it was before), read before anything is written."""

    agency: Agency
    target: Target
    listed: bool
    fields: tuple[str, ...]
    was_active: bool

    @classmethod
    def of(cls, agency: Agency, aliases: tuple[str, ...], target: Target, *, listed: bool) -> Change:
        now = (agency.name, agency.parent_code, agency.alt_code, aliases, agency.active)
        then = (target.name, target.parent_code, target.alt_code, target.aliases, target.active)
        names = ("name", "parent_code", "alt_code", "aliases", "active")
        return cls(agency, target, listed, tuple(n for n, a, b in zip(names, now, then, strict=True) if a != b),
                   agency.active)


@dataclass
class Plan:
    added: list[Target]  # parents before their children
    changes: list[Change]
    skipped: list[Skipped]
    dropped: list[Dropped]

    def deactivated(self) -> list[str]:
        return [c.target.code for c in self.changes if c.was_active and not c.target.active]

    def updated(self) -> list[str]:
        return [c.target.code for c in self.changes if c.fields and not (c.was_active and not c.target.active)]

    def unchanged(self) -> int:
        return sum(1 for c in self.changes if not c.fields)


def plan(listed: Mapping[str, Listed], skipped: Sequence[Skipped], register: Sequence[Agency],
         aliases: Mapping[str, Sequence[str]]) -> Plan:
    """What the register's upstream agencies become, given what the upstream ``listed`` and the register as
    it is (every agency, and the aliases by agency code). Local agencies are read, never changed."""
    local_names: dict[str, str] = {}  # every name a local agency holds → that agency
    for agency in register:
        if agency.source != "upstream":
            for name in (agency.code, agency.alt_code, *aliases.get(agency.code, ())):
                if name is not None:
                    local_names[name] = agency.code
    skips = list(skipped)
    imported: dict[str, Listed] = {}
    for code in sorted(listed):
        entry = listed[code]
        if code in local_names:
            skips.append(Skipped(code, "local-agency" if local_names[code] == code else "name-held-locally"))
        elif not entry.name:
            skips.append(Skipped(code, "name-missing"))
        else:
            imported[code] = entry
    codes = {a.code for a in register} | set(imported)
    dropped: list[Dropped] = []

    # Names: each taken by at most one upstream agency, never one a local agency holds or an agency's code.
    claims: dict[str, list[tuple[str, Field]]] = {}
    for code, entry in imported.items():
        alt = entry.alt_code()
        wanted: list[tuple[Field, str]] = [("alt_code", alt)] if alt is not None else []
        wanted += [("aliases", a) for a in entry.aliases()]
        for kind, name in wanted:
            reason: DropReason | None = (
                "name-invalid" if ALIAS_PATTERN.fullmatch(name) is None
                else "held-locally" if name in local_names
                else "is-a-code" if name in codes
                else None
            )
            if reason is not None:
                dropped.append(Dropped(code, kind, _shown(name), reason))
            else:
                claims.setdefault(name, []).append((code, kind))
    names: dict[str, dict[Field, list[str]]] = {code: {"alt_code": [], "aliases": []} for code in imported}
    for name, claimants in sorted(claims.items()):
        if len({code for code, _ in claimants}) > 1:
            dropped += [Dropped(code, kind, name, "ambiguous") for code, kind in claimants]
        else:
            code, kind = claimants[0]
            names[code][kind].append(name)
    taken = set(claims) | set(imported)  # what an upstream agency no longer listed must give up

    # Parents: in the register after the sync, and never a cycle.
    parents: dict[str, str | None] = {a.code: a.parent_code for a in register}
    wanted_parent: dict[str, str | None] = {}
    for code, entry in imported.items():
        ref = next((p for p in entry.parents if p), None)
        parent: str | None = None
        if ref is not None:
            if ref == code:
                dropped.append(Dropped(code, "parent_code", _shown(ref), "parent-cycle"))
            elif ref not in codes:
                dropped.append(Dropped(code, "parent_code", _shown(ref), "parent-unknown"))
            else:
                parent = ref
        wanted_parent[code] = parent
        parents[code] = parent
    for code in imported:
        if _leads_back(code, parents):
            dropped.append(Dropped(code, "parent_code", str(parents[code]), "parent-cycle"))
            parents[code] = None
            wanted_parent[code] = None

    targets = {
        code: Target(code, entry.name, wanted_parent[code], next(iter(names[code]["alt_code"]), None),
                     tuple(sorted(names[code]["aliases"])), entry.active)
        for code, entry in imported.items()
    }
    existing = {a.code: a for a in register}
    changes: list[Change] = []
    for agency in register:
        if agency.source != "upstream":
            continue
        now = tuple(sorted(aliases.get(agency.code, ())))
        target = targets.get(agency.code)
        if target is None:  # no longer listed: inactive, and without the names others took
            target = Target(agency.code, agency.name, agency.parent_code,
                            agency.alt_code if agency.alt_code not in taken else None,
                            tuple(a for a in now if a not in taken), False)
        changes.append(Change.of(agency, now, target, listed=agency.code in targets))
    added = [t for code, t in targets.items() if code not in existing]
    return Plan(_parents_first(added), changes, sorted(skips, key=lambda s: (s.code, s.reason)),
                sorted(dropped, key=lambda d: (d.code, d.field, d.value)))


def _leads_back(code: str, parents: Mapping[str, str | None]) -> bool:
    """Whether walking up from ``code``'s parent comes back to ``code``."""
    seen: set[str] = set()
    cursor = parents.get(code)
    while cursor is not None and cursor not in seen:
        if cursor == code:
            return True
        seen.add(cursor)
        cursor = parents.get(cursor)
    return False


def _parents_first(targets: Sequence[Target]) -> list[Target]:
    by_code = {t.code: t for t in targets}
    depth: dict[str, int] = {}

    def depth_of(code: str) -> int:
        chain: list[str] = []
        cursor: str | None = code
        while cursor is not None and cursor in by_code and cursor not in depth:
            chain.append(cursor)
            cursor = by_code[cursor].parent_code
        base = depth.get(cursor, 0) if cursor is not None else 0
        for i, c in enumerate(reversed(chain), start=1):
            depth[c] = base + i
        return depth[code]

    return sorted(targets, key=lambda t: (depth_of(t.code), t.code))


# ----------------------------------------------------------------------------------------- the summary


def _capped(items: Iterable[Any]) -> tuple[list[Any], bool]:
    out = list(items)
    return out[:MAX_LISTED], len(out) > MAX_LISTED


@dataclass(frozen=True)
class SyncSummary:
    upstream: str
    system_id: str
    listed: dict[str, int]
    qd20_levels: tuple[str, ...]
    added: list[str]
    updated: list[str]
    deactivated: list[str]
    unchanged: int
    skipped: list[Skipped]
    dropped: list[Dropped]

    def as_json(self) -> dict[str, Any]:
        """The ledger entry's details and the command's output (no secret: the URL has no credentials)."""
        lists: dict[str, list[Any]] = {
            "added": self.added, "updated": self.updated, "deactivated": self.deactivated,
            "skipped": [s.as_json() for s in self.skipped], "dropped": [d.as_json() for d in self.dropped],
        }
        capped = {name: _capped(items) for name, items in lists.items()}
        return {
            "upstream": self.upstream,
            "system_id": self.system_id,
            "listed": self.listed,
            "qd20_levels": list(self.qd20_levels),
            "added": len(self.added),
            "updated": len(self.updated),
            "deactivated": len(self.deactivated),
            "unchanged": self.unchanged,
            "skipped": len(self.skipped),
            "dropped": len(self.dropped),
            "codes": {name: capped[name][0] for name in ("added", "updated", "deactivated")},
            "skipped_codes": capped["skipped"][0],
            "dropped_names": capped["dropped"][0],
            "truncated": sorted(name for name, (_, cut) in capped.items() if cut),
        }


# ----------------------------------------------------------------------------------------- the unit of work


class UpstreamRegisterSync:
    """``gateway upstream agencies sync`` as a unit of work: fetch, then one transaction (module docstring)."""

    def __init__(self, db: Database, client: UpstreamClient, *, actor: str) -> None:
        self.db = db
        self.client = client
        self.actor = actor

    async def run(self, qd20_levels: Sequence[int | str] = (1,)) -> SyncSummary:
        upstream = await fetch(self.client, qd20_levels)
        if not (upstream.agencies or upstream.qd20 or upstream.units):
            raise EmptyUpstreamRegister("the upstream listed no agency at all; nothing was changed")
        async with self.db.transaction() as session:
            return await self._apply(session, upstream)

    async def _apply(self, session: AsyncSession, upstream: UpstreamRegister) -> SyncSummary:
        repo = AgencyRepository(session)
        await repo.lock_names()
        register = list(await repo.all())
        aliases = await repo.all_aliases()
        listed, skipped = merge(upstream)
        todo = plan(listed, skipped, register, aliases)
        now = datetime.now(UTC)

        # An alt_code that moves or goes is released first (the column is unique): any may then be taken.
        for change in todo.changes:
            if change.agency.alt_code is not None and change.agency.alt_code != change.target.alt_code:
                change.agency.alt_code = None
        await repo.flush()
        await repo.add_all([
            Agency(code=t.code, alt_code=t.alt_code, name=t.name, parent_code=t.parent_code, delivery_mode="upstream",
                   endpoint=None, signature_policy="required", active=t.active, created_at=now, updated_at=now,
                   source="upstream", synced_at=now)
            for t in todo.added
        ])
        new_aliases: dict[str, tuple[str, ...]] = {t.code: t.aliases for t in todo.added if t.aliases}
        for change in todo.changes:
            agency, target, fields = change.agency, change.target, change.fields
            agency.name = target.name
            agency.parent_code = target.parent_code
            agency.alt_code = target.alt_code
            agency.active = target.active
            if fields:
                agency.updated_at = now
            if change.listed:
                agency.synced_at = now
            if "aliases" in fields:
                new_aliases[agency.code] = target.aliases
        await repo.flush()
        await repo.replace_aliases_of(new_aliases)
        summary = SyncSummary(
            upstream=self.client.base_url, system_id=self.client.system_id, listed=upstream.counts(),
            qd20_levels=tuple(upstream.qd20_levels), added=[t.code for t in todo.added], updated=todo.updated(),
            deactivated=todo.deactivated(), unchanged=todo.unchanged(), skipped=todo.skipped, dropped=todo.dropped,
        )
        await ledger.append(session, type=EVENT, actor=self.actor, details=summary.as_json())
        return summary
