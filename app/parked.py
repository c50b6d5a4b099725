"""What sits in the parking queue, described without trusting any of it.

A parked message may be anything anyone published (5 MB of random bytes, JSON nested 100,000
levels deep, headers of any type), so operator commands read it only through
``shared.messages``: a body that does not decode is described by the decoder's reason and its
size, a header by one line of text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shared.broker import Broker
from shared.deliveries import Delivery
from shared.messages import (
    ERROR_CLASS_HEADER,
    ERROR_HEADER,
    PARKED_AT_HEADER,
    ROUTING_KEY_HEADER,
    MalformedMessage,
    SyncMessage,
    decode_message,
    header_text,
)


@dataclass(frozen=True)
class ParkedMessage:
    message: SyncMessage | None  # None: the body does not decode
    undecodable: str | None  # the decoder's reason when it does not
    reason: str  # why it was parked (our header), one line
    error_class: str | None
    parked_at: str | None
    routing_key: str | None
    size: int  # bytes of the body

    def as_dict(self) -> dict[str, Any]:
        msg = self.message
        return {
            "account": msg.account if msg else None,
            "direction": msg.direction.value if msg else self.routing_key,
            "source_id": msg.source_id if msg else None,
            "document_id": msg.document_id if msg else None,
            "undecodable": self.undecodable,
            "reason": self.reason,
            "error_class": self.error_class,
            "parked_at": self.parked_at,
            "size": self.size,
        }


def describe(delivery: Delivery) -> ParkedMessage:
    """Never raises, whatever the body and headers are."""
    headers = delivery.headers
    try:
        msg: SyncMessage | None = decode_message(delivery.body)
        undecodable = None
    except MalformedMessage as e:
        msg, undecodable = None, e.reason
    # A message dead-lettered by the delivery limit carries no reason of ours.
    reason = header_text(headers, ERROR_HEADER) or (
        "delivered too often without an outcome (delivery limit)"
        if "x-death" in headers
        else "no reason recorded"
    )
    return ParkedMessage(
        message=msg,
        undecodable=undecodable,
        reason=reason,
        error_class=header_text(headers, ERROR_CLASS_HEADER, limit=40),
        parked_at=header_text(headers, PARKED_AT_HEADER, limit=40),
        routing_key=header_text(headers, ROUTING_KEY_HEADER, limit=40),
        size=len(delivery.body),
    )


def browse(broker: Broker, *, limit: int | None = None) -> Iterator[Delivery]:
    """Each parked message once, left unacked (``broker.ack`` takes it out for good).

    Whatever the caller does not ack goes back to the parking queue, in its place, when the
    channel closes at the end.
    """
    queue = broker.topology.parked_queue.name
    channel = broker.new_channel()
    try:
        seen = 0
        while limit is None or seen < limit:
            delivery = broker.get(channel, queue)
            if delivery is None:
                return
            seen += 1
            yield delivery
    finally:
        with broker.lock:
            channel.close()


def parked_messages(broker: Broker, *, limit: int = 1000) -> list[ParkedMessage]:
    """Up to ``limit`` parked messages, described; the queue is left as it was."""
    return [describe(delivery) for delivery in browse(broker, limit=limit)]
