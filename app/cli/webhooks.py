"""``belegsync webhooks``: receive Billomat's webhooks for import accounts until stopped."""

from __future__ import annotations

import logging
import threading
from typing import Any

import click

from app.cli.app import App
from app.cli.run import metrics_port_option, observed, pass_app, stop_on_signals
from shared.domain import Direction
from shared.errors import BelegsyncError

log = logging.getLogger("belegsync")


@click.command("webhooks")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    required=True,
    help="Listen for Billomat's webhook POSTs on this port.",
)
@click.option(
    "--host",
    default="0.0.0.0",  # noqa: S104 - Billomat calls in from outside (behind a TLS proxy)
    show_default=True,
    help="Address to listen on.",
)
@metrics_port_option("webhooks")
@pass_app
def webhooks(app: App, /, port: int, host: str, metrics_port: int | None) -> None:
    """Receive Billomat webhooks at POST /billomat/<account> and queue their documents.

    For import accounts with --webhook-username/--webhook-password; Billomat's webhook
    settings take the URL (behind HTTPS) and the same credentials. Runs until SIGTERM/Ctrl-C.
    """
    from app.webhooks import Webhooks
    from producers.webhooks import PATH_PREFIX

    db = app.migrated_db()
    box = app.secret_box
    # Ready means webhooks can be recorded: the database.  A missing broker only delays the
    # publishing of what was recorded, so it does not take the receiver out of rotation.
    checks: dict[str, Any] = {"database": db.ping}
    with observed(app, "webhooks", metrics_port, checks) as metrics:
        receiving = [
            a.name
            for a in app.accounts.list()
            if a.direction == Direction.IMPORT.value and a.webhook_username
        ]
        if receiving:
            log.info("webhooks enabled for: %s", ", ".join(receiving))
        else:
            log.warning(
                "no import account has webhook credentials yet: every webhook is refused "
                "(`belegsync accounts update NAME --webhook-username U --webhook-password P`)"
            )
        service = Webhooks(app.settings, db, box, metrics)
        try:
            try:
                bound = service.start(host, port)
            except OSError as e:
                raise BelegsyncError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
            stop = threading.Event()
            stop_on_signals(stop)
            log.info(
                "receiving Billomat webhooks on http://%s:%d%s<account>; Ctrl-C stops it",
                host,
                bound,
                PATH_PREFIX,
            )
            stop.wait()
        finally:
            service.stop()
        log.info("webhook receiver stopped")
