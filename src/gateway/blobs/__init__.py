"""Content-addressed storage of original envelopes and attachment files (by SHA-256).

``GATEWAY_BLOB_STORE`` chooses where: ``filesystem`` (``<data_dir>/blobs``, the embedded default) or
``postgresql`` (chunk rows in the gateway's PostgreSQL database, shared by every node).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.blobs.store import BlobCorrupt, BlobReader, BlobStore, BlobWriter, FilesystemBlobStore

if TYPE_CHECKING:
    from gateway.config import Settings

__all__ = ["BlobCorrupt", "BlobReader", "BlobStore", "BlobWriter", "FilesystemBlobStore", "blob_store"]


def blob_store(settings: Settings) -> BlobStore:
    """The store the settings choose (Settings refuses ``postgresql`` on a SQLite database)."""
    if settings.blob_store == "postgresql":
        from gateway.blobs.postgres import PostgresBlobStore

        return PostgresBlobStore(settings.blobs_dir, settings.effective_database_url)
    return FilesystemBlobStore(settings.blobs_dir)
