"""Fixtures for tests that need the real PostgreSQL, SQLite and RabbitMQ on this machine.

Locally a test skips when its service is truly absent; with CI=true it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared import migrations
from shared.crypto import generate_key
from shared.db import Database
from shared.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get(
    "BELEGSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BROKER_URL = os.environ.get("BELEGSYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
TEST_SECRET_KEY = generate_key()


def service_missing(what: str) -> None:
    """Skip locally, fail in CI: CI must never silently skip the real-service tests."""
    message = f"{what} is not reachable"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the service must be running)")
    pytest.skip(message)


def _port_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+psycopg", ""))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# databases


class PostgresDatabases:
    """Creates one database per test from a migrated template, so tests cannot collide."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        # pre-ping: the chaos test restarts PostgreSQL under this pool
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        self.run_id = uuid.uuid4().hex[:8]
        self.template: str | None = None
        self.created: list[str] = []

    def _url_for(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def create(self, *, migrated: bool) -> str:
        name = f"belegsync_t_{self.run_id}_{len(self.created)}"
        with self.admin.connect() as conn:
            if migrated:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self._template()}"'))
            else:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self._url_for(name)

    def _template(self) -> str:
        if self.template is None:
            name = f"belegsync_t_{self.run_id}_template"
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            self.created.append(name)
            migrations.upgrade(self._url_for(name))
            self.template = name
        return self.template

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases | None]:
    if not _port_open(POSTGRES_ADMIN_URL, 5432):
        yield None
        return
    dbs = PostgresDatabases(POSTGRES_ADMIN_URL)
    yield dbs
    dbs.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrations.upgrade(f"sqlite:///{path}")
    return path


def make_database_url(
    kind: str,
    *,
    migrated: bool,
    tmp_path: Path,
    postgres: PostgresDatabases | None,
    sqlite_template: Path,
) -> str:
    if kind == "sqlite":
        path = tmp_path / "belegsync.db"
        if migrated:
            shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    if postgres is None:
        service_missing(f"PostgreSQL at {POSTGRES_ADMIN_URL}")
        raise AssertionError("unreachable")
    return postgres.create(migrated=migrated)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_database_url(
    db_kind: str,
    tmp_path: Path,
    postgres_databases: PostgresDatabases | None,
    sqlite_template: Path,
) -> str:
    return make_database_url(
        db_kind,
        migrated=False,
        tmp_path=tmp_path,
        postgres=postgres_databases,
        sqlite_template=sqlite_template,
    )


@pytest.fixture
def database_url(
    db_kind: str,
    tmp_path: Path,
    postgres_databases: PostgresDatabases | None,
    sqlite_template: Path,
) -> Iterator[str]:
    url = make_database_url(
        db_kind,
        migrated=True,
        tmp_path=tmp_path,
        postgres=postgres_databases,
        sqlite_template=sqlite_template,
    )
    yield url
    if db_kind == "postgresql" and postgres_databases is not None:
        postgres_databases.drop(url)


@pytest.fixture
def sqlite_database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """For tests that do not need to run on both databases (the pipeline's own logic)."""
    path = tmp_path / "belegsync.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


# ---------------------------------------------------------------------------------------------
# simulator variants


@pytest.fixture
def variant() -> str:
    """How the simulators settle what the API docs leave open (``simulators/variants.py``).

    ``documented`` by default; a test runs in other worlds with
    ``@pytest.mark.parametrize("variant", [...])`` (the ``sims`` fixtures read it).
    """
    return "documented"


# ---------------------------------------------------------------------------------------------
# broker and settings


@pytest.fixture(scope="session")
def broker_url() -> str:
    if not _port_open(BROKER_URL, 5672):
        service_missing(f"RabbitMQ at {BROKER_URL}")
    return BROKER_URL


@pytest.fixture
def queue_prefix() -> str:
    return f"bstest-{uuid.uuid4().hex[:10]}"


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": BROKER_URL,
        "queue_prefix": f"bstest-{uuid.uuid4().hex[:10]}",
        "secret_key": TEST_SECRET_KEY,
        "secret_key_file": tmp_path / "belegsync.key",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)
