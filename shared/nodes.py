"""Which RabbitMQ node to connect to: the nodes of a broker URL in kombu's failover syntax.

``amqp://u:p@a//;amqp://u:p@b//;amqp://u:p@c//`` names three nodes of one cluster.  One
connection attempt tries each node once, starting with the node after the one used last: a
process whose node went away moves on at once instead of waiting for it first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kombu.connection import Connection
from kombu.utils.url import maybe_sanitize_url

log = logging.getLogger(__name__)


def node_urls(url: str) -> list[str]:
    """The nodes of a broker URL (``amqp://a//;amqp://b//``), in their order."""
    nodes = [part.strip() for part in url.split(";") if part.strip()]
    if not nodes:
        raise ValueError("the broker URL names no RabbitMQ node")
    return nodes


class Nodes:
    """The nodes of one process's broker URL, and where its next connection starts."""

    def __init__(self, url: str) -> None:
        self.urls = node_urls(url)
        self._next = 0
        self.connects = 0
        self.current: str | None = None  # without its password

    @property
    def safe_url(self) -> str:
        return ";".join(maybe_sanitize_url(node) for node in self.urls)

    def connect(self, **options: Any) -> Connection:
        """A connection to the first node that takes it; the last node's error otherwise."""
        count = len(self.urls)
        order = [self.urls[(self._next + i) % count] for i in range(count)]
        connection = Connection(";".join(order), **options)
        try:
            # kombu's failover: each refused node hands over to the next alternate, without a
            # pause in between; the last one's error is raised.
            connection.ensure_connection(
                max_retries=count - 1, interval_start=0, reraise_as_library_errors=False
            )
        except BaseException:
            self._next = (self._next + 1) % count
            connection.release()
            raise
        used = _index(self.urls, connection)
        self._next = (used + 1) % count
        self.connects += 1
        self.current = maybe_sanitize_url(self.urls[used])
        # A reconnect is news for an operator (which node took over); the first connect is not.
        log.log(
            logging.INFO if self.connects > 1 else logging.DEBUG,
            "%s to RabbitMQ at %s (connection %d)",
            "reconnected" if self.connects > 1 else "connected",
            self.current,
            self.connects,
        )
        return connection


def _index(nodes: Sequence[str], connection: Connection) -> int:
    """Which of ``nodes`` a connected kombu connection ended up on."""
    where = (connection.hostname, connection.port)
    for index, node in enumerate(nodes):
        candidate = Connection(node)
        if (candidate.hostname, candidate.port) == where:
            return index
    return 0
