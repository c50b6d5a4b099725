"""Database failures classified like API errors, on the real SQLite and PostgreSQL: a value the
database refuses is permanent for the message that carried it, a lost database is transient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shared import dberrors
from shared.db import Database, Document, DocumentEvent
from shared.errors import ErrorClass
from tests.conftest import POSTGRES_ADMIN_URL, PostgresDatabases, service_missing


@pytest.fixture
def pg(postgres_databases: PostgresDatabases | None) -> Iterator[Database]:
    """PostgreSQL alone: SQLite stores NUL, ignores VARCHAR lengths and has no server."""
    if postgres_databases is None:
        service_missing("PostgreSQL")
        raise AssertionError("unreachable")
    url = postgres_databases.create(migrated=True)
    db = Database(url)
    yield db
    db.dispose()
    postgres_databases.drop(url)


def error_class(error: BaseException) -> ErrorClass | None:
    rule = dberrors.classify(error)
    return None if rule is None else rule.error_class


def failure(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as e:
        return e
    raise AssertionError("the database took it")


def get_document(db: Database, document_id: int) -> Callable[[], object]:
    def action() -> object:
        with db.session() as session:
            return session.get(Document, document_id)

    return action


def select_text(db: Database, value: str) -> Callable[[], object]:
    def action() -> object:
        with db.session() as session:
            return session.execute(text("SELECT :value"), {"value": value}).all()

    return action


def add_event(db: Database, **fields: object) -> Callable[[], object]:
    def action() -> None:
        with db.session() as session:
            session.add(DocumentEvent(**{"document_id": 1, "to_state": "x", **fields}))
            session.flush()

    return action


def test_an_id_beyond_the_integer_range_is_a_permanent_data_error(db: Database) -> None:
    refused = failure(get_document(db, 10**30))
    assert error_class(refused) is ErrorClass.PERMANENT
    assert not dberrors.is_transient(refused)
    described = dberrors.describe(refused)
    assert "SELECT" not in described  # never the statement or its parameters
    assert "\n" not in described


def test_text_the_driver_cannot_encode_is_a_permanent_data_error(db: Database) -> None:
    refused = failure(select_text(db, "lone \ud800 surrogate"))
    assert error_class(refused) is ErrorClass.PERMANENT


def test_a_violated_constraint_is_a_permanent_data_error(db: Database) -> None:
    refused = failure(add_event(db, document_id=999_999))  # no such document: foreign key
    assert error_class(refused) is ErrorClass.PERMANENT
    assert "refused the change" in dberrors.describe(refused)


def test_postgres_refuses_nul_and_overlong_text_as_permanent(pg: Database) -> None:
    for action in (select_text(pg, "a\x00b"), add_event(pg, to_state="x" * 30)):
        assert error_class(failure(action)) is ErrorClass.PERMANENT


def test_an_unreachable_database_is_transient(tmp_path: Path) -> None:
    for url in (
        f"sqlite:///{tmp_path}/no/such/dir/belegsync.db",
        "postgresql+psycopg://postgres@127.0.0.1:1/nothing",
    ):
        db = Database(url)
        try:
            lost = failure(get_document(db, 1))
        finally:
            db.dispose()
        assert dberrors.is_transient(lost), url


def test_a_connection_killed_by_the_server_is_transient(pg: Database) -> None:
    db = pg
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with db.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            lost = failure(lambda: conn.execute(text("SELECT 1")))
        assert dberrors.is_transient(lost)
        assert get_document(db, 1)() is None  # the pool connects afresh
    finally:
        admin.dispose()
