"""Token material, pure. Tokens carry 256 random bits; only their SHA-256 is stored.

A slow password hash is not needed: the token is not guessable, so a fast digest suffices to make a
database leak useless, and it lets a lookup be a single indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "gw_"  # noqa: S105 -- a public prefix, not a secret


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
