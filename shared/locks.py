"""Per-document locks held by a live consumer process while it works on a document.

The ledger records that an upload is in flight; the lock tells whether the consumer that
recorded it is still alive.  Both kinds below are released by the operating system or the
database the moment the holding process dies, so a redelivered message is picked up at once
instead of waiting for a timeout:

- PostgreSQL: session-level advisory locks on a dedicated connection.
- SQLite: POSIX record locks on a file beside the database (all consumers of one SQLite
  database necessarily run on one machine).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from shared.db import Database

log = logging.getLogger(__name__)

# First key of the two-integer advisory lock: "belegsync document" (arbitrary, fixed).
_ADVISORY_NAMESPACE = 0x6265


class DocumentLocks(Protocol):
    def try_acquire(self, document_id: int) -> bool: ...
    def release(self, document_id: int) -> None: ...
    def close(self) -> None: ...


class PostgresAdvisoryLocks:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def try_acquire(self, document_id: int) -> bool:
        try:
            return bool(
                self._connection()
                .execute(
                    text("SELECT pg_try_advisory_lock(:ns, :id)"),
                    {"ns": _ADVISORY_NAMESPACE, "id": document_id},
                )
                .scalar()
            )
        except SQLAlchemyError:
            # The lock connection broke (database restart): locks held on it are gone anyway.
            self._conn = None
            raise

    def release(self, document_id: int) -> None:
        try:
            self._connection().execute(
                text("SELECT pg_advisory_unlock(:ns, :id)"),
                {"ns": _ADVISORY_NAMESPACE, "id": document_id},
            )
        except SQLAlchemyError:
            self._conn = None
            log.warning("could not release the lock of document %s", document_id, exc_info=True)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except SQLAlchemyError:
                log.debug("closing the lock connection failed", exc_info=True)
            self._conn = None


class FileRecordLocks:
    """One byte per document id in a lock file; POSIX locks belong to the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._held: set[int] = set()
        self._mutex = threading.Lock()

    def try_acquire(self, document_id: int) -> bool:
        with self._mutex:
            # POSIX locks never conflict within one process, so track our own holds too.
            if document_id in self._held:
                return False
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, document_id)
            except OSError:
                return False
            self._held.add(document_id)
            return True

    def release(self, document_id: int) -> None:
        with self._mutex:
            if document_id in self._held:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, document_id)
                self._held.discard(document_id)

    def close(self) -> None:
        os.close(self._fd)


class InProcessLocks:
    """For an in-memory SQLite database, which only one process can see anyway."""

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._mutex = threading.Lock()

    def try_acquire(self, document_id: int) -> bool:
        with self._mutex:
            if document_id in self._held:
                return False
            self._held.add(document_id)
            return True

    def release(self, document_id: int) -> None:
        with self._mutex:
            self._held.discard(document_id)

    def close(self) -> None:
        self._held.clear()


def locks_for(db: Database) -> DocumentLocks:
    if not db.is_sqlite:
        return PostgresAdvisoryLocks(db)
    database = make_url(db.url).database
    if not database or database == ":memory:":
        return InProcessLocks()
    return FileRecordLocks(Path(database).with_name(Path(database).name + ".locks"))
