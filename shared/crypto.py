"""Fernet encryption of stored API keys, and the key file created on first use."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from shared.errors import SecretKeyError, SetupError
from shared.settings import Settings, check_fernet_key

log = logging.getLogger(__name__)

WRONG_KEY = "cannot decrypt stored API keys: wrong BELEGSYNC_SECRET_KEY?"


class SecretBox:
    """Encrypts and decrypts secrets under one Fernet key.  Its repr shows nothing secret."""

    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as e:
            raise SecretKeyError(
                "BELEGSYNC_SECRET_KEY is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `belegsync secret-key`)"
            ) from e

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as e:
            raise SecretKeyError(WRONG_KEY) from e


def generate_key() -> str:
    return Fernet.generate_key().decode()


def load_secret_box(
    settings: Settings,
    *,
    may_create: bool | Callable[[], bool] = False,
    notice: Callable[[str], None] | None = None,
) -> SecretBox:
    """The key from BELEGSYNC_SECRET_KEY, else from the key file.

    A missing key file is created (mode 0600) only when ``may_create`` allows it — a command
    that is about to store the first API keys.  Otherwise, and for a file that holds no key,
    SetupError says what to do: nothing is written on the way.
    """
    if settings.secret_key is not None:
        return SecretBox(settings.secret_key.get_secret_value().strip())
    path = settings.secret_key_file
    if path.exists():
        return SecretBox(_read_key_file(path))
    allowed = may_create() if callable(may_create) else may_create
    if not allowed:
        raise SetupError(
            f"no secret key: BELEGSYNC_SECRET_KEY is unset and the key file {path} "
            "(BELEGSYNC_SECRET_KEY_FILE) does not exist; set the key the API keys were "
            "stored with, or restore the file"
        )
    key = generate_key()
    if not _write_private(path, key):
        # Another process created the file first: use its key, not ours.
        return SecretBox(_read_key_file(path))
    if notice is not None:
        notice(
            f"created secret key file {path} (mode 0600): it decrypts the stored API keys, "
            "keep it safe and back it up"
        )
    return SecretBox(key)


def _read_key_file(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SetupError(
            f"BELEGSYNC_SECRET_KEY_FILE: cannot read {path} ({type(e).__name__})"
        ) from None
    if mode & 0o077:
        log.warning("secret key file %s is readable by others (mode %o); chmod 600 it", path, mode)
    try:
        return check_fernet_key(text)
    except ValueError:
        raise SetupError(
            f"BELEGSYNC_SECRET_KEY_FILE: {path} does not hold a Fernet key (44 characters of "
            "url-safe base64, as `belegsync secret-key` prints)"
        ) from None


def _write_private(path: Path, content: str) -> bool:
    """Create ``path`` with mode 0600; False when it already existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(content + "\n")
    return True


def mask(secret: str) -> str:
    """Show only the last four characters of a secret."""
    tail = secret[-4:] if len(secret) > 8 else ""
    return f"***{tail}"
