"""Alembic migrations: empty -> head -> base on SQLite and PostgreSQL; models match them."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from shared import migrations
from shared.db import SCHEMA_REVISION, Base, Database
from shared.errors import NotMigratedError

TABLES = {
    "sync_accounts",
    "documents",
    "document_events",
    "poll_state",
    "api_quotas",
    "web_users",
    "web_sessions",
    "login_throttle",
    "account_events",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_to_head_and_back_to_base(empty_database_url: str) -> None:
    assert not (_tables(empty_database_url) & TABLES)

    migrations.upgrade(empty_database_url)
    assert _tables(empty_database_url) >= TABLES

    migrations.downgrade(empty_database_url, "base")
    assert not (_tables(empty_database_url) & TABLES)

    # and up again: the downgrade left nothing behind that blocks a new upgrade
    migrations.upgrade(empty_database_url)
    assert _tables(empty_database_url) >= TABLES


def test_models_match_the_migrations(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_unmigrated_database_names_the_upgrade_command(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        with pytest.raises(NotMigratedError, match="belegsync db upgrade"):
            db.check_migrated()
    finally:
        db.dispose()


def test_migrated_database_passes_the_check(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.check_migrated()
    finally:
        db.dispose()


def test_the_models_name_the_newest_migration() -> None:
    # Database.check_migrated compares with SCHEMA_REVISION instead of asking alembic.
    assert migrations.head_revision() == SCHEMA_REVISION
