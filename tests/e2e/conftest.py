"""The whole pipeline on the real RabbitMQ, real databases and the simulators over sockets."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app import bootstrap
from app.status import documents, overview
from consumers.worker import Consumer
from producers.pollers import PollReport
from producers.scheduler import Producer
from shared.accounts import AccountChanges, AccountService
from shared.crypto import SecretBox
from shared.db import Database, SyncAccount
from shared.domain import Direction, export_marker
from shared.settings import Settings
from simulators import Simulators
from simulators.variants import DOCUMENTED
from tests.conftest import PostgresDatabases, make_database_url, make_settings

GMI_KEY = "gmi-e2e-key-0001"
BILLOMAT_ID = "acme"
BILLOMAT_KEY = "bm-e2e-key-0002"


def on_each_db_and_variant(*variants: str) -> pytest.MarkDecorator:
    """Parametrise a test that takes ``any_db_pipeline`` over (database, variant).

    Variants are about the APIs, not the database: each runs on SQLite; PostgreSQL runs the
    documented world only, which keeps the variant matrix cheap.
    """
    combos = [("postgresql", DOCUMENTED)] + [("sqlite", v) for v in (DOCUMENTED, *variants)]
    return pytest.mark.parametrize(
        ("any_db_pipeline", "variant"), combos, indirect=["any_db_pipeline"]
    )


@pytest.fixture
def sims(variant: str) -> Iterator[Simulators]:
    with Simulators(variants=[variant]) as running:
        running.gmi.add_account(GMI_KEY)
        running.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY)
        yield running


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for subprocesses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELEGSYNC_")}
    env.update(
        BELEGSYNC_DATABASE_URL=settings.database_url,
        BELEGSYNC_BROKER_URL=settings.broker_url,
        BELEGSYNC_QUEUE_PREFIX=settings.queue_prefix,
        BELEGSYNC_SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        BELEGSYNC_GMI_BASE_URL=settings.gmi_base_url,
        BELEGSYNC_BILLOMAT_BASE_URL=settings.billomat_base_url,
        BELEGSYNC_RETRY_DELAYS=settings.retry_delays,
        BELEGSYNC_METRICS_PORT="0",
    )
    if settings.max_attempts:
        env["BELEGSYNC_MAX_ATTEMPTS"] = str(settings.max_attempts)
    if settings.quorum_replicas:
        env["BELEGSYNC_QUORUM_REPLICAS"] = str(settings.quorum_replicas)
    env.update(settings.quota_environment())
    return env


# For tests that raise the GMI simulator's limits: GMI announces nothing, so belegsync counts
# against what it is told the limits are.
RAISED_GMI_LIMITS = {
    "gmi_calls_per_minute": 100_000,
    "gmi_calls_per_day": 10**7,
    "gmi_uploads_per_hour": 100_000,
}


class Pipeline:
    """Drives producers and consumers in-process (or as real processes) for one test."""

    def __init__(self, settings: Settings, sims: Simulators) -> None:
        self.settings = settings
        self.sims = sims
        self.db = Database(settings.database_url)
        assert settings.secret_key is not None
        self.box = SecretBox(settings.secret_key.get_secret_value())
        self.accounts = AccountService(self.db, lambda: self.box)
        self.processes: list[subprocess.Popen[bytes]] = []
        # A broker that is thrown away after the test (the cluster test's) needs no clean-up.
        self.broker_disposable = False

    def raise_gmi_limits(self) -> None:
        """The GMI simulator's limits were raised: belegsync's own count must know it, too."""
        self.settings = self.settings.model_copy(update=RAISED_GMI_LIMITS)

    # -- accounts ------------------------------------------------------------------------------

    def add_export(self, name: str = "acme-export", **settings: Any) -> int:
        keys = {
            "gmi_api_key": GMI_KEY,
            "billomat_id": BILLOMAT_ID,
            "billomat_api_key": BILLOMAT_KEY,
        }
        changes = AccountChanges(**(keys | settings))
        changes.require_approval = bool(changes.require_approval)
        changes.archive_after_transfer = bool(changes.archive_after_transfer)
        return self.accounts.add(Direction.EXPORT, name, changes).id

    def add_import(self, name: str = "acme-import", **settings: Any) -> int:
        keys = {
            "gmi_api_key": GMI_KEY,
            "billomat_id": BILLOMAT_ID,
            "billomat_api_key": BILLOMAT_KEY,
        }
        changes = AccountChanges(**(keys | settings))
        return self.accounts.add(Direction.IMPORT, name, changes).id

    def ref(self, account_id: int) -> str:
        """The account's never-reused identity, which its inbox markers carry."""
        with self.db.session() as session:
            account = session.get(SyncAccount, account_id)
            assert account is not None
            return account.ref

    def marker(self, account_id: int, gmi_uid: int) -> str:
        return export_marker(self.ref(account_id), gmi_uid)

    # -- running -------------------------------------------------------------------------------

    def produce_once(self, names: Sequence[str] = ()) -> list[PollReport]:
        producer = bootstrap.build_producer(self.settings, self.db, self.box, None)
        producer.broker.connect()
        try:
            reports = []
            for account_id in producer.accounts_to_poll(names):
                assert producer.claim(account_id, _utcnow())
                reports.append(producer.poll_account(account_id))
            return reports
        finally:
            producer.broker.close()
            producer.clients.close()

    @contextmanager
    def producing(self, tick: float = 0.2) -> Iterator[Producer]:
        """The producer loop in a thread: polls as accounts fall due and releases held and
        waiting documents as the quotas allow (what `belegsync produce` does)."""
        producer = bootstrap.build_producer(self.settings, self.db, self.box, None)
        producer.broker.connect()
        stop = threading.Event()
        thread = threading.Thread(
            target=producer.run, args=(stop,), kwargs={"tick": tick}, daemon=True
        )
        thread.start()
        try:
            yield producer
        finally:
            stop.set()
            thread.join(30)
            producer.broker.close()
            producer.clients.close()

    def consumer(self) -> Consumer:
        return bootstrap.build_consumer(self.settings, self.db, self.box, None)

    def consume(
        self, idle_exit: float = 1.5, directions: Sequence[Direction] = tuple(Direction)
    ) -> int:
        consumer = self.consumer()
        consumer.broker.connect()
        try:
            consumer.run(list(directions), idle_exit=idle_exit)
            return consumer.handled
        finally:
            consumer.broker.close()
            consumer.clients.close()
            consumer.locks.close()

    def consume_in_thread(
        self, directions: Sequence[Direction] = tuple(Direction)
    ) -> tuple[Consumer, threading.Thread]:
        consumer = self.consumer()
        consumer.broker.connect()

        def run() -> None:
            try:
                consumer.run(list(directions))
            finally:
                consumer.broker.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return consumer, thread

    def spawn(
        self, *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=env or settings_env(self.settings),
            stdout=out,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    # -- looking -------------------------------------------------------------------------------

    def ledger(self, account: str | None = None) -> list[dict[str, Any]]:
        return documents(self.db, account=account)

    def ledger_history(self, source_id: str) -> list[dict[str, Any]]:
        [doc] = documents(self.db, source_id=source_id, with_history=True)
        return list(doc["history"])

    def states(self, account: str | None = None) -> dict[str, str]:
        return {d["source_id"]: d["state"] for d in self.ledger(account)}

    def overview(self) -> list[dict[str, Any]]:
        return overview(self.db)

    def wait_until(self, condition: Any, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        states = Counter(self.states().values())
        raise AssertionError(f"timed out waiting for {what}; ledger states: {dict(states)}")

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        if not self.broker_disposable:
            broker = bootstrap.broker(self.settings)
            try:
                broker.connect()
                broker.delete_all()
            finally:
                broker.close()
        self.db.dispose()


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def pipeline_factory(
    sims: Simulators, sqlite_database_url: str, tmp_path: Path, broker_url: str
) -> Iterator[PipelineFactory]:
    """Pipelines on the simulators with settings of a test's choosing; closed afterwards."""
    made: list[Pipeline] = []

    def make(database_url: str | None = None, **overrides: Any) -> Pipeline:
        values: dict[str, Any] = {"retry_delays": "1s,2s,3s"} | overrides
        settings = make_settings(
            database_url or sqlite_database_url,
            tmp_path,
            gmi_base_url=sims.gmi_base_url,
            billomat_base_url=sims.billomat_url_template,
            **values,
        )
        made.append(Pipeline(settings, sims))
        return made[-1]

    yield make
    for running in made:
        running.close()


@pytest.fixture
def pipeline(pipeline_factory: PipelineFactory) -> Pipeline:
    return pipeline_factory()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_pipeline(
    request: pytest.FixtureRequest,
    pipeline_factory: PipelineFactory,
    tmp_path: Path,
    postgres_databases: PostgresDatabases | None,
    sqlite_template: Path,
) -> Iterator[Pipeline]:
    """The pipeline on SQLite and on PostgreSQL (advisory locks, a real server)."""
    (tmp_path / "any").mkdir()
    url = make_database_url(
        str(request.param),
        migrated=True,
        tmp_path=tmp_path / "any",
        postgres=postgres_databases,
        sqlite_template=sqlite_template,
    )
    yield pipeline_factory(url)
    if request.param == "postgresql" and postgres_databases is not None:
        postgres_databases.drop(url)
