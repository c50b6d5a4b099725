"""SQLAlchemy models (the schema Alembic migrates) and the engine/session factory.

Runs on SQLite (the embedded default) and PostgreSQL.  Timestamps are stored as UTC and come
back timezone-aware on both.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import ColumnElement

from shared import dberrors
from shared.errors import BelegsyncError, NotMigratedError, SetupError

log = logging.getLogger(__name__)

# The Alembic revision these models describe.  Every migration that changes the schema moves it;
# a test checks that it is alembic's head, so a process can check its database without loading
# alembic (about 11 MiB and 100 ms for every producer and consumer).
SCHEMA_REVISION = "0005"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_ref() -> str:
    """A fresh account identity: 64 random bits, never a bare number.

    Accounts from before refs existed carry their old table id ("1", "2" …) as ref; a new ref
    always holds a letter, so it can never be taken for one of those.
    """
    while True:
        ref = secrets.token_hex(8)
        if not ref.isdigit():
            return ref


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite has no time zones, PostgreSQL does."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SyncAccount(Base):
    """One direction of sync between one GMI account and one Billomat account."""

    __tablename__ = "sync_accounts"
    __table_args__ = (
        CheckConstraint("direction IN ('export', 'import')", name="direction"),
        # A removed account keeps its row (and its ledger); its name is free for a new one.
        Index(
            "ix_sync_accounts_live_name",
            "name",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The identity markers and everything that outlives the account use: never reused, unlike
    # ``id`` (see new_ref).  Accounts older than refs got their id.
    ref: Mapped[str] = mapped_column(String(32), unique=True, default=new_ref)
    name: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(10))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    gmi_api_key_enc: Mapped[str] = mapped_column(Text)
    billomat_id: Mapped[str] = mapped_column(String(63))
    billomat_api_key_enc: Mapped[str] = mapped_column(Text)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    # export settings
    document_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    archive_after_transfer: Mapped[bool] = mapped_column(Boolean, default=False)
    date_from: Mapped[date | None] = mapped_column(Date)
    date_to: Mapped[date | None] = mapped_column(Date)
    # import settings
    default_document_type: Mapped[str | None] = mapped_column(String(40))
    default_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    default_company: Mapped[str | None] = mapped_column(String(200))
    default_company_uid: Mapped[int | None] = mapped_column(Integer)
    document_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    webhook_username: Mapped[str | None] = mapped_column(String(100))
    webhook_password_enc: Mapped[str | None] = mapped_column(Text)
    # set when a configuration error (bad key, cancelled account) paused the account
    attention_reason: Mapped[str | None] = mapped_column(Text)
    # What the first poll found already in the target (an earlier life of this account, a
    # restored database): {"at", "found", "listed", "calls"}.  NULL: not looked yet.
    target_scan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Set by `accounts remove`: the account is gone for every command, its ledger stays.
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # the name of the GMI key's quota in api_quotas (a fingerprint, never the key); kept current
    # by the producer, so that dispatch and status see which accounts share a GMI quota
    gmi_scope: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    poll_state: Mapped[PollState | None] = relationship(
        back_populates="account", cascade="all, delete-orphan", uselist=False
    )

    @classmethod
    def live(cls) -> ColumnElement[bool]:
        """Accounts that have not been removed: every lookup by name wants only these."""
        return cls.removed_at.is_(None)


class Document(Base):
    """The ledger: one row per (sync account, source document)."""

    __tablename__ = "documents"
    __table_args__ = (
        # "This document is already known" is a database fact, not a hope.
        UniqueConstraint("account_id", "source_kind", "source_id"),
        Index("ix_documents_account_state", "account_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("sync_accounts.id", ondelete="CASCADE"), index=True
    )
    source_system: Mapped[str] = mapped_column(String(10))  # gmi | billomat
    source_kind: Mapped[str] = mapped_column(String(30))  # documents | invoices | credit-notes ...
    source_id: Mapped[str] = mapped_column(String(64))
    document_type: Mapped[str | None] = mapped_column(String(40))
    document_number: Mapped[str | None] = mapped_column(String(200))
    document_date: Mapped[date | None] = mapped_column(Date)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # source attributes the consumer needs (amounts, currency, status), as the poll saw them
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), index=True)
    target_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_class: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(32))
    # set once the broker confirmed the message; NULL means "publish (again)"
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempt_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    account: Mapped[SyncAccount] = relationship()
    events: Mapped[list[DocumentEvent]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="DocumentEvent.id"
    )


class DocumentEvent(Base):
    """Every state change of a ledger row, with time and reason."""

    __tablename__ = "document_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(32))
    # the console user who caused the change (a replay from the web console); NULL: the pipeline
    actor: Mapped[str | None] = mapped_column(String(100))

    document: Mapped[Document] = relationship(back_populates="events")


class PollState(Base):
    """Per account: cursors and the last poll's outcome; the scheduler's due time."""

    __tablename__ = "poll_state"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("sync_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_result: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # a producer that claimed the poll holds it until then (several producers may run)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    polls: Mapped[int] = mapped_column(Integer, default=0)

    account: Mapped[SyncAccount] = relationship(back_populates="poll_state")


class ApiQuota(Base):
    """One quota window, shared by every process of a deployment (see ``shared.quota_plan``).

    Billomat's windows are what its answers announced; GMI's are counted by us.
    """

    __tablename__ = "api_quotas"

    api: Mapped[str] = mapped_column(String(10), primary_key=True)  # billomat | gmi | gmi.min …
    scope: Mapped[str] = mapped_column(String(100), primary_key=True)  # billomat id / key hash
    remaining: Mapped[int | None] = mapped_column(Integer)
    reset_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # calls admitted in this window whose answer has not come yet (Billomat)
    in_flight: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the window's size and length: configured (GMI) or learned from the answers (Billomat)
    window_limit: Mapped[int | None] = mapped_column(Integer)
    window_seconds: Mapped[float | None] = mapped_column(Float)
    # calls of the window document work leaves for the polls due before it resets (the producer
    # plans them)
    keep: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    blocked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class AccountEvent(Base):
    """The history of a sync account's settings: who changed what, when (keys never shown).

    No foreign key on purpose: the history of a removed account outlives it.
    """

    __tablename__ = "account_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(Integer, index=True)
    account_name: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))  # added | updated | paused | resumed | removed
    details: Mapped[str] = mapped_column(Text, default="")


class WebUser(Base):
    """A person who may log in to the web console; the password only as an argon2 hash."""

    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebSession(Base):
    """A logged-in browser: the cookie holds a random token, the database only its SHA-256.

    Server-side, so that logging out, removing the user or a stolen database backup ends or
    reveals nothing usable.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)

    user: Mapped[WebUser] = relationship()


