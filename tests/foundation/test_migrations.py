"""Alembic migrations: empty -> head -> base on SQLite and PostgreSQL; models match them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import migrations
from shared.db import SCHEMA_REVISION, Base, Database, SyncAccount
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
    "account_findings",
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


def test_0002_gives_existing_accounts_their_id_as_ref_so_their_markers_stay_theirs(
    empty_database_url: str,
) -> None:
    migrations.upgrade(empty_database_url, "0001")
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sync_accounts (id, name, direction, enabled, gmi_api_key_enc,"
                    " billomat_id, billomat_api_key_enc, interval_seconds, note, document_types,"
                    " tags, require_approval, archive_after_transfer, default_tags,"
                    " document_kinds, created_at, updated_at) VALUES (7, 'old', 'export', TRUE,"
                    " 'x', 'acme', 'y', 900, '', '[]', '[]', FALSE, FALSE, '[]', '[]',"
                    " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
        migrations.upgrade(empty_database_url)
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT ref, removed_at, target_scan FROM sync_accounts WHERE id = 7")
            ).one()
        assert tuple(row) == ("7", None, None)  # the first poll after the upgrade looks once
        migrations.downgrade(empty_database_url, "0001")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM sync_accounts")).scalars().all() == ["old"]
    finally:
        engine.dispose()


def test_a_name_is_unique_among_live_accounts_only(db: Database) -> None:
    def add(session: Session, name: str, ref: str, removed: bool) -> None:
        session.add(
            SyncAccount(
                ref=ref, name=name, direction="export", enabled=not removed,
                gmi_api_key_enc="x", billomat_id="acme", billomat_api_key_enc="y",
                interval_seconds=900, note="", document_types=[], tags=[],
                require_approval=False, archive_after_transfer=False, default_tags=[],
                document_kinds=[], removed_at=datetime.now(UTC) if removed else None,
            )
        )  # fmt: skip

    with db.session() as session:
        add(session, "acme", "r1", removed=True)
        add(session, "acme", "r2", removed=True)
        add(session, "acme", "r3", removed=False)
    with pytest.raises(IntegrityError), db.session() as session:
        add(session, "acme", "r4", removed=False)
    with pytest.raises(IntegrityError), db.session() as session:
        add(session, "other", "r3", removed=False)  # a ref is never given twice
