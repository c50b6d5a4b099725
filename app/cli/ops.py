"""Operational commands: produce, consume, status, documents (and the simulators, the demo)."""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from app import bootstrap
from app.cli.app import App
from app.cli.output import print_json, print_record, print_table
from app.status import documents as list_documents
from app.status import overview
from shared.domain import Direction
from shared.errors import UsageError
from shared.health import HealthServer, serve
from shared.logs import configure_logging
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
    configure_logging(app.settings.log_format, app.settings.log_level)
    metrics = Metrics(role=role)
    if port is None:
        port = (
            app.settings.metrics_port
            if app.settings.metrics_port is not None
            else DEFAULT_PORTS[role]
        )
    server: HealthServer = serve(
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
    db = app.migrated_db()
    box = app.secret_box
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
        producer = bootstrap.build_producer(app.settings, db, box, metrics)
        holder["producer"] = producer
        stop = threading.Event()
        stop_on_signals(stop)
        producer.broker.connect(
            retries=None if not once else 2, on_retry=lambda m: log.warning("%s", m), stop=stop
        )
        try:
            if once:
                failed = 0
                for account_id in producer.accounts_to_poll(account_names):
                    if not producer.claim(account_id, datetime.now(UTC)):
                        click.echo(f"account {account_id}: being polled by another producer")
                        continue
                    report = producer.poll_account(account_id)
                    click.echo(
                        f"{report.account}: {report.result}, {report.listed} listed, "
                        f"{report.new} new, {report.requeued} requeued, {report.published} "
                        f"published, {report.calls} API call(s)"
                        + (f" — {report.error}" if report.error else "")
                    )
                    failed += report.result not in ("ok", "skipped_quota", "rate_limited")
                if failed:
                    raise click.exceptions.Exit(1)
                return
            log.info("producer running; Ctrl-C stops it")
            producer.run(stop)
        finally:
            producer.broker.close()
            producer.clients.close()


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
    db = app.migrated_db()
    box = app.secret_box
    directions = list(Direction) if direction == "all" else [Direction(direction)]
    holder: dict[str, Any] = {}
    checks = {"database": db.ping, "broker": lambda: holder["consumer"].broker.ping()}
    with observed(app, "consumer", metrics_port, checks) as metrics:
        consumer = bootstrap.build_consumer(app.settings, db, box, metrics)
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


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def status(app: App, /, as_json: bool) -> None:
    """The sync overview: per account, the last and next poll and documents by state."""
    rows = overview(app.migrated_db())
    if as_json:
        print_json(rows)
        return
    for row in rows:
        counts = row["counts"]
        row["synced"] = counts.get("synced", 0)
        row["pending"] = sum(counts.get(s, 0) for s in ("pending", "uploading", "uploaded", "held"))
        row["waiting"] = counts.get("waiting_approval", 0) + counts.get("draft", 0)
        row["retrying"] = counts.get("retrying", 0)
        row["parked"] = counts.get("parked", 0)
        row["skipped"] = counts.get("skipped", 0)
        row["last_poll"] = (
            f"{row['last_poll_at'][:19].replace('T', ' ')} {row['last_poll_result']}"
            if row["last_poll_at"]
            else None
        )
        row["next_poll"] = (
            row["next_poll_at"][:19].replace("T", " ") if row["next_poll_at"] else None
        )
    print_table(
        rows,
        [
            ("account", "account"),
            ("direction", "direction"),
            ("enabled", "enabled"),
            ("last_poll", "last poll (UTC)"),
            ("next_poll", "next poll (UTC)"),
            ("synced", "synced"),
            ("pending", "pending"),
            ("waiting", "waiting"),
            ("retrying", "retrying"),
            ("parked", "parked"),
            ("skipped", "skipped"),
            ("attention", "attention"),
        ],
        title="sync overview",
    )


@click.command("documents")
@click.option("--account", help="Only this account.")
@click.option("--state", help="Only documents in this state (e.g. parked, synced, pending).")
@click.option("--document", "source_id", help="One source document id, with its history.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def documents(
    app: App,
    /,
    account: str | None,
    state: str | None,
    source_id: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """The per-document ledger: where each document stands, and why."""
    rows = list_documents(
        app.migrated_db(),
        account=account,
        state=state,
        source_id=source_id,
        limit=limit,
        with_history=source_id is not None,
    )
    if as_json:
        print_json(rows)
        return
    if source_id is not None:
        for row in rows:
            history = row.pop("history", [])
            print_record(row)
            print_table(
                [{**e, "at": e["at"][:19].replace("T", " ")} for e in history],
                [("at", "at (UTC)"), ("from", "from"), ("to", "to"), ("reason", "reason")],
                title="history",
            )
        if not rows:
            click.echo("no such document")
        return
    print_table(
        rows,
        [
            ("account", "account"),
            ("direction", "dir"),
            ("source_kind", "kind"),
            ("source_id", "source"),
            ("document_number", "number"),
            ("state", "state"),
            ("target_id", "target"),
            ("attempts", "attempts"),
            ("last_error", "last error"),
        ],
        title="documents",
    )


def register(cli: click.Group) -> None:
    """Attach the operational commands to the root group.

    The simulators, the demo, webhooks and replay live in modules of their own that import
    this one; they are looked up here, at run time, to keep the import graph acyclic.
    """
    for command in (produce, consume, status, documents):
        cli.add_command(command)
    for module_name, command_name in (
        ("simulators.cli", "simulate"),
        ("app.cli.demo", "demo"),
        ("app.cli.webhooks", "webhooks"),
        ("app.cli.replay", "replay"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        cli.add_command(getattr(module, command_name))
