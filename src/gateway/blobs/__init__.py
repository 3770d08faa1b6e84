"""Content-addressed storage of original envelopes and attachment files (by SHA-256)."""

from gateway.blobs.store import BlobStore, BlobWriter

__all__ = ["BlobStore", "BlobWriter"]
