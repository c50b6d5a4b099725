"""Long-running processes: `belegsync produce` and `belegsync consume`, with their logging,
metrics and health endpoints.

Each command imports only what its process runs (the producer never loads the consumer, and
neither loads the migrations, the demo or the simulators).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from app.cli.app import App
from shared.domain import Direction
from shared.errors import UsageError

if TYPE_CHECKING:
    from producers.scheduler import Producer
    from shared.metrics import Metrics

log = logging.getLogger("belegsync")

pass_app = click.make_pass_decorator(App)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PORTS = {"producer": 9107, "consumer": 9108, "webhooks": 9109}


def metrics_port_option(role: str) -> Callable[[F], F]:
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help=f"Serve /metrics, /healthz, /readyz here; 0 turns it off "
        f"[default: BELEGSYNC_METRICS_PORT or {DEFAULT_PORTS[role]}].",
    )


@contextmanager
def observed(app: App, role: str, port: int | None, checks: dict[str, Any]) -> Iterator[Metrics]:
    """Logging, metrics and the health endpoints of one long-running process."""
    from shared.health import serve
    from shared.logs import configure_logging
    from shared.metrics import Metrics

    configure_logging(app.settings.log_format, app.settings.log_level)
    metrics = Metrics(role=role)
    if port is None:
        port = (
            app.settings.metrics_port
            if app.settings.metrics_port is not None
            else DEFAULT_PORTS[role]
        )
    server = serve(
        metrics, port, readiness=lambda: {name: bool(check()) for name, check in checks.items()}
    )
    if server.enabled:
        log.info("metrics and health on port %s", server.port)
    try:
        yield metrics
    finally:
        server.stop()


def stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command("produce")
@click.option("--once", is_flag=True, help="Poll now, publish, and exit.")
@click.option("--account", "account_names", multiple=True, help="Only this account (repeatable).")
@metrics_port_option("producer")
@pass_app
def produce(
    app: App, /, once: bool, account_names: tuple[str, ...], metrics_port: int | None
) -> None:
    """Run the pollers: detect new documents and publish one message per document."""
    from app.bootstrap import build_producer

    db = app.migrated_db()
    # A key that opens no account at all is the process's fault: say so now, once.
    app.accounts.check_secret_key()
    if account_names:
        known = {a.name: a for a in app.accounts.list()}
        for name in account_names:
            if name not in known:
                raise UsageError(f"unknown sync account {name!r} (see `belegsync accounts list`)")
            if once and not known[name].enabled:
                raise UsageError(f"account {name!r} is paused: `belegsync accounts resume {name}`")
    holder: dict[str, Any] = {}
    checks = {"database": db.ping, "broker": lambda: holder["producer"].broker.ping()}
    with observed(app, "producer", 0 if once else metrics_port, checks) as metrics:
        # The key is read when the first account needs it (never created here).
        producer = build_producer(app.settings, db, lambda: app.secret_box, metrics)
        producer.log_polls = not once
        holder["producer"] = producer
        stop = threading.Event()
        stop_on_signals(stop)
        try:
            if once:
                _produce_once(producer, account_names, stop)
                return
            producer.broker.connect(
                retries=None, on_retry=lambda m: log.warning("%s", m), stop=stop
            )
            log.info("producer running; Ctrl-C stops it")
            producer.run(stop)
        finally:
            producer.broker.close()
            producer.clients.close()


def _produce_once(
    producer: Producer, account_names: tuple[str, ...], stop: threading.Event
) -> None:
    """Poll every enabled account (or the named ones) once; exit 1 when a poll failed."""
    from producers.scheduler import describe_report

    ids = producer.accounts_to_poll(account_names)
    if not ids:
        click.echo(
            "no enabled sync accounts to poll: add one with `belegsync accounts add export|import "
            "NAME …`, or resume a paused one (`belegsync accounts list`)"
        )
        return
    producer.broker.connect(retries=2, on_retry=lambda m: log.warning("%s", m), stop=stop)
    failed = 0
    for account_id in ids:
        if not producer.claim(account_id, datetime.now(UTC)):
            click.echo(f"{producer.account_name(account_id)}: being polled by another producer")
            continue
        report = producer.poll_account(account_id)
        click.echo(f"{report.account}: {describe_report(report)}")
        failed += report.result not in ("ok", "skipped_quota", "rate_limited")
    if failed:
        raise click.exceptions.Exit(1)


@click.command("consume")
@click.option(
    "--direction",
    type=click.Choice(["export", "import", "all"]),
    default="all",
    show_default=True,
    help="Which work queue(s) to consume.",
)
@click.option(
    "--idle-exit",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Exit after this many seconds without work.",
)
@metrics_port_option("consumer")
@pass_app
def consume(app: App, /, direction: str, idle_exit: float | None, metrics_port: int | None) -> None:
    """Run a consumer: upload documents to the other side. Start as many as you like."""
    from app.bootstrap import build_consumer

    db = app.migrated_db()
    app.accounts.check_secret_key()
    directions = list(Direction) if direction == "all" else [Direction(direction)]
    holder: dict[str, Any] = {}
    checks = {"database": db.ping, "broker": lambda: holder["consumer"].broker.ping()}
    with observed(app, "consumer", metrics_port, checks) as metrics:
        consumer = build_consumer(app.settings, db, lambda: app.secret_box, metrics)
        holder["consumer"] = consumer
        consumer.install_signal_handlers()
        try:
            consumer.broker.connect(
                retries=None, on_retry=lambda m: log.warning("%s", m), stop=consumer.stop
            )
            log.info("consumer running on %s", ", ".join(d.value for d in directions))
            consumer.run(directions, prefetch=app.settings.prefetch, idle_exit=idle_exit)
            log.info("consumer stopped after %d message(s)", consumer.handled)
        finally:
            consumer.broker.close()
            consumer.clients.close()
            consumer.locks.close()
