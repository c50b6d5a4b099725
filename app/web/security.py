"""Sessions, CSRF tokens and the signing secret of the web console.

A session is a random token in an HttpOnly, SameSite=Strict cookie; the database keeps only its
SHA-256 (``web_sessions``), so logging out, removing the user or expiry ends it everywhere, and
a copy of the database holds no usable cookie.  Each session has its own CSRF token that every
state-changing form carries.  Before login there is no session: the login form's token is a
random nonce in a cookie plus its HMAC under the console's secret.

The secret is ``BELEGSYNC_WEB_SESSION_SECRET`` when set, else derived from the Fernet key with
HKDF-SHA256 (info ``belegsync web console v1``): one key is enough to run, and the derived
secret reveals nothing about the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from shared.db import Database, WebSession, WebUser, utcnow
from shared.settings import Settings

SESSION_COOKIE = "belegsync_session"
LOGIN_COOKIE = "belegsync_login"
# last_seen_at is written at most this often: a page load must not be a write on SQLite.
TOUCH_EVERY = timedelta(minutes=5)


def derive_secret(settings: Settings, fernet_key: str | None) -> bytes:
    """The console's signing secret (see the module docstring)."""
    if settings.web_session_secret is not None:
        return settings.web_session_secret.get_secret_value().encode()
    if not fernet_key:
        raise ValueError("no secret: set BELEGSYNC_WEB_SESSION_SECRET or BELEGSYNC_SECRET_KEY")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"belegsync web console v1"
    ).derive(fernet_key.encode())


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CurrentSession:
    id: int
    user: str
    csrf_token: str


class Sessions:
    def __init__(self, db: Database, idle: timedelta) -> None:
        self._db = db
        self._idle = idle

    def open(self, user_id: int) -> str:
        """A new session for ``user_id``; returns the cookie's token (shown to nobody else)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self._db.session() as session:
            # Expired sessions of anyone are swept here, the one write that happens anyway.
            session.execute(delete(WebSession).where(WebSession.expires_at < now))
            session.add(
                WebSession(
                    token_hash=_hash(token),
                    user_id=user_id,
                    csrf_token=secrets.token_urlsafe(32),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self._idle,
                )
            )
        return token

    def current(self, token: str | None) -> CurrentSession | None:
        if not token or len(token) > 200:
            return None
        now = utcnow()
        with self._db.session() as session:
            row = session.execute(
                select(WebSession, WebUser.name)
                .join(WebUser, WebUser.id == WebSession.user_id)
                .where(WebSession.token_hash == _hash(token), WebSession.expires_at > now)
            ).first()
            if row is None:
                return None
            found, name = row
            if now - found.last_seen_at > TOUCH_EVERY:
                found.last_seen_at = now
                found.expires_at = now + self._idle
            return CurrentSession(found.id, name, found.csrf_token)

    def close(self, session_id: int) -> None:
        with self._db.session() as session:
            session.execute(delete(WebSession).where(WebSession.id == session_id))


def csrf_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


class LoginTokens:
    """The login form's CSRF token: a cookie nonce and its HMAC in the form."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @staticmethod
    def nonce() -> str:
        return secrets.token_urlsafe(24)

    def token(self, nonce: str) -> str:
        return hmac.new(self._secret, b"login:" + nonce.encode(), hashlib.sha256).hexdigest()

    def valid(self, nonce: str | None, given: object) -> bool:
        return bool(nonce) and csrf_ok(self.token(nonce or ""), given)


def expires_in(at: datetime) -> float:
    return max(0.0, (at - utcnow()).total_seconds())
