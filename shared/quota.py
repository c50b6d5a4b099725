"""API quotas shared by every process of a deployment, kept in the database.

Billomat allows 300 calls per 15-minute window per account, shared with every other
integration of that account, and says after each call how many are left.  Before a call, a
process *reserves* it here (an atomic decrement), so that several consumers and the producer
of one Billomat account never overspend the window together and earn 429s.  GMI says nothing
in advance; its limits are recorded when it refuses (403/429, 422 code 105) so that nobody
calls again before the reset.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from shared.db import ApiQuota, Database
from shared.errors import RateLimitedError

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


# Our clock and Billomat's may differ a little: a window counts as over only this long after
# the reset time Billomat announced.
WINDOW_SLACK = timedelta(seconds=2)


class QuotaBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _row(self, api: str, scope: str) -> ApiQuota | None:
        with self._db.session() as session:
            return session.get(ApiQuota, (api, scope))

    @staticmethod
    def _get_or_create(session: Session, api: str, scope: str) -> ApiQuota:
        row = session.get(ApiQuota, (api, scope))
        if row is not None:
            return row
        try:
            with session.begin_nested():
                session.add(ApiQuota(api=api, scope=scope, updated_at=_now()))
        except IntegrityError:
            pass  # another process created it meanwhile
        row = session.get(ApiQuota, (api, scope))
        assert row is not None
        return row

    @staticmethod
    def _refusal(api: str, row: ApiQuota | None) -> RateLimitedError | None:
        if row is not None and row.blocked_until is not None and row.blocked_until > _now():
            return RateLimitedError(
                row.reason or "quota used up", api=api, reset_at=row.blocked_until
            )
        return None

    def check(self, api: str, scope: str) -> None:
        """Raise RateLimitedError while a refusal's wait is running."""
        refusal = self._refusal(api, self._row(api, scope))
        if refusal is not None:
            raise refusal

    def reserve(self, api: str, scope: str, calls: int = 1, *, keep: int = 0) -> None:
        """Take ``calls`` from the known remaining quota, leaving ``keep`` for others.

        Raises RateLimitedError (with the reset time) when the window has too few left, or
        while a refusal's wait is running.  An unknown quota (no answer seen yet in this
        window) is not limited: the next answer tells.  One transaction.
        """
        now = _now()
        with self._db.session() as session:
            row = session.get(ApiQuota, (api, scope))
            refusal = self._refusal(api, row)
            if refusal is not None:
                raise refusal
            if row is None or row.remaining is None or row.reset_at is None:
                return
            if row.reset_at + WINDOW_SLACK <= now:
                # A new window began; its size is unknown until the next answer.
                row.remaining = None
                return
            taken = session.execute(
                update(ApiQuota)
                .where(
                    ApiQuota.api == api,
                    ApiQuota.scope == scope,
                    ApiQuota.remaining >= calls + keep,
                )
                .values(remaining=ApiQuota.remaining - calls, updated_at=now)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return
            reset_at = row.reset_at
        raise RateLimitedError(
            f"{api} quota for this window is used up (keeping {keep} in reserve)",
            api=api,
            reset_at=reset_at + WINDOW_SLACK,
        )

    def record(self, api: str, scope: str, remaining: int, reset_at: datetime) -> None:
        """What the API said after a call.  Never raises: bookkeeping must not fail a call."""
        try:
            with self._db.session() as session:
                row = self._get_or_create(session, api, scope)
                same_window = (
                    row.reset_at is not None and abs((row.reset_at - reset_at).total_seconds()) < 2
                )
                if same_window and row.remaining is not None:
                    # Other reservations in flight already took their share.
                    row.remaining = min(row.remaining, remaining)
                else:
                    row.remaining = remaining
                row.reset_at = reset_at
                row.updated_at = _now()
        except SQLAlchemyError:
            log.warning("could not record the %s quota", api, exc_info=True)

    def block(self, api: str, scope: str, until: datetime, reason: str) -> None:
        """Nobody calls ``api`` for ``scope`` before ``until``."""
        try:
            with self._db.session() as session:
                row = self._get_or_create(session, api, scope)
                if row.blocked_until is None or row.blocked_until < until:
                    row.blocked_until = until
                row.reason = reason[:500]
                if api == "billomat":
                    row.remaining = 0
                    row.reset_at = until
                row.updated_at = _now()
        except SQLAlchemyError:
            log.warning("could not record the %s refusal", api, exc_info=True)

    def snapshot(self, api: str, scope: str) -> tuple[int | None, datetime | None]:
        row = self._row(api, scope)
        if row is None:
            return None, None
        return row.remaining, row.reset_at

    def all(self) -> list[ApiQuota]:
        with self._db.session() as session:
            return list(session.scalars(select(ApiQuota)))
