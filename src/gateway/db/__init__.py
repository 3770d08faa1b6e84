"""Database plumbing: engine, sessions, shared column types and the declarative base."""

from gateway.db.base import Base, UTCDateTime
from gateway.db.engine import Database, create_database

__all__ = ["Base", "Database", "UTCDateTime", "create_database"]
