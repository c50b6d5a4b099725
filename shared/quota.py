"""API quotas shared by every process of a deployment, kept in the database.

Two facts make the quota the only speed limit and never a reason to waste a call:

- A call is *admitted* here before it is made: an atomic decrement of every window it counts
  in, all or nothing.  A document's step admits all its calls at once (both sides), so no call
  is spent on a document that then has to wait for the other side's window.
- A window that has no room says when it will (``RateLimitedError.reset_at``), so work waits
  exactly until then.

Billomat announces its window after every call (``X-Rate-Limit-Remaining``/``-Reset``); what it
says is reconciled with the calls still in flight.  GMI announces nothing, so its minute, day
and upload windows are counted here against the documented limits.  A refusal by either API
(429, GMI 403 code 429, GMI 422 code 105) blocks the quota until the reset it named.  The
arithmetic lives in ``shared.quota_plan``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from shared.db import ApiQuota, Database
from shared.errors import RateLimitedError
from shared.quota_plan import (
    BILLOMAT,
    BILLOMAT_APP_LIMIT,
    BILLOMAT_DEFAULT_LIMIT,
    GMI,
    GMI_DAY,
    GMI_MINUTE,
    GMI_UPLOADS,
    WINDOW_SLACK,
    Need,
    QuotaLimits,
    QuotaState,
    WindowSpec,
)
from shared.settings import Settings

__all__ = ["WINDOW_SLACK", "Admission", "QuotaBook", "Scopes", "limits_from"]

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (api, scope)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Scopes:
    """Under which names the book tracks one account's two quotas (never a key)."""

    billomat: str
    gmi: str

    def keys(self, need: Need) -> dict[Key, int]:
        return {
            (row, self.billomat if row == BILLOMAT else self.gmi): n
            for row, n in need.per_row().items()
        }


@dataclass
class Admission:
    """Calls admitted and not yet used, per window, with the window they were admitted in."""

    calls: dict[Key, int] = field(default_factory=dict)
    windows: dict[Key, datetime | None] = field(default_factory=dict)


def limits_from(settings: Settings) -> QuotaLimits:
    """The quotas as this deployment is configured (a registered Billomat app allows more)."""
    return QuotaLimits(
        gmi_minute=WindowSpec(settings.gmi_calls_per_minute, settings.gmi_minute_seconds),
        gmi_day=WindowSpec(settings.gmi_calls_per_day, settings.gmi_day_seconds),
        gmi_uploads=WindowSpec(settings.gmi_uploads_per_hour, settings.gmi_hour_seconds),
        billomat_default=settings.billomat_calls_per_window
        or (BILLOMAT_APP_LIMIT if settings.billomat_app_id else BILLOMAT_DEFAULT_LIMIT),
        billomat_window_seconds=settings.billomat_window_seconds,
    )


def _state(row: ApiQuota) -> QuotaState:
    return QuotaState(
        api=row.api,
        remaining=row.remaining,
        reset_at=row.reset_at,
        in_flight=row.in_flight or 0,
        window_limit=row.window_limit,
        window_seconds=row.window_seconds,
        keep=row.keep or 0,
        blocked_until=row.blocked_until,
    )


def _store(row: ApiQuota, state: QuotaState, now: datetime) -> None:
    row.remaining, row.reset_at, row.in_flight = state.remaining, state.reset_at, state.in_flight
    row.window_limit, row.window_seconds = state.window_limit, state.window_seconds
    row.updated_at = now


