"""The consumer loop: take a message, let the direction's handler move the document, commit,
then ack — and route every failure to where it belongs.

- transient  -> delay queue of the next tier, attempt count + 1 (parked after the last)
- rate limit -> back to the ledger's backlog (unpublished); the producer releases it again
  once the window that stopped it resets.  No call was made for it, no attempt counted.
- permanent  -> parking queue at once, with the API's reason
- configuration -> the account is paused with the reason; the document waits (held); an
  account whose stored keys cannot be decrypted is one of these, not the process's end
- undecodable message, or one naming a row of another account -> parking queue, raw body kept,
  nothing written (``consumers.intake``)
- a value the database refuses -> parking queue (permanent); the database gone -> the message
  is given back and the consumer waits for the database, holding nothing (``shared.dberrors``)
Each outcome is committed to the ledger before the message is acked; every message is parked at
most once, because deliveries are handled one at a time, never inside a publish's confirm wait
(``shared.broker``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consumers.failures import hold, note, pause_account
from consumers.handlers import Handler, Outcome, Work
from consumers.intake import Mismatch, redeliveries, resolve
from shared import dberrors
from shared.accounts import AccountService, unreadable_keys
from shared.broker import RECONNECT_ON, Broker
from shared.clients import AccountClients, ClientFactory
from shared.db import Database
from shared.deliveries import Delivery
from shared.domain import Direction, DocState
from shared.errors import (
    ApiError,
    ConfigurationError,
    ErrorClass,
    PermanentError,
    RateLimitedError,
    SecretKeyError,
    TransientError,
)
from shared.locks import DocumentLocks
from shared.logs import log_outcome
from shared.messages import (
    ATTEMPT_HEADER,
    ERROR_CLASS_HEADER,
    ERROR_HEADER,
    FIRST_FAILURE_HEADER,
    LAST_FAILURE_HEADER,
    PARKED_AT_HEADER,
    ROUTING_KEY_HEADER,
    MalformedMessage,
    SyncMessage,
    carry_headers,
    decode_message,
    header_int,
    header_text,
    printable,
)
from shared.metrics import Metrics
from shared.quota import QuotaBook

log = logging.getLogger(__name__)

MALFORMED = "malformed"
# Failures that are not about the message: the broker connection, or the wrong secret key.
_PROPAGATE: tuple[type[Exception], ...] = (*RECONNECT_ON, SecretKeyError)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _attempt(headers: Mapping[Any, Any]) -> int:
    return header_int(headers, ATTEMPT_HEADER)


@dataclass
class Consumer:
    """Everything a consumer process needs, built once by the composition root."""

    db: Database
    broker: Broker
    accounts: AccountService
    clients: ClientFactory
    handlers: dict[Direction, Handler]
    locks: DocumentLocks
    quota: QuotaBook
    max_attempts: int
    metrics: Metrics | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    handled: int = 0

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self,
        directions: list[Direction],
        *,
        prefetch: int = 1,
        idle_exit: float | None = None,
    ) -> None:
        """Consume until ``stop`` is set, or until ``idle_exit`` seconds passed without work."""
        queues = [self.broker.topology.work_queue(d) for d in directions]
        last_work = time.monotonic()
        while not self.stop.is_set():
            try:
                if not self.broker.ping():
                    self.broker.connect(
                        retries=None, on_retry=lambda m: log.warning("%s", m), stop=self.stop
                    )
                give_back = False
                with self.broker.consuming(queues, prefetch=prefetch) as inbox:
                    while not self.stop.is_set():
                        delivery = inbox.take(timeout=1.0)
                        if delivery is not None:
                            last_work = time.monotonic()
                            if not self._on_message(delivery):
                                give_back = True
                                break  # leaving returns every delivery held to its queue
                        elif idle_exit is not None and time.monotonic() - last_work >= idle_exit:
                            log.info("no work for %.0fs; exiting", idle_exit)
                            return
                if give_back:
                    self._wait_for_database()
                    last_work = time.monotonic()
            except RECONNECT_ON as e:
                if self.stop.is_set():
                    return
                log.warning("lost RabbitMQ (%s); reconnecting", str(e).splitlines()[0][:200])
                self.broker.close()
                self.stop.wait(1.0)
                last_work = time.monotonic()

    def install_signal_handlers(self, grace: float = 60.0) -> None:
        """SIGTERM/SIGINT: take no new message, finish the one in hand, exit within ``grace``."""

        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal %s: finishing the message in hand, then exiting", signum)
            self.stop.set()
            signal.signal(signal.SIGALRM, _give_up)
            signal.alarm(max(1, int(grace)))

        def _give_up(_signum: int, _frame: object) -> None:
            # The message stays unacked and comes back; the ledger makes that safe.
            raise SystemExit(1)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    # -- one message ---------------------------------------------------------------------------

    def _on_message(self, message: Delivery) -> bool:
        """Handle one delivery; False to give back every delivery held and pause.

        Nothing a message contains may end the process: whatever escapes the routing in
        ``process`` parks the message with the reason, so it can neither crash nor jam a
        consumer.  Only a lost database (or a park that fails itself) gives the message back.
        """
        try:
            self.process(message)
            return True
        except _PROPAGATE:
            raise
        except Exception as e:
            if dberrors.is_transient(e):
                log.warning("%s; giving the message back until it answers", dberrors.describe(e))
                return False
            failure = e
        rule = dberrors.classify(failure)
        if rule is None:
            log.error("unexpected error with a message of %s", message.queue, exc_info=failure)
        reason = dberrors.describe(failure) if rule else f"unexpected error: {failure!r}"[:300]
        try:
            self._park_raw(message, f"consumer error: {reason}")
        except _PROPAGATE:
            raise
        except Exception:
            # The delivery limit parks it in the end if this keeps happening.
            log.exception("could not park the message; giving it back")
            return False
        return True

    def _wait_for_database(self) -> None:
        """A pause, then until the database answers (or ``stop``), holding no message; the
        keepalive thread keeps the broker connection alive meanwhile."""
        delay = 1.0
        while not self.stop.wait(delay):
            if self.db.ping():
                log.info("the database answers again; consuming")
                return
            delay = min(30.0, delay * 2)

    def process(self, message: Delivery) -> None:
        headers = message.headers
        clock = time.monotonic()
        try:
            msg = decode_message(message.body)
        except MalformedMessage as e:
            self._park_raw(message, f"undecodable message: {e.reason}")
            return
        direction = msg.direction.value
        routing_key = direction

        target = resolve(self.db, msg)  # read before write: nothing changes until this holds
        if isinstance(target, Mismatch):
            error = PermanentError(target.reason, api="belegsync")
            self._park(message, msg, routing_key, headers, error, clock, own_row=False)
            return
        account, doc_state = target.account, target.state

        handed_out = redeliveries(message)
        if handed_out >= self.broker.topology.delivery_limit - 1:
            poison = PermanentError(
                f"delivered {handed_out + 1} times without an outcome "
                "(consumers crashed or were killed while handling it)",
                api="belegsync",
            )
            self._park(message, msg, routing_key, headers, poison, clock)
            return

        if doc_state == DocState.SYNCED.value:
            self._ack(message, msg, Outcome("noop", detail="already synced"), clock)
            return
        if not account.enabled:
            why = "account removed" if account.removed_at is not None else "account paused"
            hold(self.db, msg, account.attention_reason or why)
            self._ack(message, msg, Outcome("held", detail=why), clock)
            return
        if not self.locks.try_acquire(msg.document_id):
            # A live consumer is on this document right now: look again a little later.
            self._delay(message, msg, routing_key, headers, 0, "being handled by another consumer")
            return
        clients: AccountClients | None = None
        try:
            with self._in_progress(direction):
                try:
                    clients = self.clients.for_account(account, self.accounts.credentials(account))
                    outcome = self.handlers[msg.direction].handle(Work(msg, account, clients))
                except ApiError as e:
                    self._failed(message, msg, routing_key, headers, e, clients, clock)
                    return
                except SecretKeyError:
                    # This account's keys, not the process: pause it alone, hold the document.
                    reason = unreadable_keys(account.name)
                    pause_account(self.db, msg, reason)
                    hold(self.db, msg, f"account paused: {reason}")
                    self.broker.ack(message)
                    self._report(msg, "held", None, time.monotonic() - clock, reason)
                    return
                except Exception as e:
                    refused = dberrors.classify(e)
                    if refused is not None:
                        if refused.error_class is not ErrorClass.PERMANENT:
                            raise  # the database is gone: the message goes back (_on_message)
                        # A value the ledger cannot take will not fit next time either.
                        error = PermanentError(dberrors.describe(e), api="ledger")
                        self._failed(message, msg, routing_key, headers, error, clients, clock)
                        return
                    # a bug must not crash-loop: retry, then park
                    log.exception("unexpected error handling %s", msg.message_id)
                    bug = TransientError(f"unexpected error: {e!r}"[:300], api="belegsync")
                    self._failed(message, msg, routing_key, headers, bug, clients, clock)
                    return
            self._ack(message, msg, outcome, clock)
        finally:
            self.locks.release(msg.document_id)

    def _in_progress(self, direction: str) -> AbstractContextManager[None]:
        if self.metrics is None:
            return nullcontext()
        return self.metrics.in_progress(direction)

    # -- outcomes ------------------------------------------------------------------------------

    def _ack(self, message: Delivery, msg: SyncMessage, outcome: Outcome, clock: float) -> None:
        self.broker.ack(message)
        seconds = time.monotonic() - clock
        metric_outcome = {
            "synced": "synced",
            "duplicate_avoided": "duplicate_avoided",
        }.get(outcome.result, "skipped")
        latency = None
        if outcome.landed_at is not None and metric_outcome != "skipped":
            latency = (outcome.landed_at - msg.detected_at).total_seconds()
        if self.metrics is not None and outcome.result != "held":
            self.metrics.observe_processed(
                msg.direction.value, metric_outcome, seconds, sync_latency_s=latency
            )
        self._report(msg, outcome.result, outcome.target_id, seconds, outcome.detail or None)

    def _report(
        self,
        msg: SyncMessage,
        outcome: str,
        target_id: str | None,
        seconds: float,
        error: BaseException | str | None = None,
    ) -> None:
        self.handled += 1
        log_outcome(
            log,
            account=printable(msg.account),
            direction=msg.direction.value,
            source_id=msg.source_id,
            target_id=target_id,
            message_id=msg.message_id,
            outcome=outcome,
            duration_s=seconds,
            error=error,
        )

    def _failed(
        self,
        message: Delivery,
        msg: SyncMessage,
        routing_key: str,
        headers: dict[str, Any],
        error: ApiError,
        clients: AccountClients | None,
        clock: float,
    ) -> None:
        if isinstance(error, RateLimitedError):
            if error.status is not None and clients is not None:
                # The API refused: nobody calls it for this account before the reset.
                self.quota.refused(error, clients.scopes)
            # The ledger is the backlog: the row waits there, unpublished, and the producer
            # releases it when the window resets.  Committed before the ack: a crash in between
            # leaves the message *and* the row, and the ledger absorbs the duplicate.
            note(self.db, msg, error, state=DocState.PENDING, waiting=True)
            self.broker.ack(message)
            log.info("document %s of %s waits for the quota: %s", msg.source_id, msg.account, error)
            self._count("retried", msg, error, clock)
            return
        if isinstance(error, ConfigurationError):
            pause_account(self.db, msg, str(error))
            hold(self.db, msg, f"account paused: {error}")
            self.broker.ack(message)
            self._count("retried", msg, error, clock)
            return
        if isinstance(error, TransientError):
            attempt = _attempt(headers) + 1
            if attempt < self.max_attempts:
                note(self.db, msg, error, state=DocState.RETRYING, attempt=attempt)
                headers = self._failure_headers(headers, error, attempt, routing_key)
                tier = min(attempt - 1, len(self.broker.topology.retry_delays) - 1)
                self.broker.publish_retry(
                    message.body, routing_key, tier, headers=headers, message_id=msg.message_id
                )
                self.broker.ack(message)
                self._count("retried", msg, error, clock)
                return
            error = TransientError(
                f"gave up after {attempt} attempts: {error.message}",
                api=error.api, status=error.status, code=error.code,
            )  # fmt: skip
        self._park(message, msg, routing_key, headers, error, clock)

    def _count(self, outcome: str, msg: SyncMessage, error: ApiError, clock: float) -> None:
        seconds = time.monotonic() - clock
        if self.metrics is not None:
            self.metrics.observe_processed(
                msg.direction.value, outcome, seconds, error_class=error.error_class.value
            )
        self._report(msg, outcome, None, seconds, error)

    def _delay(
        self,
        message: Delivery,
        msg: SyncMessage,
        routing_key: str,
        headers: dict[str, Any],
        tier: int,
        reason: str,
    ) -> None:
        """Back through a delay queue without counting an attempt."""
        self.broker.publish_retry(
            message.body, routing_key, tier, headers=carry_headers(headers),
            message_id=msg.message_id,
        )  # fmt: skip
        self.broker.ack(message)
        log.info("document %s of %s waits: %s", msg.source_id, printable(msg.account), reason)

    def _failure_headers(
        self, headers: dict[Any, Any], error: ApiError | str, attempt: int, routing_key: str
    ) -> dict[str, Any]:
        now = _iso(_now())
        error_class = error.error_class.value if isinstance(error, ApiError) else MALFORMED
        return {
            **carry_headers(headers),
            ATTEMPT_HEADER: attempt,
            FIRST_FAILURE_HEADER: header_text(headers, FIRST_FAILURE_HEADER, limit=40) or now,
            LAST_FAILURE_HEADER: now,
            ERROR_CLASS_HEADER: error_class,
            ERROR_HEADER: str(error)[:1000],
            ROUTING_KEY_HEADER: routing_key,
        }

    def _park(
        self,
        message: Delivery,
        msg: SyncMessage,
        routing_key: str,
        headers: dict[str, Any],
        error: ApiError,
        clock: float,
        *,
        own_row: bool = True,
    ) -> None:
        """Park a decoded message; ``own_row=False`` for one naming a row not its own."""
        parked_headers = self._failure_headers(
            headers, error, max(_attempt(headers), 1), routing_key
        )
        parked_headers[PARKED_AT_HEADER] = _iso(_now())
        if own_row:
            note(self.db, msg, error, state=DocState.PARKED)
        self.broker.publish_parked(
            message.body, routing_key, headers=parked_headers, message_id=msg.message_id
        )
        self.broker.ack(message)
        seconds = time.monotonic() - clock
        if self.metrics is not None:
            self.metrics.observe_processed(
                msg.direction.value, "parked", seconds, error_class=error.error_class.value
            )
        self._report(msg, "parked", None, seconds, error)

    def _park_raw(self, message: Delivery, reason: str) -> None:
        """Park a message exactly as it came, writing nothing: it is undecodable, or handling
        it failed in a way nobody routed."""
        direction = self._queue_direction(message.queue)
        headers = message.headers
        parked_headers = self._failure_headers(
            headers, reason, max(_attempt(headers), 1), direction.value
        )
        parked_headers[PARKED_AT_HEADER] = _iso(_now())
        self.broker.publish_parked(message.body, direction.value, headers=parked_headers)
        self.broker.ack(message)
        log.error(
            "parked a message of %d bytes from %s: %s", len(message.body), message.queue, reason
        )
        if self.metrics is not None:
            self.metrics.observe_parked(direction.value, MALFORMED)

    def _queue_direction(self, queue: str) -> Direction:
        for direction in Direction:
            if self.broker.topology.work_queue_name(direction) == queue:
                return direction
        return Direction.EXPORT
