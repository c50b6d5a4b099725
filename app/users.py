"""Web console users: add, list, remove, and check a password; passwords only as argon2 hashes.

Used by ``belegsync users`` and by the console's login.  A user removed here is logged out
everywhere at once (their sessions go with them, ON DELETE CASCADE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from shared.db import Database, WebSession, WebUser, utcnow
from shared.errors import UsageError

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is an attack
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


@dataclass(frozen=True)
class UserView:
    name: str
    created_at: datetime
    last_login_at: datetime | None
    sessions: int


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise UsageError(
            f"invalid user name {name!r}: 1-100 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UsageError(f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters")
    return password


class UserService:
    def __init__(self, db: Database) -> None:
        self._db = db

    @cached_property
    def _hasher(self) -> PasswordHasher:
        from argon2 import PasswordHasher

        # argon2-cffi's defaults (RFC 9106's low-memory profile: 64 MiB, 3 passes).
        return PasswordHasher()

    @cached_property
    def _dummy_hash(self) -> str:
        # Checked against for unknown names, so that "no such user" takes as long as a
        # wrong password and the timing tells nobody which names exist.
        return self._hasher.hash("not a password of anyone")

    def add(self, name: str, password: str) -> None:
        check_name(name)
        hashed = self._hasher.hash(check_password(password))
        try:
            with self._db.session() as session:
                if session.scalar(select(WebUser.id).where(WebUser.name == name)) is not None:
                    raise UsageError(f"a user named {name!r} already exists")
                session.add(WebUser(name=name, password_hash=hashed, created_at=utcnow()))
        except IntegrityError:
            raise UsageError(f"a user named {name!r} already exists") from None

    def list(self) -> list[UserView]:
        with self._db.session() as session:
            sessions = (
                select(func.count())
                .select_from(WebSession)
                .where(WebSession.user_id == WebUser.id, WebSession.expires_at > utcnow())
                .scalar_subquery()
            )
            rows = session.execute(
                select(WebUser.name, WebUser.created_at, WebUser.last_login_at, sessions).order_by(
                    WebUser.name
                )
            ).all()
        return [UserView(*row) for row in rows]

    def remove(self, name: str) -> None:
        with self._db.session() as session:
            user = session.scalar(select(WebUser).where(WebUser.name == name))
            if user is None:
                raise UsageError(f"unknown user {name!r} (see `belegsync users list`)")
            session.delete(user)

    def verify(self, name: str, password: str) -> int | None:
        """The user's id when ``password`` is theirs, else None; always costs one hash check."""
        from argon2.exceptions import InvalidHashError, VerificationError

        with self._db.session() as session:
            user = session.scalar(select(WebUser).where(WebUser.name == name))
            stored = user.password_hash if user is not None else self._dummy_hash
            try:
                self._hasher.verify(stored, password[:MAX_PASSWORD_LENGTH])
            except (VerificationError, InvalidHashError):
                return None
            if user is None:
                return None
            if self._hasher.check_needs_rehash(stored):
                user.password_hash = self._hasher.hash(password)
            user.last_login_at = utcnow()
            return user.id
