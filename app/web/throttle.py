"""Login throttling per user name and per client address, in the database (every web process
of a deployment sees the same counts).

After ``limit`` failures within ``WINDOW`` a name or an address must wait before the next
attempt: 30 s, doubling with each further failure, at most 15 minutes.  While it waits no
password is even checked, so guessing gets no faster by trying harder.  A success clears the
name's count; an address's count only ages out (one good login must not whitewash a scan).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from shared.db import Database, LoginThrottle, utcnow

WINDOW = timedelta(minutes=15)
FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
USER_LIMIT = 5
# An office behind one NAT address has several people who mistype.
ADDRESS_LIMIT = 20


@dataclass(frozen=True)
class Keys:
    user: str
    address: str

    @classmethod
    def of(cls, user: str, address: str) -> Keys:
        return cls(f"user:{user.casefold()[:100]}", f"addr:{address[:100]}")

    def limits(self) -> dict[str, int]:
        return {self.user: USER_LIMIT, self.address: ADDRESS_LIMIT}


class LoginThrottleBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def wait_seconds(self, keys: Keys) -> float:
        """How long these keys must still wait before a login may be tried (0: now)."""
        now = utcnow()
        wait = 0.0
        with self._db.session() as session:
            for key in keys.limits():
                row = session.get(LoginThrottle, key)
                if row is not None and row.blocked_until is not None and row.blocked_until > now:
                    wait = max(wait, (row.blocked_until - now).total_seconds())
        return wait

    def failed(self, keys: Keys) -> None:
        now = utcnow()
        for key, limit in keys.limits().items():
            for _ in range(3):  # two processes creating the same row: the loser tries again
                try:
                    with self._db.session() as session:
                        row = session.get(LoginThrottle, key)
                        if row is None:
                            row = LoginThrottle(key=key, failures=0, last_failed_at=now)
                            session.add(row)
                        elif now - row.last_failed_at > WINDOW:
                            row.failures = 0
                        row.failures += 1
                        row.last_failed_at = now
                        if row.failures >= limit:
                            delay = FIRST_DELAY * 2 ** min(row.failures - limit, 10)
                            row.blocked_until = now + min(delay, MAX_DELAY)
                    break
                except IntegrityError:
                    continue

    def succeeded(self, keys: Keys) -> None:
        with self._db.session() as session:
            row = session.get(LoginThrottle, keys.user)
            if row is not None:
                session.delete(row)