class LoginThrottle(Base):
    """Failed logins per user name and per client address, shared by every web process."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # user:NAME | addr:IP
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AccountFinding(Base):
    """What belegsync learnt about an account's APIs where their documentation is silent.

    Written by ``belegsync doctor`` and by the running service when an answer shows it (a
    refused sort, an upload found without its marker); read by the clients to adapt.
    """

    __tablename__ = "account_findings"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("sync_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    answer: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20))  # doctor | runtime
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DatabaseError(BelegsyncError):
    """The database cannot be reached or refused an operation."""


class Database:
    """Engine plus session factory; one per process, built by the composition root."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            # Several processes share the file: give each write a chance to wait its turn.
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
            kwargs["poolclass"] = NullPool
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        dberrors.install(self.engine)
        if self.is_sqlite:
            _make_sqlite_transactional(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commits on success, rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def check_migrated(self) -> None:
        """Raise NotMigratedError unless the schema is at the revision these models describe.

        A SQLite file that does not exist is not created: connecting would leave an empty
        database behind, a side effect of a command that was only asked to read.
        """
        self.check_exists()
        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    raise NotMigratedError()
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError as e:
            raise connect_error(e) from e
        if current != SCHEMA_REVISION:
            raise NotMigratedError(
                f"schema at {current or 'nothing'}, code expects {SCHEMA_REVISION}"
            )

    def check_exists(self) -> None:
        path = sqlite_path(self.url)
        if path is not None and not path.exists():
            raise NotMigratedError(
                message=f"no database at {path}: create it with `belegsync db upgrade` "
                "(or point BELEGSYNC_DATABASE_URL at an existing one)"
            )

    def dispose(self) -> None:
        self.engine.dispose()


def _short(error: Exception) -> str:
    return str(getattr(error, "orig", error)).splitlines()[0]


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


# What a server says when the URL's credentials or database name are wrong: configuration to
# fix, not an outage to wait out.
_LOGIN_REFUSED = (
    "password authentication failed",
    "no password supplied",
    "does not exist",  # role "x" / database "x"
    "pg_hba.conf",
    "unable to open database file",
)


def connect_error(error: Exception) -> BelegsyncError:
    """A driver's connect failure as SetupError (wrong login) or DatabaseError (unreachable)."""
    detail = str(getattr(error, "orig", error))
    reason = detail.splitlines()[0]
    # libpq repeats the server's answer after "FATAL:"; that part names the problem.
    fatal = re.search(r"FATAL:\s*(.+)", detail)
    if fatal is not None:
        reason = fatal.group(1).strip()
    if any(marker in detail for marker in _LOGIN_REFUSED):
        return SetupError(
            f"BELEGSYNC_DATABASE_URL: the database refused the connection ({reason}); "
            "check user, password and database name"
        )
    return DatabaseError(f"cannot reach the database: {reason}")


def _make_sqlite_transactional(engine: Engine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE.

    pysqlite starts transactions lazily and upgrades read locks to write locks mid-transaction,
    which fails at once ("database is locked") when another process writes.  Taking the write
    lock at BEGIN makes concurrent writers queue up behind the busy timeout instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
