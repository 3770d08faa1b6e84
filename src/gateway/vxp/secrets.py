"""The VXP shared secrets, sealed: AES-256-GCM under a 32-byte key the gateway keeps in a file, never in the
database.

An agency token is only ever compared, so the gateway keeps its hash; a VXP secret keys the HMAC of every
call (``/work/shared/VXP.md``, "Authentication"), so the gateway must read it again. It is therefore stored
sealed, and the key that opens it lives outside the database: a copy of the database alone (a dump, a
backup of the database without ``keys/``) opens no secret. Each sealed secret is bound to its ``system_id``
as associated data, so a ciphertext copied onto another system's row does not open there.

The key file is ``<data_dir>/keys/vxp-secrets.key`` (32 raw bytes, mode 0600), created on first use the way
the gateway key is (:func:`gateway.signing.load_or_create`: under a lock in the keys directory, written whole
or not at all), or the file ``GATEWAY_VXP_SECRETS_KEY_FILE`` names, which is never created: a mistyped path
must not silently start a new key under which no stored secret opens.

Failures are typed and carry no secret: :class:`SecretKeyUnusable` (the key file is missing, unreadable or
not 32 bytes), :class:`SecretUnreadable` (a sealed secret does not open with this key and this system id:
the key file was replaced, the row was altered or moved).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config import Settings
from gateway.signing import _write_durably

KEY_BYTES = 32
NONCE_BYTES = 12
#: Associated data: what a sealed secret is (so it opens as nothing else) and whose it is.
_PURPOSE = b"gateway/vxp-system-secret/"


class SecretKeyUnusable(Exception):
    """The VXP secrets key file is missing, unreadable, or not exactly 32 bytes."""


class SecretUnreadable(Exception):
    """A sealed secret does not open with this key for this system id."""


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise SecretKeyUnusable(f"the VXP secrets key file {path} cannot be read ({exc.strerror})") from exc
    if len(key) != KEY_BYTES:
        raise SecretKeyUnusable(f"the VXP secrets key file {path} holds {len(key)} bytes, not {KEY_BYTES}")
    return key


def load_or_create_key(path: Path, *, create: bool) -> bytes:
    """The key in ``path``; when ``create`` and there is none, a new one generated there by the first caller.

    Several processes may start at once (``uvicorn --workers N``, a console command beside the server): the
    generation happens under an exclusive lock on ``<path>.lock``, and whoever takes it second reads what the
    first wrote. The file appears whole (temporary file, fsync, rename), so a caller that finds it needs no lock.
    """
    if path.exists() or not create:
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # released when lock_fd is closed, or when the process dies
        if path.exists():
            return _read_key(path)
        key = AESGCM.generate_key(bit_length=8 * KEY_BYTES)
        _write_durably(path, key, 0o600)
        return key
    finally:
        os.close(lock_fd)


def _associated_data(system_id: str) -> bytes:
    return _PURPOSE + system_id.encode("utf-8")


class SecretBox:
    """Seals and opens VXP secrets with the key in ``key_file``, read (or, with ``create``, generated) on first
    use and kept for the life of the process. Its ``repr`` names the file, never the key."""

    def __init__(self, key_file: Path, *, create: bool = False) -> None:
        self.key_file = key_file
        self._create = create
        self._aead: AESGCM | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """``GATEWAY_VXP_SECRETS_KEY_FILE`` (must exist), else ``<data_dir>/keys/vxp-secrets.key`` (created)."""
        return cls(settings.vxp_secrets_key_path, create=settings.vxp_secrets_key_file is None)

    def __repr__(self) -> str:
        return f"SecretBox(key_file={str(self.key_file)!r})"

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            self._aead = AESGCM(load_or_create_key(self.key_file, create=self._create))
        return self._aead

    def seal(self, system_id: str, secret: str) -> str:
        """``secret`` sealed for ``system_id``: base64 of a fresh 12-byte nonce followed by the ciphertext and
        its 16-byte tag."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, secret.encode("utf-8"), _associated_data(system_id))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, system_id: str, sealed: str) -> str:
        """The secret :meth:`seal` sealed for this ``system_id`` under this key; :class:`SecretUnreadable`
        for anything else (another key, another system id, an altered or truncated text)."""
        cipher = self._cipher()
        try:
            raw = base64.b64decode(sealed.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise SecretUnreadable("the sealed secret is not base64") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise SecretUnreadable("the sealed secret is too short")
        try:
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(system_id))
        except InvalidTag as exc:
            raise SecretUnreadable("the sealed secret does not open with this key for this system") from exc
        return plain.decode("utf-8")
