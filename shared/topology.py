"""The whole RabbitMQ topology in one place: every exchange and queue, and their arguments.

Topology (every name starts with BELEGSYNC_QUEUE_PREFIX, ``P``):

- ``P.work`` (direct) routes ``export``/``import`` to the work queues ``P.export``/``P.import``:
  quorum queues with a delivery limit, dead-lettering to ``P.parking`` as the last guard against
  a message that crashes every consumer.
- ``P.retry.<delay>`` (fanout) -> queue ``P.retry.<delay>`` with ``x-message-ttl`` and
  ``P.work`` as dead-letter exchange: one queue per delay, so a long delay never blocks a short
  one at the head of the queue.  The original routing key brings a message back to its queue.
- ``P.parking`` (fanout) -> ``P.parked``: messages that cannot succeed, with headers saying why,
  until ``belegsync replay`` moves them back.

Every queue is a quorum queue, replicated over the cluster's nodes (``quorum_replicas`` of them
when set, else as many as RabbitMQ chooses).  Producers, consumers and ``replay`` import it
through ``shared.broker``, which connects and declares it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import amqp.exceptions
from kombu.entity import Exchange, Queue

from shared.domain import Direction, format_duration
from shared.settings import Settings

log = logging.getLogger(__name__)

DELIVERY_LIMIT = 20
QUORUM_SIZE_ARG = "x-quorum-initial-group-size"


@dataclass(frozen=True)
class Topology:
    prefix: str
    retry_delays: tuple[int, ...]
    delivery_limit: int = DELIVERY_LIMIT
    # Replicas per quorum queue; None leaves it to RabbitMQ (a replica on every node, up to
    # its own limit).  RabbitMQ reads it only when a queue is created.
    quorum_replicas: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(
            settings.queue_prefix,
            settings.retry_delay_seconds,
            quorum_replicas=settings.quorum_replicas,
        )

    def _quorum(self, **arguments: Any) -> dict[str, Any]:
        """Arguments of a quorum queue, with the replication size when one is set."""
        replicas = {} if self.quorum_replicas is None else {QUORUM_SIZE_ARG: self.quorum_replicas}
        return {"x-queue-type": "quorum", **replicas, **arguments}

    # -- names ---------------------------------------------------------------------------------

    @property
    def work_exchange(self) -> Exchange:
        return Exchange(f"{self.prefix}.work", type="direct", durable=True)

    @property
    def parking_exchange(self) -> Exchange:
        return Exchange(f"{self.prefix}.parking", type="fanout", durable=True)

    def work_queue_name(self, direction: Direction) -> str:
        return f"{self.prefix}.{direction.value}"

    def work_queue(self, direction: Direction) -> Queue:
        return Queue(
            self.work_queue_name(direction),
            exchange=self.work_exchange,
            routing_key=direction.value,
            durable=True,
            queue_arguments=self._quorum(
                **{
                    "x-delivery-limit": self.delivery_limit,
                    "x-dead-letter-exchange": self.parking_exchange.name,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
            ),
        )

    def tier_label(self, tier: int) -> str:
        return f"retry.{format_duration(self.retry_delays[tier])}"

    def retry_exchange(self, tier: int) -> Exchange:
        return Exchange(f"{self.prefix}.{self.tier_label(tier)}", type="fanout", durable=True)

    def retry_queue(self, tier: int) -> Queue:
        exchange = self.retry_exchange(tier)
        return Queue(
            exchange.name,
            exchange=exchange,
            durable=True,
            # A classic queue dead-letters at most once: a message expiring while the broker
            # restarts, before the work queue is back, is silently dropped (seen in the chaos
            # test).  A quorum queue with at-least-once dead-lettering keeps it until the work
            # queue has taken it.
            queue_arguments=self._quorum(
                **{
                    "x-message-ttl": self.retry_delays[tier] * 1000,
                    "x-dead-letter-exchange": self.work_exchange.name,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
            ),
        )

    @property
    def parked_queue(self) -> Queue:
        return Queue(
            f"{self.prefix}.parked",
            exchange=self.parking_exchange,
            durable=True,
            queue_arguments=self._quorum(),
        )

    def tier_for_delay(self, seconds: float) -> int:
        """The longest tier not longer than ``seconds`` (the shortest if all are longer)."""
        best = 0
        for index, delay in enumerate(self.retry_delays):
            if delay <= seconds:
                best = index
        return best

    def queues(self) -> list[tuple[str, str, Queue]]:
        """(label without prefix, role, queue) for every queue; labels feed metrics."""
        result: list[tuple[str, str, Queue]] = [
            (d.value, "work", self.work_queue(d)) for d in Direction
        ]
        result += [
            (self.tier_label(t), "retry", self.retry_queue(t))
            for t in range(len(self.retry_delays))
        ]
        result.append(("parked", "parked", self.parked_queue))
        return result

    def declare(self, channel: Any, reopen: Callable[[], Any] | None = None) -> Any:
        """Declare everything; returns the channel to go on with.

        A quorum queue's replication size counts only when the queue is created, but RabbitMQ
        refuses a declare whose size differs from the existing queue's.  Such a queue is
        taken as it is (a new channel from ``reopen``, since the refusal closed the old one),
        so changing ``BELEGSYNC_QUORUM_REPLICAS`` never stops a running system.
        """
        for exchange in (self.work_exchange, self.parking_exchange):
            exchange(channel).declare()
        for _, _, queue in self.queues():
            try:
                queue(channel).declare()
            except amqp.exceptions.PreconditionFailed as e:
                if reopen is None or QUORUM_SIZE_ARG not in str(e):
                    raise
                channel = reopen()
                channel.queue_declare(queue=queue.name, passive=True)
                queue(channel).queue_bind()
                log.warning(
                    "queue %s already exists with another replication size; "
                    "BELEGSYNC_QUORUM_REPLICAS applies to new queues only "
                    "(rabbitmq-queues grow/shrink changes existing ones)",
                    queue.name,
                )
        return channel
