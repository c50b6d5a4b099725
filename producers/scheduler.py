"""When each account is polled, what a poll's outcome does to the account, and the loop.

Several producers may run: a poll is claimed with a lease in ``poll_state`` first, and every
poll releases it when it ends, however it ends.  Whatever is wrong with one account — keys that
cannot be decrypted, credentials the API refuses, answers that make no sense, a bug — ends that
account's poll with a reason ``status`` shows by its name; the other accounts go on.  Only the
database and the broker are the process's own (see ``run``).

After the polls of every tick the dispatcher releases from the ledger what the quotas allow now;
the loop wakes at the next window reset when work waits for one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from producers.dispatch import Dispatcher
from producers.outbox import Outbox
from producers.pollers import Poller, PollReport
from shared.accounts import AccountService, unreadable_keys
from shared.broker import Broker, PublishError
from shared.clients import AccountClients, ClientFactory
from shared.db import Database, PollState, SyncAccount
from shared.domain import Direction
from shared.errors import (
    ApiError,
    BrokerUnavailableError,
    ConfigurationError,
    RateLimitedError,
    SecretKeyError,
)
from shared.metrics import Metrics, QueueDepth
from shared.quota import WINDOW_SLACK, QuotaBook

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
ERROR_RETRY = timedelta(minutes=1)
FIRST_POLL_SPREAD = 60.0  # seconds over which freshly started accounts are spread
GOLDEN = 0.6180339887


def _now() -> datetime:
    return datetime.now(UTC)


def describe_report(report: PollReport) -> str:
    """One line for a poll's outcome (the log, and `produce --once`)."""
    text = (
        f"{report.result}, {report.listed} listed, {report.new} new, {report.requeued} "
        f"requeued, {report.published} published, {report.calls} API call(s)"
    )
    if report.scan_calls is not None:
        text += f"; {report.found} already in the target (looking cost {report.scan_calls} call(s))"
    if report.error:
        text += f" — {report.error}"
    return text


