"""Publishing what webhooks recorded: one thread owns the broker connection."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from producers.outbox import Outbox
from shared.broker import Broker, PublishError
from shared.errors import BrokerUnavailableError

log = logging.getLogger(__name__)

# Billomat gives up on an answer after 10 s; the broker may use at most this much of that.
PUBLISH_WAIT_SECONDS = 4.0
# How often the publisher retries accounts whose messages the broker did not confirm, and how
# long after a failed connect it answers "not now" at once instead of trying again.
REPUBLISH_EVERY_SECONDS = 10.0
RECONNECT_PAUSE_SECONDS = 5.0


@dataclass
class _Ticket:
    account_id: int
    done: threading.Event = field(default_factory=threading.Event)
    confirmed: bool = False


class Publisher:
    """Flushes the outbox of accounts the receiver recorded into, on one thread.

    py-amqp is not thread-safe and a publish waits for the broker's confirm, so the request
    threads hand their account to this thread and wait a bounded time: a slow or absent broker
    delays no answer beyond ``wait`` seconds, and webhooks for one account arriving together
    are published by one flush.  Accounts whose flush failed are tried again every
    ``retry_every`` seconds (the producers' loop would publish them as well).
    """

    def __init__(
        self,
        outbox: Outbox,
        broker: Broker,
        *,
        wait: float = PUBLISH_WAIT_SECONDS,
        retry_every: float = REPUBLISH_EVERY_SECONDS,
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._wait = wait
        self._retry_every = retry_every
        self._tickets: queue.Queue[_Ticket | None] = queue.Queue()
        self._failed: set[int] = set()
        self._next_connect = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-publisher", daemon=True)
        self._thread.start()

    def publish(self, account_id: int) -> bool | None:
        """Flush ``account_id`` now; True once confirmed, False if not, None if too slow."""
        ticket = _Ticket(account_id)
        self._tickets.put(ticket)
        if not ticket.done.wait(self._wait):
            return None
        return ticket.confirmed

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._tickets.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        self._connect()
        running = True
        while running:
            try:
                first = self._tickets.get(timeout=self._retry_every)
            except queue.Empty:
                self._flush_all({}, set(self._failed))
                continue
            batch = [first]
            while True:  # take everything that queued up meanwhile: one flush per account
                try:
                    batch.append(self._tickets.get_nowait())
                except queue.Empty:
                    break
            running = None not in batch
            waiting: dict[int, list[_Ticket]] = {}
            for ticket in batch:
                if ticket is not None:
                    waiting.setdefault(ticket.account_id, []).append(ticket)
            self._flush_all(waiting, set(waiting) | self._failed)

    def _flush_all(self, waiting: Mapping[int, list[_Ticket]], account_ids: set[int]) -> None:
        if not account_ids:
            return
        connected = self._connect()
        for account_id in sorted(account_ids):
            confirmed = connected and self._flush(account_id)
            for ticket in waiting.get(account_id, ()):
                ticket.confirmed = confirmed
                ticket.done.set()

    def _connect(self) -> bool:
        if self._broker.ping():
            return True
        if time.monotonic() < self._next_connect:
            # A refused connect takes seconds; while RabbitMQ is down, webhooks are answered
            # at once (recorded, published later) instead of each waiting for another attempt.
            return False
        try:
            self._broker.connect(retries=0)
        except BrokerUnavailableError as e:
            self._next_connect = time.monotonic() + RECONNECT_PAUSE_SECONDS
            log.warning("webhooks: %s; recorded documents are published later", e)
            return False
        return True

    def _flush(self, account_id: int) -> bool:
        try:
            self._outbox.flush(account_id)
        except PublishError as e:
            log.warning("webhooks: publishing for account %d failed: %s", account_id, e)
        except SQLAlchemyError as e:
            log.warning(
                "webhooks: database unavailable while publishing (%s)",
                str(e).splitlines()[0][:200],
            )
        else:
            self._failed.discard(account_id)
            return True
        self._failed.add(account_id)
        return False
