"""RabbitMQ: one confirmed-publish connection per process, on any node of a cluster.

The broker URL may name several nodes in kombu's failover syntax (``amqp://a//;amqp://b//``):
a connection that is lost or refused moves on to the next node, and every publish still waits
for the broker's confirm, so a node that goes away loses no confirmed message.  What is
declared (exchanges, queues, their arguments) is ``shared.topology``.

Publishing and consuming share one connection, on separate channels, and deliveries are never
handled inside the connection's event loop.  A publisher confirm is awaited by draining the
connection (py-amqp has no other way), and draining dispatches whatever else arrives — the next
delivery too.  If that dispatch ran the consumer's code, a second message would be handled
inside the confirm wait of the first one's park or retry, and a failure there would leave the
first unacknowledged, to be parked again (seen: 21 parked copies of 19 messages).  So the
consumer channel's callback only appends a ``Delivery`` to its ``Inbox``; the consumer takes
them one at a time, outside any wait, and outside ``lock`` so that the keepalive thread keeps
sending heartbeats however long one message takes.  (A second connection for publishing would
also do, at the price of a second socket, heartbeat and failover per process.)

Consuming bypasses kombu's ``Message``: it would decompress a body whose sender set a
``compression`` header (a zip bomb) and decode bodies by their ``content_encoding``.  A
``Delivery`` carries the body exactly as the broker sent it and the headers exactly as py-amqp
read them — any type — for ``shared.messages`` to judge.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import amqp.exceptions
import kombu.exceptions
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer

from shared.deliveries import Delivery, Inbox
from shared.domain import Direction
from shared.errors import BrokerUnavailableError, SetupError
from shared.nodes import Nodes
from shared.topology import Topology

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 10

# What a dropped or refused broker connection looks like from py-amqp and kombu.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    socket.timeout,
    amqp.exceptions.ConnectionError,
    amqp.exceptions.ChannelError,
    amqp.exceptions.RecoverableConnectionError,
    kombu.exceptions.OperationalError,
    kombu.exceptions.ConnectionError,
    kombu.exceptions.ChannelError,
)


# What RabbitMQ answers to a wrong login, an unknown vhost or missing permissions: a
# configuration error (exit 2), not an outage to retry forever.
REFUSED: tuple[type[Exception], ...] = (
    amqp.exceptions.AccessRefused,
    amqp.exceptions.NotAllowed,
)

# What makes a process drop its connection and connect again.
RECONNECT_ON: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, BrokerUnavailableError)
# An ack on a channel that has gone (py-amqp sets its connection to None when it closes).
_ACK_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, AttributeError)


class PublishError(BrokerUnavailableError):
    """The broker did not confirm a publish (nack, timeout, unroutable or connection lost)."""


@dataclass
class QueueDepth:
    messages: int
    consumers: int


@dataclass
class _Keepalive:
    """Sends heartbeat frames while the main thread is busy with a long HTTP call."""

    broker: Broker
    interval: float
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="amqp-keepalive", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.broker.send_heartbeat()


class Broker:
    """One AMQP connection per process: confirmed publishes, consuming, queue depths.

    py-amqp is not thread-safe; every use of the connection holds ``lock`` so the keepalive
    thread never writes a frame while the main thread uses the socket.
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        publish_timeout: float = 15.0,
        heartbeat: int = HEARTBEAT_SECONDS,
    ) -> None:
        self.url = url
        self._nodes = Nodes(url)
        self.topology = topology
        self.publish_timeout = publish_timeout
        self.heartbeat = heartbeat
        self.lock = threading.RLock()
        self._connection: Connection | None = None
        self._publish_channel: Any = None
        self._keepalive: _Keepalive | None = None
        self._declared = False
        # Once RabbitMQ has let us in, a refused login is a node starting up, not a wrong
        # password: it is retried like an outage.
        self._ever_connected = False

    def __repr__(self) -> str:
        return f"Broker({self.safe_url})"

    @property
    def safe_url(self) -> str:
        return self._nodes.safe_url

    @property
    def nodes(self) -> list[str]:
        """The broker URL's nodes (with their passwords: never log these)."""
        return self._nodes.urls

    @property
    def node(self) -> str | None:
        """The node of the current (or last) connection, without its password."""
        return self._nodes.current

    @property
    def connects(self) -> int:
        """Connections opened so far; more than one means the process reconnected."""
        return self._nodes.connects

    # -- connection ----------------------------------------------------------------------------

    def connect(
        self,
        *,
        retries: int | None = 0,
        on_retry: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Connect and declare the topology; ``retries=None`` keeps trying (until ``stop``).

        One attempt tries every node of the URL once, starting with the node after the one
        used last, so a process whose node went away moves on instead of waiting for it.
        """
        attempt = 0
        while True:
            try:
                with self.lock:
                    self._close_quietly()
                    self._connect_any_node()
                    self._publish_channel = self.topology.declare(
                        self._publish_channel, reopen=self.connection.channel
                    )
                    self._declared = True
                self._ever_connected = True
                if self._keepalive is None and self.heartbeat:
                    self._keepalive = _Keepalive(self, interval=self.heartbeat / 3)
                    self._keepalive.start()
                return
            except REFUSED as e:
                with self.lock:
                    self._close_quietly()
                if not self._ever_connected:
                    # Wrong user, password, vhost or permissions: waiting will not fix it.
                    raise SetupError(
                        f"BELEGSYNC_BROKER_URL: RabbitMQ at {self.safe_url} refused us: "
                        f"{_reason(e)} (check user, password, vhost and permissions)"
                    ) from e
                # It let us in before: a node still starting up refuses for a moment.
                attempt = self._wait_to_retry(e, attempt, retries, on_retry, stop)
            except CONNECTION_ERRORS as e:
                with self.lock:
                    self._close_quietly()
                attempt = self._wait_to_retry(e, attempt, retries, on_retry, stop)

    def _wait_to_retry(
        self,
        error: Exception,
        attempt: int,
        retries: int | None,
        on_retry: Callable[[str], None] | None,
        stop: threading.Event | None,
    ) -> int:
        """Back off before the next connection attempt; BrokerUnavailableError when done."""
        attempt += 1
        if retries is not None and attempt > retries:
            raise BrokerUnavailableError(
                f"cannot reach RabbitMQ at {self.safe_url}: {_reason(error)}"
            ) from error
        delay = min(30.0, 0.5 * 2 ** min(attempt, 6))
        if on_retry:
            on_retry(f"RabbitMQ unreachable ({_reason(error)}); retrying in {delay:.0f}s")
        if stop is not None and stop.wait(delay):
            raise BrokerUnavailableError(
                f"stopped while waiting for RabbitMQ at {self.safe_url}"
            ) from error
        if stop is None:
            time.sleep(delay)
        return attempt

    def _connect_any_node(self) -> None:
        """Open a connection to the first node that takes it (caller holds ``lock``)."""
        self._connection = self._nodes.connect(
            heartbeat=self.heartbeat,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            transport_options={"confirm_publish": True},
        )
        self._publish_channel = self._connection.channel()

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise BrokerUnavailableError("not connected to RabbitMQ")
        return self._connection

    def new_channel(self) -> Any:
        """A channel of its own (e.g. for basic_get); the caller closes it.

        Bodies stay bytes: py-amqp would otherwise decode them by their content encoding,
        and an undecodable parked body must come back exactly as it was.
        """
        with self.lock:
            channel = self.connection.channel()
        channel.auto_decode = False
        return channel

    def send_heartbeat(self) -> None:
        with self.lock:
            conn = self._connection
            if conn is None:
                return
            try:
                conn.connection.send_heartbeat()
            except Exception:
                log.debug("heartbeat could not be sent", exc_info=True)

    def heartbeat_check(self) -> None:
        with self.lock:
            if self._connection is not None:
                self._connection.heartbeat_check()

    def ping(self) -> bool:
        with self.lock:
            conn = self._connection
            if conn is None:
                return False
            try:
                return bool(conn.connected)
            except Exception:
                return False

    def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.stop.set()
            self._keepalive = None
        with self.lock:
            self._close_quietly()

    def _close_quietly(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:
                log.debug("closing the broker connection failed", exc_info=True)
        self._connection = None
        self._publish_channel = None

    # -- publishing ----------------------------------------------------------------------------

    def publish(
        self,
        body: bytes,
        *,
        exchange: Exchange,
        routing_key: str,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """Publish persistently and wait for the broker's confirm; PublishError otherwise."""
        with self.lock:
            try:
                if self._publish_channel is None:
                    raise PublishError("not connected to RabbitMQ")
                producer = Producer(self._publish_channel)
                producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    headers=dict(headers or {}),
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    mandatory=True,
                    message_id=message_id,
                    confirm_timeout=self.publish_timeout,
                    timeout=self.publish_timeout,
                )
            except PublishError:
                raise
            except (*CONNECTION_ERRORS, amqp.exceptions.MessageNacked) as e:
                # The channel's state is unknown after a failed confirm: start afresh next time.
                self._close_quietly()
                raise PublishError(f"RabbitMQ did not confirm the message: {_reason(e)}") from e

    def publish_work(
        self, body: bytes, direction: Direction, *, headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:  # fmt: skip
        self.publish(
            body,
            exchange=self.topology.work_exchange,
            routing_key=direction.value,
            headers=headers,
            message_id=message_id,
        )

    def publish_retry(
        self, body: bytes, routing_key: str, tier: int, *, headers: Mapping[str, Any],
        message_id: str | None = None,
    ) -> None:  # fmt: skip
        self.publish(
            body,
            exchange=self.topology.retry_exchange(tier),
            routing_key=routing_key,
            headers=headers,
            message_id=message_id,
        )

    def publish_parked(
        self, body: bytes, routing_key: str, *, headers: Mapping[str, Any],
        message_id: str | None = None,
    ) -> None:  # fmt: skip
        self.publish(
            body,
            exchange=self.topology.parking_exchange,
            routing_key=routing_key,
            headers=headers,
            message_id=message_id,
        )

    # -- consuming -----------------------------------------------------------------------------

    @contextmanager
    def consuming(self, queues: Sequence[Queue], *, prefetch: int) -> Iterator[Inbox]:
        """Consume ``queues`` on a channel of its own; take the deliveries from the ``Inbox``.

        Leaving the context closes the channel: every delivery not acked by then (the one in
        hand, the buffered ones) goes back to its queue.
        """
        with self.lock:
            channel = self.connection.channel()
            channel.auto_decode = False  # bodies stay bytes, exactly as sent
            channel.basic_qos(prefetch_size=0, prefetch_count=prefetch, a_global=False)
            inbox = Inbox(self, channel)
            for queue in queues:
                inbox._subscribe(queue.name)
        try:
            yield inbox
        finally:
            with self.lock:
                try:
                    channel.close()
                except Exception:
                    log.debug("closing the consumer channel failed", exc_info=True)

    def drain(self, timeout: float) -> bool:
        """Read the frames that arrive within ``timeout``; False when nothing came."""
        with self.lock:
            conn = self.connection
            try:
                conn.drain_events(timeout=timeout)
            except TimeoutError:
                conn.heartbeat_check()
                return False
            except RECONNECT_ON:
                raise
            except Exception as e:
                # py-amqp failed to read a frame (a header value it cannot represent): the
                # connection's state is unknown, so start afresh; the message comes back and
                # the delivery limit parks it if it always does this.
                raise BrokerUnavailableError(f"unreadable frame from RabbitMQ: {_reason(e)}") from e
        return True

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery (it leaves its queue for good)."""
        with self.lock:
            try:
                delivery.channel.basic_ack(delivery.delivery_tag)
            except _ACK_ERRORS as e:
                raise BrokerUnavailableError(f"could not acknowledge: {_reason(e)}") from e

    def get(self, channel: Any, queue: str) -> Delivery | None:
        """One message of ``queue`` by basic_get on ``channel`` (``new_channel``), not acked."""
        with self.lock:
            message = channel.basic_get(queue=queue, no_ack=False)
        return None if message is None else Delivery.from_amqp(message, queue, channel)

    # -- inspection ----------------------------------------------------------------------------

    def queue_depths(self) -> dict[tuple[str, str], QueueDepth]:
        """Messages and consumers per queue, by passive declare (no queue is created)."""
        depths: dict[tuple[str, str], QueueDepth] = {}
        with self.lock:
            channel = self.connection.channel()
            try:
                for label, role, queue in self.topology.queues():
                    try:
                        _, messages, consumers = channel.queue_declare(
                            queue=queue.name, passive=True
                        )
                    except amqp.exceptions.NotFound:
                        channel = self.connection.channel()  # a failed passive declare closes it
                        continue
                    depths[(label, role)] = QueueDepth(messages, consumers)
            finally:
                try:
                    channel.close()
                except Exception:
                    log.debug("closing the inspection channel failed", exc_info=True)
        return depths

    def delete_all(self) -> None:
        """Remove every queue and exchange of this prefix (tests and the demo clean up)."""
        with self.lock:
            channel = self.connection.channel()
            for _, _, queue in self.topology.queues():
                try:
                    channel.queue_delete(queue.name)
                except Exception:
                    channel = self.connection.channel()
            exchanges = [self.topology.work_exchange.name, self.topology.parking_exchange.name]
            exchanges += [
                self.topology.retry_exchange(t).name for t in range(len(self.topology.retry_delays))
            ]
            for name in exchanges:
                try:
                    channel.exchange_delete(name)
                except Exception:
                    channel = self.connection.channel()
            channel.close()


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
