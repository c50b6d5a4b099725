"""Composition roots: build each process's objects once, from its settings, and pass them down.

A producer process imports no consumer code and a consumer process no producer code: each
builder imports its side when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.accounts import AccountService
from shared.broker import Broker
from shared.clients import ClientFactory
from shared.crypto import SecretBox
from shared.db import Database
from shared.domain import Direction
from shared.findings import Findings
from shared.locks import locks_for
from shared.metrics import Metrics
from shared.quota import QuotaBook, limits_from
from shared.settings import Settings
from shared.topology import Topology

if TYPE_CHECKING:
    from consumers.worker import Consumer
    from producers.scheduler import Producer


def topology(settings: Settings) -> Topology:
    return Topology.from_settings(settings)


def broker(settings: Settings) -> Broker:
    return Broker(settings.broker_url, topology(settings), publish_timeout=settings.publish_timeout)


def _box_factory(box: SecretBox | Callable[[], SecretBox]) -> Callable[[], SecretBox]:
    """A key now, or a way to get it when an account first needs it (never sooner)."""
    return box if callable(box) else lambda: box


def build_producer(
    settings: Settings,
    db: Database,
    box: SecretBox | Callable[[], SecretBox],
    metrics: Metrics | None,
) -> Producer:
    from app.status import BacklogMetrics
    from producers.dispatch import Dispatcher
    from producers.outbox import Outbox
    from producers.pollers import ExportPoller, ImportPoller
    from producers.scheduler import Producer

    quota = QuotaBook(db, limits_from(settings))
    the_broker = broker(settings)
    outbox = Outbox(db, the_broker)
    return Producer(
        db=db,
        broker=the_broker,
        accounts=AccountService(db, _box_factory(box)),
        clients=ClientFactory(settings, quota, metrics, Findings(db)),
        pollers={
            Direction.EXPORT: ExportPoller(
                db,
                approval_recheck=settings.approval_recheck_after,
                approval_batch=settings.approval_recheck_batch,
            ),
            Direction.IMPORT: ImportPoller(
                db,
                overlap_days=settings.import_overlap_days,
                deep_sweep=settings.deep_sweep,
            ),
        },
        outbox=outbox,
        quota=quota,
        dispatcher=Dispatcher(
            db,
            outbox,
            quota,
            billomat_poll_reserve=settings.billomat_quota_reserve,
            broker=the_broker,
        ),
        metrics=metrics,
        observe_backlogs=BacklogMetrics(db, metrics, quota.limits) if metrics else None,
    )


def build_consumer(
    settings: Settings,
    db: Database,
    box: SecretBox | Callable[[], SecretBox],
    metrics: Metrics | None,
) -> Consumer:
    from consumers.handlers import ExportHandler, ImportHandler
    from consumers.worker import Consumer

    quota = QuotaBook(db, limits_from(settings))
    return Consumer(
        db=db,
        broker=broker(settings),
        accounts=AccountService(db, _box_factory(box)),
        # document work: it leaves each window's reserve to the polls
        clients=ClientFactory(settings, quota, metrics, Findings(db), work=True),
        handlers={
            Direction.EXPORT: ExportHandler(db, quota),
            Direction.IMPORT: ImportHandler(db, quota),
        },
        locks=locks_for(db),
        quota=quota,
        max_attempts=settings.attempts_allowed,
        metrics=metrics,
    )
