"""What a consumer channel hands over: one ``Delivery`` per message, buffered in an ``Inbox``.

Why deliveries are buffered instead of handled in py-amqp's callback, and why they bypass
kombu's ``Message``, is told in ``shared.broker``'s docstring.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.broker import Broker


@dataclass
class Delivery:
    """One message as the broker handed it over: raw body, headers of any type, where from."""

    body: bytes
    headers: dict[Any, Any]
    routing_key: str
    queue: str
    delivery_tag: int
    redelivered: bool
    channel: Any = field(repr=False, default=None)

    @classmethod
    def from_amqp(cls, message: Any, queue: str, channel: Any) -> Delivery:
        """Never raises: whatever py-amqp made of the frames is taken as it is."""
        info = getattr(message, "delivery_info", None) or {}
        properties = getattr(message, "properties", None) or {}
        headers = properties.get("application_headers")
        body = message.body
        if isinstance(body, str):  # only with auto_decode, which our channels turn off
            body = body.encode("utf-8", "surrogateescape")
        routing_key = info.get("routing_key")
        return cls(
            body=bytes(body or b""),
            headers=dict(headers) if isinstance(headers, Mapping) else {},
            routing_key=routing_key if isinstance(routing_key, str) else "",
            queue=queue,
            delivery_tag=int(info.get("delivery_tag") or message.delivery_tag),
            redelivered=bool(info.get("redelivered")),
            channel=channel,
        )


class Inbox:
    """The deliveries of one consumer channel, buffered (see the module docstring)."""

    def __init__(self, broker: Broker, channel: Any) -> None:
        self._broker = broker
        self.channel = channel
        self._pending: deque[Delivery] = deque()

    def _subscribe(self, queue: str) -> None:
        def on_delivery(message: Any) -> None:
            self._pending.append(Delivery.from_amqp(message, queue, self.channel))

        self.channel.basic_consume(queue=queue, callback=on_delivery, no_ack=False)

    def take(self, timeout: float) -> Delivery | None:
        """The next delivery: a buffered one, or one that arrives within ``timeout``."""
        if not self._pending:
            self._broker.drain(timeout)
        return self._pending.popleft() if self._pending else None

    def __len__(self) -> int:
        return len(self._pending)
