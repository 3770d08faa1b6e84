"""ORM mapping of the register (tables from migrations 0001, 0005 and 0007)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db.base import Base, UTCDateTime


class Agency(Base):
    __tablename__ = "agencies"

    code: Mapped[str] = mapped_column(String(13), primary_key=True)
    alt_code: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("agencies.code"))
    #: push | pull | upstream (an agency reached through the upstream axis: only ``source = upstream`` has it)
    delivery_mode: Mapped[str] = mapped_column(String(8))
    endpoint: Mapped[str | None] = mapped_column(String(2000))
    signature_policy: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: local (registered by an operator) | upstream (imported by gateway.upstream.sync, which owns the row)
    source: Mapped[str] = mapped_column(String(8), default="local")
    #: the last sync that found the agency listed upstream (None for a local agency)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    certificates: Mapped[list[AgencyCertificate]] = relationship(
        back_populates="agency", lazy="raise", order_by="AgencyCertificate.added_at"
    )


class AgencyCertificate(Base):
    __tablename__ = "agency_certificates"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_code: Mapped[str] = mapped_column(ForeignKey("agencies.code"), index=True)
    pem: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(1000))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    agency: Mapped[Agency] = relationship(back_populates="certificates", lazy="raise")


class AgencyAlias(Base):
    """Another code an agency is known by in the wild (migration 0005): unique across the register."""

    __tablename__ = "agency_aliases"

    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_code: Mapped[str] = mapped_column(ForeignKey("agencies.code"), index=True)