class QuotaBook:
    def __init__(self, db: Database, limits: QuotaLimits | None = None) -> None:
        self._db = db
        self.limits = limits or QuotaLimits()

    # -- rows ----------------------------------------------------------------------------------

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

    @contextmanager
    def _locked(self, keys: Iterable[Key]) -> Iterator[tuple[Session, dict[Key, ApiQuota]]]:
        """The rows of ``keys`` (created if missing), locked in one transaction.

        Always locked in the same order, so two processes admitting overlapping sets of quotas
        never deadlock.  (SQLite takes the whole database at BEGIN IMMEDIATE anyway.)
        """
        wanted = sorted(set(keys))
        with self._db.session() as session:
            condition = or_(*(and_(ApiQuota.api == a, ApiQuota.scope == s) for a, s in wanted))
            query = select(ApiQuota).where(condition).order_by(ApiQuota.api, ApiQuota.scope)
            rows = {(r.api, r.scope): r for r in session.scalars(query.with_for_update())}
            for api, scope in wanted:
                if (api, scope) not in rows:  # the first use of this window: create, then lock
                    self._get_or_create(session, api, scope)
                    row = session.get(
                        ApiQuota, (api, scope), with_for_update=True, populate_existing=True
                    )
                    assert row is not None
                    rows[(api, scope)] = row
            yield session, rows

    # -- admission -----------------------------------------------------------------------------

    def admit(self, scopes: Scopes, need: Need, *, work: bool) -> Admission:
        """Take ``need`` from every window it counts in, or raise RateLimitedError.

        All or nothing, in one transaction.  ``work``: document work, which leaves each
        window's ``keep`` to the polls; a poll may use the last call.  The error's
        ``reset_at`` is the latest moment one of the short windows frees up.
        """
        wanted = scopes.keys(need)
        if not wanted:
            return Admission()
        blocks = [(GMI, scopes.gmi)] if need.gmi else []
        now = _now()
        with self._locked([*wanted, *blocks]) as (_, rows):
            states = {key: _state(row) for key, row in rows.items()}
            short: list[tuple[str, QuotaState]] = []
            for key, state in states.items():
                state.roll(now, self.limits)
                blocked = key in blocks and state.blocked(now)
                room = state.room(now, self.limits, work=work)
                if blocked or (key in wanted and room < wanted[key]):
                    short.append((key[0], state))
            if short:
                api, state = max(short, key=lambda item: item[1].free_at(now))
                raise RateLimitedError(
                    self._refusal_text(api, state, rows[(api, _scope(api, scopes))]),
                    api=_family(api),
                    reset_at=state.free_at(now),
                )
            admission = Admission()
            for key, state in states.items():
                if key not in wanted:
                    continue  # a refusal block: read, not changed
                n = wanted[key]
                state.remaining = state.available(now, self.limits) - n
                if key[0] == BILLOMAT:
                    state.in_flight += n
                admission.calls[key] = n
                admission.windows[key] = state.reset_at
                _store(rows[key], state, now)
        return admission

    @staticmethod
    def _refusal_text(api: str, state: QuotaState, row: ApiQuota) -> str:
        if state.blocked_until is not None and row.reason:
            return row.reason
        window = {
            BILLOMAT: "window",
            "gmi.min": "minute",
            "gmi.day": "day",
            GMI_UPLOADS: "upload hour",
        }.get(api, "window")
        return f"{_family(api)} quota for this {window} is used up"

    def release(self, admission: Admission) -> None:
        """Give back admitted calls that were not made (the document needed fewer)."""
        unused = {key: n for key, n in admission.calls.items() if n > 0}
        if not unused:
            return
        now = _now()
        try:
            with self._locked(unused) as (_, rows):
                for key, n in unused.items():
                    row = rows[key]
                    state = _state(row)
                    if state.roll(now, self.limits) or row.reset_at != admission.windows[key]:
                        _store(row, state, now)
                        continue  # a new window: the old one's calls are gone anyway
                    if state.remaining is not None:
                        state.remaining += n
                    if key[0] == BILLOMAT:
                        state.in_flight = max(0, state.in_flight - n)
                    _store(row, state, now)
        except SQLAlchemyError:
            log.warning("could not give back %d unused call(s)", sum(unused.values()))
        admission.calls.clear()

    def reserve(self, api: str, scope: str, calls: int = 1, *, keep: int = 0) -> None:
        """Raise RateLimitedError unless ``api``'s windows for ``scope`` have room for ``calls``
        beyond ``keep``; takes nothing.

        The calls themselves are admitted by the clients' quota gate when they are made (taking
        them here too would count them twice); this is for callers that wait for room before
        they start (reconcile, doctor, the recovery searches).
        """
        rows = [GMI_MINUTE, GMI_DAY] if api == GMI else [api]
        now = _now()
        with self._db.session() as session:
            found = {
                r.api: r
                for r in session.scalars(
                    select(ApiQuota).where(ApiQuota.scope == scope, ApiQuota.api.in_([*rows, api]))
                )
            }
        short: list[QuotaState] = []
        for name in {*rows, api}:
            state = _state(found[name]) if name in found else QuotaState(name)
            state.roll(now, self.limits)
            if state.blocked(now) or (
                name in rows and state.room(now, self.limits, work=False) < calls + keep
            ):
                short.append(state)
        if short:
            state = max(short, key=lambda s: s.free_at(now))
            raise RateLimitedError(
                f"{_family(api)} quota for this window has no room for {calls} call(s)",
                api=_family(api),
                reset_at=state.free_at(now),
            )

    def check(self, api: str, scope: str) -> None:
        """Raise RateLimitedError while a refusal's wait is running."""
        row = self._row(api, scope)
        if row is not None and row.blocked_until is not None and row.blocked_until > _now():
            raise RateLimitedError(
                row.reason or "quota used up", api=_family(api), reset_at=row.blocked_until
            )

    # -- what the APIs said --------------------------------------------------------------------

    def record(self, api: str, scope: str, remaining: int, reset_at: datetime) -> None:
        """What Billomat said after a call.  Never raises: bookkeeping must not fail a call.

        ``remaining`` counts every call the server has seen; ours still in flight will take
        theirs too, so what is left for new admissions is ``lowest - in_flight``, where
        ``lowest`` is the lowest ``remaining`` heard in this window (answers may be recorded
        out of order; a higher one is older news).  Admissions keep that invariant: each takes
        one from ``remaining`` and adds one to ``in_flight``.
        """
        try:
            # Locked like an admission: the read-modify-write must not lose a concurrent one.
            with self._locked([(api, scope)]) as (_, rows):
                row = rows[(api, scope)]
                now = _now()
                if reset_at + WINDOW_SLACK <= now:
                    return  # a late answer from a window that is over
                state = _state(row)
                state.roll(now, self.limits)
                tolerance = timedelta(seconds=1)
                if state.reset_at is not None and reset_at > state.reset_at + tolerance:
                    # Billomat is in a later window than this row: start that one afresh.
                    state.remaining, state.in_flight = None, 0
                lowest = remaining
                if state.remaining is not None:
                    lowest = min(lowest, state.remaining + state.in_flight)
                state.in_flight = max(0, state.in_flight - 1)
                # Billomat's word on when the window ends beats our arithmetic.
                state.reset_at = reset_at
                state.window_seconds = self.limits.billomat_window_seconds
                state.remaining = lowest - state.in_flight
                if remaining > 0:  # an answer saying 0 may be a refusal, which counted nothing
                    state.window_limit = max(state.window_limit or 0, remaining + 1)
                _store(row, state, now)
        except SQLAlchemyError:
            log.warning("could not record the %s quota", api, exc_info=True)

    def unanswered(self, api: str, scope: str) -> None:
        """A Billomat call ended without an answer: it is no longer in flight (it may have
        counted, so the window keeps its decrement)."""
        try:
            with self._locked([(api, scope)]) as (_, rows):
                row = rows[(api, scope)]
                if row.in_flight:
                    row.in_flight -= 1
        except SQLAlchemyError:
            log.warning("could not record an unanswered %s call", api, exc_info=True)

    def block(self, api: str, scope: str, until: datetime, reason: str) -> None:
        """Nobody calls ``api`` for ``scope`` before ``until``."""
        try:
            with self._locked([(api, scope)]) as (_, rows):
                row = rows[(api, scope)]
                if row.blocked_until is None or row.blocked_until < until:
                    row.blocked_until = until
                row.reason = reason[:500]
                if api in (BILLOMAT, GMI_UPLOADS):
                    row.remaining = 0
                    row.reset_at = until
                    row.in_flight = 0
                row.updated_at = _now()
        except SQLAlchemyError:
            log.warning("could not record the %s refusal", api, exc_info=True)

    def refused(self, error: RateLimitedError, scopes: Scopes) -> None:
        """An API said no: the quota it named waits until the reset it gave.

        GMI's hourly upload limit (422 code 105) stops uploads only; its call limits (403/429)
        stop every call of the key; Billomat's 429 stops its account.
        """
        if error.api == BILLOMAT:
            self.block(BILLOMAT, scopes.billomat, error.reset_at, str(error))
        elif error.code == 105:
            self.block(GMI_UPLOADS, scopes.gmi, error.reset_at, str(error))
        else:
            self.block(GMI, scopes.gmi, error.reset_at, str(error))

    # -- the plan and the view -----------------------------------------------------------------

    def plan(self, keeps: Mapping[Key, int]) -> None:
        """Set each window's ``keep`` (what document work leaves for the polls); writes only
        what changed."""
        with self._db.session() as session:
            rows = {(r.api, r.scope): r for r in session.scalars(select(ApiQuota))}
            for (api, scope), keep in keeps.items():
                row = rows.get((api, scope))
                if row is None:
                    if keep == 0:
                        continue
                    row = self._get_or_create(session, api, scope)
                if row.keep != keep:
                    row.keep = keep

    def states(self, now: datetime | None = None) -> dict[Key, QuotaState]:
        """Every known window as it stands ``now`` (rolled, not written)."""
        now = now or _now()
        with self._db.session() as session:
            rows = list(session.scalars(select(ApiQuota)))
        result = {}
        for row in rows:
            state = _state(row)
            state.roll(now, self.limits)
            result[(row.api, row.scope)] = state
        return result

    def state(
        self,
        states: Mapping[Key, QuotaState],
        api: str,
        scope: str,
        now: datetime | None = None,
    ) -> QuotaState:
        """The window of ``(api, scope)`` from ``states``, or a fresh one never used yet."""
        state = states.get((api, scope))
        if state is None:
            state = QuotaState(api=api)
            state.roll(now or _now(), self.limits)
        return state

    def snapshot(self, api: str, scope: str) -> tuple[int | None, datetime | None]:
        row = self._row(api, scope)
        if row is None:
            return None, None
        return row.remaining, row.reset_at

    def all(self) -> list[ApiQuota]:
        with self._db.session() as session:
            return list(session.scalars(select(ApiQuota)))


def _family(api: str) -> str:
    """``gmi.min`` -> ``gmi``: the API a window belongs to."""
    return api.split(".", 1)[0]


def _scope(api: str, scopes: Scopes) -> str:
    return scopes.billomat if api == BILLOMAT else scopes.gmi
