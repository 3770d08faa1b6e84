"""Who is calling, as established from a bearer token (or a client certificate). Not a domain package of
its own: every layer that decides who may see or do something reads it (ledger, documents, delivery, auth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "auditor"]


@dataclass(frozen=True)
class Principal:
    kind: Literal["agency", "operator", "console"]
    name: str  # agency code, operator name, or console user
    role: Role | None = None
    token_id: str | None = None

    @property
    def actor(self) -> str:
        """How the ledger names this caller."""
        if self.kind == "agency":
            return f"agency:{self.name}"
        if self.kind == "operator":
            return f"operator:{self.name}"
        return f"console:{self.name}"

    @property
    def agency_code(self) -> str | None:
        return self.name if self.kind == "agency" else None

    @property
    def is_operator(self) -> bool:
        return self.kind in ("operator", "console")


def console_principal() -> Principal:
    """The local CLI: whoever can reach the database directly is an administrator."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Principal(kind="console", name=user, role="admin")
