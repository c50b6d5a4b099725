"""What a database failure means for the message being handled: one table, like the API errors.

- a lost or unreachable database is *transient*: the same work succeeds once it is back, so a
  consumer gives the message back and waits for the database (it never holds the message);
- a value the database refuses (out of range, too long, NUL in text, a violated constraint) is
  *permanent* for that message: retrying cannot change the value, so the message is parked.

Drivers report refused values in two ways: PostgreSQL as DBAPI errors (``DataError``,
``IntegrityError``), pysqlite partly as bare Python errors (``OverflowError`` for an integer
beyond 64 bits, ``UnicodeEncodeError`` for a lone surrogate) raised before the statement runs.
``install`` translates the bare ones at the engine into ``DataRefusedError``, so nothing above
the adapter has to guess whether an ``OverflowError`` came from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import exc as sa

from shared.errors import BelegsyncError, ErrorClass


class DataRefusedError(BelegsyncError):
    """The driver could not hand a value to the database (it is out of its range or encoding)."""


@dataclass(frozen=True)
class DatabaseRule:
    error: type[BaseException]
    error_class: ErrorClass
    reason: str


# Most specific first: the first row whose class matches decides.
DATABASE_ERRORS: tuple[DatabaseRule, ...] = (
    DatabaseRule(sa.DisconnectionError, ErrorClass.TRANSIENT, "database connection lost"),
    DatabaseRule(sa.TimeoutError, ErrorClass.TRANSIENT, "no database connection free"),
    DatabaseRule(sa.OperationalError, ErrorClass.TRANSIENT, "database unavailable"),
    DatabaseRule(sa.InterfaceError, ErrorClass.TRANSIENT, "database connection broken"),
    DatabaseRule(sa.DataError, ErrorClass.PERMANENT, "the database refused a value"),
    DatabaseRule(sa.IntegrityError, ErrorClass.PERMANENT, "the database refused the change"),
    DatabaseRule(DataRefusedError, ErrorClass.PERMANENT, "the database cannot take a value"),
)


def classify(error: BaseException) -> DatabaseRule | None:
    """The rule for a database failure; ``None`` when ``error`` is no (known) database failure.

    A connection the pool has invalidated is transient whatever error revealed it.
    """
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return DATABASE_ERRORS[0]
    return next((rule for rule in DATABASE_ERRORS if isinstance(error, rule.error)), None)


def is_transient(error: BaseException) -> bool:
    rule = classify(error)
    return rule is not None and rule.error_class is ErrorClass.TRANSIENT


def describe(error: BaseException) -> str:
    """One line: the rule's reason and the driver's first line (never the SQL or parameters)."""
    rule = classify(error)
    driver = getattr(error, "orig", None) or error.__cause__ or error
    detail = (str(driver).splitlines() or [type(driver).__name__])[0][:200]
    return f"{rule.reason if rule else 'database error'}: {detail}"


# What pysqlite raises itself, before the database sees the statement, for a refused value.
_DRIVER_VALUE_ERRORS = (OverflowError, UnicodeError)


def install(engine: Engine) -> None:
    """Translate a driver's bare value errors into ``DataRefusedError`` at this engine."""

    @event.listens_for(engine, "handle_error")
    def _refused_values(context: Any) -> None:
        original = context.original_exception
        if isinstance(original, _DRIVER_VALUE_ERRORS):
            message = (str(original).splitlines() or [type(original).__name__])[0][:200]
            raise DataRefusedError(message) from original
