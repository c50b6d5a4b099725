"""Releasing work from the ledger to the broker, per account, as the quotas allow.

The ledger is the backlog; the work queue holds only what can run now.  Each release:

1. plans the polls' reserve in every window (the day plan: what the polls due before the window
   resets will need, so that polls never starve; ``shared.quota_plan``);
2. works out, per window, the room document work has left, minus what is released already and
   not yet taken by a consumer;
3. hands that room out one document at a time, the accounts taking turns (round robin), each
   document only if every window it counts in has room for it; in the producer loop
   (``fair``) no account has more messages waiting in the queue than there are consumers on it,
   so one account's backlog never queues up in front of another's documents, and the rest of
   its window's share follows as the consumers take what is queued;
4. publishes in that interleaved order through the outbox (ledger row first, confirm, then
   ``published_at``), and says when the next release can happen: the earliest reset of a window
   that stopped an account.

Releasing decides only *when* and *how many* messages a row gets; every exactly-once rule stays
with the consumer (README: "Quota as the speed limit").
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select

from producers.outbox import BATCH, Outbox
from shared import ledger
from shared.broker import Broker
from shared.db import Database, Document, PollState, SyncAccount
from shared.domain import Direction, DocState
from shared.quota import QuotaBook, Scopes
from shared.quota_plan import (
    BILLOMAT,
    DAY_MARGIN,
    GMI,
    GMI_DAY,
    GMI_MINUTE,
    GMI_UPLOADS,
    QuotaState,
    polls_before,
    typical_need,
)

log = logging.getLogger(__name__)

Key = tuple[str, str]

MAX_RELEASE = 1000  # messages per release at most; the next tick releases more
# ``fair``: at least this many queued messages per account, more with more consumers
MIN_QUEUED_PER_ACCOUNT = 2
# how soon a fair release looks again when it held an account back although its windows had room
REFILL = timedelta(milliseconds=200)
CONSUMERS_MAX_AGE = 5.0  # seconds a reading of the work queues' consumers is trusted
# A message released longer ago than this and still not taken is not counted as queued any more
# (its queue may have been purged by hand; `replay --stuck` rebuilds it).
QUEUED_HORIZON = timedelta(minutes=15)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Backlog:
    """One enabled account as the dispatcher sees it."""

    account_id: int
    direction: Direction
    billomat_scope: str
    gmi_scope: str | None
    need: dict[Key, int]  # calls one document needs, per window
    waiting: int = 0  # rows the broker has no message for
    queued: int = 0  # rows released and not yet taken by a consumer


@dataclass
class Release:
    published: dict[int, int] = field(default_factory=dict)  # account id -> messages
    next_at: datetime | None = None  # when a window that stopped an account resets

    @property
    def total(self) -> int:
        return sum(self.published.values())


class Dispatcher:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        quota: QuotaBook,
        *,
        billomat_poll_reserve: int,
        broker: Broker | None = None,
    ) -> None:
        """``broker``: where a fair release reads how many consumers each work queue has."""
        self._db = db
        self._outbox = outbox
        self._quota = quota
        self._billomat_poll_reserve = billomat_poll_reserve
        self._broker = broker
        self._turn = 0
        self._consumers: tuple[float, dict[Direction, int]] | None = None

    # -- one release ---------------------------------------------------------------------------

    def release(self, now: datetime | None = None, *, fair: bool = False) -> Release:
        """Publish what the windows allow now. Raises PublishError when the broker does not
        confirm (rows confirmed so far stay marked).

        ``fair``: keep each account's queued messages to the number of consumers (the producer
        loop, which comes back for the rest); otherwise release all the windows allow (a
        single ``produce --once`` does not come back).
        """
        now = now or _now()
        accounts, polls = self._accounts(now)
        states = self._quota.states(now)
        self._plan(polls, states, now)
        backlog = [a for a in accounts if a.waiting > 0]
        if not backlog:
            return Release()
        room = self._room(accounts, states, now)
        caps = self._caps() if fair else None
        counts, next_at = self._allocate(backlog, room, states, now, caps)
        release = Release(next_at=next_at)
        if counts:
            release.published = self._publish(counts, backlog)
            log.debug("released %s", release.published)
        return release

    def _accounts(self, now: datetime) -> tuple[list[Backlog], list[tuple[SyncAccount, PollState]]]:
        since = now - QUEUED_HORIZON
        pending = Document.state == DocState.PENDING.value
        waiting = (pending & Document.published_at.is_(None)) | (
            Document.state == DocState.HELD.value
        )
        queued = pending & Document.published_at.is_not(None) & (Document.published_at >= since)
        with self._db.session() as session:
            counts = {
                row.account_id: (int(row.waiting or 0), int(row.queued or 0))
                for row in session.execute(
                    select(
                        Document.account_id,
                        func.sum(case((waiting, 1), else_=0)).label("waiting"),
                        func.sum(case((queued, 1), else_=0)).label("queued"),
                    )
                    .where(Document.state.in_((DocState.PENDING.value, DocState.HELD.value)))
                    .group_by(Document.account_id)
                )
            }
            polls = [
                (account, state)
                for account, state in session.execute(
                    select(SyncAccount, PollState)
                    .join(PollState, PollState.account_id == SyncAccount.id)
                    .where(SyncAccount.enabled.is_(True), SyncAccount.live())
                    .order_by(SyncAccount.id)
                ).all()
            ]
        accounts = []
        for account, _ in polls:
            direction = Direction(account.direction)
            need = typical_need(
                direction.value, archive_after_transfer=bool(account.archive_after_transfer)
            )
            scopes = Scopes(billomat=account.billomat_id, gmi=account.gmi_scope or "")
            keys = {
                key: n
                for key, n in scopes.keys(need).items()
                if key[0] == BILLOMAT or account.gmi_scope  # GMI unknown until its first poll
            }
            waiting_n, queued_n = counts.get(account.id, (0, 0))
            accounts.append(
                Backlog(
                    account.id, direction, account.billomat_id, account.gmi_scope, keys,
                    waiting_n, queued_n,
                )
            )  # fmt: skip
        return accounts, polls

    # -- the day plan --------------------------------------------------------------------------

    def _plan(
        self,
        polls: Sequence[tuple[SyncAccount, PollState]],
        states: dict[Key, QuotaState],
        now: datetime,
    ) -> None:
        """Each window keeps what the polls due before its reset need (1 call per export poll in
        GMI's minute and day, plus ``DAY_MARGIN`` a day; 1 call per kind per import poll in
        Billomat's window, at most ``billomat_poll_reserve``)."""
        limits = self._quota.limits
        keeps: dict[Key, int] = defaultdict(int)
        _, minute_end = limits.gmi_minute.bounds(now)
        _, day_end = limits.gmi_day.bounds(now)
        billomat_end = now + timedelta(seconds=limits.billomat_window_seconds)
        for account, state in polls:
            interval = float(account.interval_seconds)
            if account.direction == Direction.EXPORT.value and account.gmi_scope:
                scope = account.gmi_scope
                keeps[(GMI_MINUTE, scope)] += polls_before(
                    state.next_due_at, interval, now, minute_end
                )
                keeps[(GMI_DAY, scope)] += polls_before(state.next_due_at, interval, now, day_end)
            elif account.direction == Direction.IMPORT.value:
                kinds = max(1, len(account.document_kinds or []))
                window = states.get((BILLOMAT, account.billomat_id))
                end = window.reset_at if window and window.reset_at else billomat_end
                keeps[(BILLOMAT, account.billomat_id)] += kinds * polls_before(
                    state.next_due_at, interval, now, end
                )
        for (api, scope), keep in list(keeps.items()):
            if api == GMI_DAY:
                keeps[(api, scope)] = keep + DAY_MARGIN
            elif api == BILLOMAT:
                keeps[(api, scope)] = min(keep, self._billomat_poll_reserve)
        plan = {key: 0 for key, state in states.items() if state.keep} | dict(keeps)
        if any(states.get(key, QuotaState(key[0])).keep != keep for key, keep in plan.items()):
            self._quota.plan(plan)
        for key, keep in plan.items():
            if key in states:
                states[key].keep = keep

    # -- room and turns ------------------------------------------------------------------------

    def _room(
        self, accounts: Sequence[Backlog], states: dict[Key, QuotaState], now: datetime
    ) -> dict[Key, int]:
        """Per window: the calls document work may still start, minus those released already."""
        limits = self._quota.limits
        room: dict[Key, int] = {}
        for account in accounts:
            for key in account.need:
                if key not in room:
                    state = self._quota.state(states, *key, now)
                    room[key] = state.room(now, limits, work=True)
                    if key[0] in (GMI_MINUTE, GMI_DAY, GMI_UPLOADS):
                        block = self._quota.state(states, GMI, key[1], now)
                        if block.blocked(now):
                            room[key] = 0
        for account in accounts:
            for key, n in account.need.items():
                room[key] -= account.queued * n
        return room

    def _allocate(
        self,
        backlog: list[Backlog],
        room: dict[Key, int],
        states: dict[Key, QuotaState],
        now: datetime,
        caps: dict[Direction, int] | None = None,
    ) -> tuple[dict[int, int], datetime | None]:
        """Round robin: one document per account per turn, while its windows have room (and,
        with ``caps``, while it has fewer messages queued than its direction's cap)."""
        start = self._turn % len(backlog)
        self._turn += 1
        order = backlog[start:] + backlog[:start]
        counts: dict[int, int] = defaultdict(int)
        stopped: set[Key] = set()
        capped = False
        active = list(order)
        total = 0
        while active and total < MAX_RELEASE:
            for account in list(active):
                short = [k for k, n in account.need.items() if room[k] < n]
                done = counts[account.account_id] >= account.waiting
                full = caps is not None and (
                    account.queued + counts[account.account_id] >= caps[account.direction]
                )
                if short or done or full:
                    stopped.update(short)
                    capped |= full and not short and not done
                    active.remove(account)
                    continue
                for key, n in account.need.items():
                    room[key] -= n
                counts[account.account_id] += 1
                total += 1
                if total >= MAX_RELEASE:
                    break
        next_at: datetime | None = now if active else (now + REFILL if capped else None)
        for key in stopped:
            free = self._quota.state(states, *key, now).free_at(now)
            if key[0] != BILLOMAT:
                block = self._quota.state(states, GMI, key[1], now)
                if block.blocked(now):
                    free = max(free, block.free_at(now))
            if free <= now:
                continue  # only released work holds it; a consumer frees it soon
            next_at = free if next_at is None else min(next_at, free)
        return dict(counts), next_at

    def _caps(self) -> dict[Direction, int]:
        """Per direction: how many messages one account may have waiting in the work queue."""
        if self._broker is None:
            return dict.fromkeys(Direction, MIN_QUEUED_PER_ACCOUNT)
        clock = time.monotonic()
        if self._consumers is None or clock - self._consumers[0] > CONSUMERS_MAX_AGE:
            try:
                depths = self._broker.queue_depths()
            except Exception:  # a broker hiccup must not stop the release; assume few consumers
                log.debug("could not read the work queues' consumers", exc_info=True)
                depths = {}
            self._consumers = (
                clock,
                {
                    d: depths[(d.value, "work")].consumers if (d.value, "work") in depths else 0
                    for d in Direction
                },
            )
        return {d: max(MIN_QUEUED_PER_ACCOUNT, n) for d, n in self._consumers[1].items()}

    # -- publishing ----------------------------------------------------------------------------

    def _publish(self, counts: dict[int, int], backlog: Sequence[Backlog]) -> dict[int, int]:
        """Publish ``counts`` rows per account, interleaved (A1 B1 C1 A2 B2 …), so that no
        account's documents queue up behind another's."""
        published: dict[int, int] = defaultdict(int)
        with self._db.session() as session:
            accounts: dict[int, SyncAccount] = {}
            rows: dict[int, list[Document]] = {}
            for item in backlog:
                n = counts.get(item.account_id, 0)
                account = session.get(SyncAccount, item.account_id)
                if n <= 0 or account is None or not account.enabled:
                    continue
                accounts[item.account_id] = account
                rows[item.account_id] = ledger.unpublished(session, item.account_id, limit=n)
            since_commit = 0
            try:
                for turn in range(max((len(r) for r in rows.values()), default=0)):
                    for account_id, docs in rows.items():
                        if turn < len(docs):
                            self._outbox.publish_one(session, accounts[account_id], docs[turn])
                            published[account_id] += 1
                            since_commit += 1
                            if since_commit >= BATCH:
                                session.commit()
                                since_commit = 0
            finally:
                # Commit what the broker confirmed, even if a later publish failed.
                session.commit()
        return dict(published)
