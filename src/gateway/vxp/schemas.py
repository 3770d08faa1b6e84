"""The JSON shapes of the VXP systems' admin API (part of the HTTP contract: add fields, never rename)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.agency.schemas import CodeStr
from gateway.vxp.models import VxpSystem

Serves = Literal["subtree", "agency"]

_SERVES_DOC = (
    "`subtree`: the agency and every agency registered under it (its `parent_code` chain leads to it); "
    "`agency`: that agency alone"
)


class VxpSystemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agency: CodeStr
    serves: Annotated[Serves, Field(description=_SERVES_DOC)] = "subtree"


class VxpSystemCreated(BaseModel):
    system_id: Annotated[str, Field(examples=["vxp-3q2W9xYz0aBcDeFg"])]
    secret: str = Field(description="the shared secret of the SDK's HMAC; shown once, never again")
    agency: str
    serves: Serves


class VxpSystemOut(BaseModel):
    system_id: str
    agency: str
    serves: Annotated[Serves, Field(description=_SERVES_DOC)]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, system: VxpSystem) -> VxpSystemOut:
        return cls(
            system_id=system.system_id,
            agency=system.agency_code,
            serves="agency" if system.serves == "agency" else "subtree",
            created_at=system.created_at,
            revoked_at=system.revoked_at,
        )


class VxpSystemList(BaseModel):
    items: list[VxpSystemOut]
