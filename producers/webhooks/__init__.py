"""Billomat webhooks: a push producer that records what Billomat sends exactly as a poll would.

``body`` reads the JSON/XML bodies, ``receiver`` decides what a webhook means and records it,
``publisher`` publishes what was recorded; the HTTP server is an entry point (``app.webhooks``).
"""

from producers.webhooks.publisher import PUBLISH_WAIT_SECONDS, Publisher
from producers.webhooks.receiver import (
    PATH_PREFIX,
    UNAUTHORIZED_HEADERS,
    Reply,
    WebhookReceiver,
    WebhookRequest,
    basic_credentials,
)

__all__ = [
    "PATH_PREFIX",
    "PUBLISH_WAIT_SECONDS",
    "UNAUTHORIZED_HEADERS",
    "Publisher",
    "Reply",
    "WebhookReceiver",
    "WebhookRequest",
    "basic_credentials",
]
