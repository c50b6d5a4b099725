"""The exception hierarchy: one root, split by what the caller should do about it.

Adapters (HTTP clients, database, broker) translate their drivers' errors into these with
``raise ... from e``; domain code and handlers only ever see these classes.  Messages never
contain an API key.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime


class ErrorClass(enum.StrEnum):
    """What a failure means for the document it happened to."""

    TRANSIENT = "transient"  # retry later through a delay queue
    RATE_LIMITED = "rate_limited"  # wait until the quota resets; not a failed attempt
    PERMANENT = "permanent"  # park at once with the API's reason
    CONFIGURATION = "configuration"  # pause the account and tell the operator


class BelegsyncError(Exception):
    """Root of every error belegsync raises on purpose."""


class UsageError(BelegsyncError):
    """Bad command-line usage or bad input: exit code 2, nothing changed.

    ``field`` names the input at fault when there is one: an account setting by the key
    ``AccountService.describe`` uses (``name``, ``interval``, ``date_from``, ``billomat_id`` …),
    so that a form can show the message next to that field.  The message itself still reads
    as one complete line for the command line.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidValue(UsageError, ValueError):
    """A value breaks an input rule.

    Also a ValueError, so that validators that speak ValueError (pydantic, argument parsers)
    accept it as it is.
    """


class SetupError(UsageError):
    """The process's own configuration is wrong: a setting, the broker's or the database's
    credentials, a missing database or key file.  Exit code 2 with one line; retrying cannot
    help, the operator has to change something first."""


class NotMigratedError(SetupError):
    """The database has no (or an outdated) schema, or does not exist: `belegsync db upgrade`."""

    def __init__(self, detail: str = "", *, message: str | None = None) -> None:
        suffix = f" ({detail})" if detail else ""
        super().__init__(
            message or f"the database is not migrated{suffix}: run `belegsync db upgrade` first"
        )


class SecretKeyError(BelegsyncError):
    """The Fernet key is missing, malformed or does not match the stored secrets."""


class BrokerUnavailableError(BelegsyncError):
    """RabbitMQ cannot be reached."""


class ApiError(BelegsyncError):
    """A remote API call failed; ``error_class`` tells the caller what to do.

    ``api`` is ``"gmi"`` or ``"billomat"``; ``status`` the HTTP status (``None`` when no
    answer arrived); ``code`` the API's own error code when it sent one.
    """

    error_class: ErrorClass = ErrorClass.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        api: str,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.api = api
        self.status = status
        self.code = code

    def __str__(self) -> str:
        where = f"{self.api}"
        if self.status is not None:
            where += f" HTTP {self.status}"
        if self.code is not None:
            where += f" code {self.code}"
        return f"{where}: {self.message}"


class TransientError(ApiError):
    """5xx, timeouts, dropped connections: the same call may succeed later.

    ``ambiguous`` is true when a write may have been performed although no answer arrived
    (timeout or connection dropped after the request was sent).
    """

    error_class = ErrorClass.TRANSIENT

    def __init__(
        self,
        message: str,
        *,
        api: str,
        status: int | None = None,
        code: int | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, api=api, status=status, code=code)
        self.ambiguous = ambiguous


class RateLimitedError(ApiError):
    """The quota is used up; ``reset_at`` (UTC) is when calls are allowed again."""

    error_class = ErrorClass.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        api: str,
        reset_at: datetime,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message, api=api, status=status, code=code)
        self.reset_at = reset_at

    def seconds_left(self, now: datetime | None = None) -> float:
        now = now or datetime.now(UTC)
        return max(0.0, (self.reset_at - now).total_seconds())


class PermanentError(ApiError):
    """The request itself is wrong for this document; retrying cannot help."""

    error_class = ErrorClass.PERMANENT


class NotFoundError(PermanentError):
    """The addressed object does not exist (Billomat 404, GMI 422 code 106/135/139)."""


class DuplicateDocumentError(PermanentError):
    """GMI 422 code 127: a document with identical content already exists in the account."""


class ConfigurationError(ApiError):
    """Bad API key, blocked key, missing permission, cancelled account."""

    error_class = ErrorClass.CONFIGURATION