@dataclass
class Producer:
    """Everything a producer process needs, built once by the composition root."""

    db: Database
    broker: Broker
    accounts: AccountService
    clients: ClientFactory
    pollers: dict[Direction, Poller]
    outbox: Outbox
    quota: QuotaBook
    dispatcher: Dispatcher
    metrics: Metrics | None = None
    # Called with the queue depths (every ~15 s) to put each account's backlog and ETA into
    # the metrics; the composition root supplies it (the ETA is the operator's `status` view).
    observe_backlogs: Callable[[], None] | None = None
    # `produce --once` prints each result itself; a second copy in the log would repeat it
    log_polls: bool = True

    # -- one poll ------------------------------------------------------------------------------

    def claim(self, account_id: int, now: datetime) -> bool:
        with self.db.session() as session:
            result = session.execute(
                update(PollState)
                .where(
                    PollState.account_id == account_id,
                    or_(PollState.lease_until.is_(None), PollState.lease_until < now),
                )
                .values(lease_until=now + LEASE, last_started_at=now)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def poll_account(self, account_id: int, *, fair: bool = False) -> PollReport:
        """Poll one account now, release what the quotas allow, and record the outcome.

        Failures of this account end in the report (and release the lease); only database
        and broker errors, the process's own, escape.  ``fair``: release no more per account
        than there are consumers to take it (the loop, which comes back for the rest).
        """
        with self.db.session() as session:
            account = session.get(SyncAccount, account_id)
            if account is None:
                raise ValueError(f"no account {account_id}")
            name, direction = account.name, Direction(account.direction)
            interval = timedelta(seconds=account.interval_seconds)
        report = PollReport(name, direction)
        started = _now()
        clock = time.monotonic()
        retry_at: datetime | None = None
        pause_reason: str | None = None
        clients: AccountClients | None = None
        try:
            with self.db.session() as session:
                account = session.get(SyncAccount, account_id)
                assert account is not None
                credentials = self.accounts.credentials(account)
                clients = self.clients.for_account(account, credentials)
                if account.gmi_scope != clients.gmi_scope:
                    # Accounts added before schema 0005: dispatch and status see by it which
                    # accounts share a GMI quota (`accounts add|update` set it themselves).
                    account.gmi_scope = clients.gmi_scope
            self._check_quota(direction, clients)
            self.pollers[direction].poll(account_id, clients, report)
        except RateLimitedError as e:
            # Our own reservation (no HTTP status) means "not now", not "refused".
            report.result = "skipped_quota" if e.status is None else "rate_limited"
            report.error = str(e)
            retry_at = e.reset_at
            if e.status is not None and clients is not None:
                self.quota.block(e.api, self._scope(e.api, clients), e.reset_at, str(e))
                # poll again once the quota book, too, believes in the new window
                retry_at = e.reset_at + WINDOW_SLACK
        except ConfigurationError as e:
            report.result = "error"
            report.error = str(e)
            pause_reason = f"paused: {e}"
        except SecretKeyError:
            report.result = "error"
            report.error = "cannot decrypt its stored API keys"
            pause_reason = f"paused: {unreadable_keys(name)}"
        except ApiError as e:
            report.result = "error"
            report.error = str(e)
        except (SQLAlchemyError, BrokerUnavailableError):
            self._release(account_id)
            raise
        except Exception as e:  # a bug or a surprise in one account must not stop the others
            log.exception("poll of %s failed unexpectedly", name)
            report.result = "error"
            report.error = f"unexpected error: {type(e).__name__}: {e}"[:500]
        try:
            report.published = self.dispatcher.release(fair=fair).published.get(account_id, 0)
        except PublishError as e:
            report.result = "error"
            report.error = f"publishing failed: {e}"
        seconds = time.monotonic() - clock
        self._finish(account_id, report, started, interval, retry_at, pause_reason)
        if self.metrics is not None:
            self.metrics.observe_poll(
                direction.value,
                report.result,
                seconds,
                name,
                detected=report.detected,
                interval_s=interval.total_seconds(),
            )
        if self.log_polls:
            log.info(
                "poll %s: %s",
                name,
                describe_report(report),
                extra={"account": name, "direction": direction.value, "result": report.result},
            )
        return report

    def _release(self, account_id: int) -> None:
        """Give the lease back so that the next poll need not wait for it to run out."""
        try:
            with self.db.session() as session:
                session.execute(
                    update(PollState)
                    .where(PollState.account_id == account_id)
                    .values(lease_until=None)
                )
        except SQLAlchemyError:
            log.debug("could not release the lease of account %s", account_id, exc_info=True)

    def _check_quota(self, direction: Direction, clients: AccountClients) -> None:
        if direction is Direction.EXPORT:
            self.quota.check("gmi", clients.gmi_scope)
        else:
            self.quota.check("billomat", clients.billomat_scope)

    @staticmethod
    def _scope(api: str, clients: AccountClients) -> str:
        return clients.gmi_scope if api == "gmi" else clients.billomat_scope

    def _finish(
        self,
        account_id: int,
        report: PollReport,
        started: datetime,
        interval: timedelta,
        retry_at: datetime | None,
        pause_reason: str | None,
    ) -> None:
        now = _now()
        with self.db.session() as session:
            state = session.get(PollState, account_id)
            account = session.get(SyncAccount, account_id)
            if state is None or account is None:
                return
            if report.cursor:
                state.cursor = report.cursor
            state.last_finished_at = now
            state.last_result = report.result
            state.last_error = report.error
            state.polls = (state.polls or 0) + 1
            state.lease_until = None
            if report.result == "ok":
                state.last_success_at = now
                state.next_due_at = started + interval
            elif retry_at is not None:
                state.next_due_at = max(retry_at, now + timedelta(seconds=1))
            else:
                state.next_due_at = now + min(interval, ERROR_RETRY)
            if pause_reason is not None:
                account.enabled = False
                account.attention_reason = pause_reason
                log.error("account %s %s", account.name, pause_reason)

    # -- the loop ------------------------------------------------------------------------------

    def account_name(self, account_id: int) -> str:
        with self.db.session() as session:
            account = session.get(SyncAccount, account_id)
            return account.name if account is not None else f"account {account_id}"

    def accounts_to_poll(self, names: Sequence[str] = ()) -> list[int]:
        with self.db.session() as session:
            query = select(SyncAccount.id, SyncAccount.name, SyncAccount.enabled)
            rows = session.execute(query.where(SyncAccount.live()).order_by(SyncAccount.id)).all()
        if names:
            by_name = {row.name: row for row in rows}
            return [by_name[n].id for n in names if n in by_name]
        return [row.id for row in rows if row.enabled]

    def due_accounts(self, now: datetime) -> list[int]:
        with self.db.session() as session:
            rows = session.execute(
                select(SyncAccount.id, SyncAccount.interval_seconds, PollState.next_due_at)
                .join(PollState, PollState.account_id == SyncAccount.id)
                .where(
                    SyncAccount.enabled.is_(True),
                    or_(PollState.lease_until.is_(None), PollState.lease_until < now),
                )
            ).all()
            due = []
            for account_id, interval_seconds, next_due in rows:
                if next_due is None:
                    # Spread a crowd of fresh accounts over the first minute.
                    offset = (account_id * GOLDEN) % 1 * min(interval_seconds, FIRST_POLL_SPREAD)
                    session.execute(
                        update(PollState)
                        .where(PollState.account_id == account_id)
                        .values(next_due_at=now + timedelta(seconds=offset))
                    )
                    continue
                if next_due <= now:
                    due.append(account_id)
            return due

    def run(
        self,
        stop: threading.Event,
        *,
        tick: float = 1.0,
        on_report: Callable[[PollReport], None] | None = None,
    ) -> None:
        """Poll accounts as they fall due and release work until ``stop`` is set."""
        last_depths = 0.0
        while not stop.is_set():
            wait = tick
            try:
                self._ensure_broker(stop)
                for account_id in self.due_accounts(_now()):
                    if stop.is_set():
                        break
                    if self.claim(account_id, _now()):
                        report = self.poll_account(account_id, fair=True)
                        if on_report:
                            on_report(report)
                release = self.dispatcher.release(fair=True)
                if release.total:
                    log.info("released %d document(s) of %d account(s)",
                             release.total, len(release.published))  # fmt: skip
                if release.next_at is not None:
                    # Wake when the window that stopped an account resets, not a tick later.
                    wait = min(tick, max(0.02, (release.next_at - _now()).total_seconds()))
                if time.monotonic() - last_depths > 15:
                    self.refresh_queue_depths()
                    self.refresh_backlogs()
                    last_depths = time.monotonic()
            except (PublishError, BrokerUnavailableError) as e:
                log.warning("RabbitMQ: %s; reconnecting", e)
                self.broker.close()
            except SQLAlchemyError as e:
                log.warning("database unavailable (%s); retrying", str(e).splitlines()[0])
                stop.wait(5)
            stop.wait(wait)

    def _ensure_broker(self, stop: threading.Event) -> None:
        if not self.broker.ping():
            self.broker.connect(retries=None, on_retry=lambda m: log.warning("%s", m), stop=stop)

    def refresh_backlogs(self) -> None:
        if self.observe_backlogs is None:
            return
        try:
            self.observe_backlogs()
        except SQLAlchemyError:
            raise  # the loop's own handling: the database is away
        except Exception:
            log.warning("could not compute the backlogs for the metrics", exc_info=True)

    def refresh_queue_depths(self) -> None:
        if self.metrics is None:
            return
        try:
            depths = self.broker.queue_depths()
        except Exception:
            log.debug("could not read queue depths", exc_info=True)
            return
        self.metrics.set_queue_depths(
            {label: QueueDepth(d.messages, d.consumers) for (label, _), d in depths.items()}
        )
