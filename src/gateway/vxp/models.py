"""ORM mapping of the VXP systems (table from migration 0006)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base, UTCDateTime


class VxpSystem(Base):
    """A QLVB installation speaking the axis protocol: its id, the agency it is registered for, what it serves
    (``subtree``: that agency and every agency under it in the register; ``agency``: that agency alone) and its
    shared secret, sealed with the gateway's VXP secrets key (:mod:`gateway.vxp.secrets`), never in clear."""

    __tablename__ = "vxp_systems"

    system_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_code: Mapped[str] = mapped_column(ForeignKey("agencies.code"), index=True)
    serves: Mapped[str] = mapped_column(String(8))
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
