"""Logging setup for entrypoints: text or JSON lines, with secrets masked on the way out.

Library code only does ``logging.getLogger(__name__)``; ``configure_logging`` is called once by
an entrypoint. Values handed to ``register_secret`` (API keys, the Fernet key) and passwords in
URLs are masked in every message, argument, extra field and traceback that passes the handler.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
MASK = "***"
# Showing the last characters lets an operator tell keys apart; for short values those
# characters would be most of the secret, so they are masked whole.
_SHOW_TAIL_FROM = 12
_TAIL = 4
# Shorter values would match inside ordinary words and mangle every line.
_MIN_SECRET_CHARS = 4

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}

# Secrets that are never registered still look like secrets: the password part of a URL
# (broker and database URLs) and the value after a key/secret/password/token name.
_URL_PASSWORD = re.compile(r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s/]+)@")
_NAMED_SECRET = re.compile(
    r"(?P<keep>\b(?:x-billomatapikey|x-api-key|x-appsecret|api[_-]?key|app[_-]?secret"
    r"|secret[_-]?key|password|passwd|token)\b[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<secret>[^\s\"'&,;}]+)",
    re.IGNORECASE,
)


def mask(value: str) -> str:
    """``***`` followed by the last 4 characters (or ``***`` alone for a short value)."""
    if len(value) >= _SHOW_TAIL_FROM:
        return MASK + value[-_TAIL:]
    return MASK


class _SecretRegistry:
    """The configured secrets of this process, compiled into one pattern."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        value = value.strip()
        if len(value) < _MIN_SECRET_CHARS:
            return
        with self._lock:
            if value in self._secrets:
                return
            self._secrets.add(value)
            # Longest first, so a secret that contains another is masked as a whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(lambda m: mask(m.group(0)), text)
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('keep')}{mask(m.group('secret'))}@", text)
        return _NAMED_SECRET.sub(lambda m: m.group("keep") + mask(m.group("secret")), text)


_registry = _SecretRegistry()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in log output from now on."""
    _registry.add(value)


def clear_secrets() -> None:
    """Forget every registered secret (for tests that build several processes in one)."""
    _registry.clear()


def redact(text: str) -> str:
    """``text`` with registered secrets and secret-looking values masked."""
    return _registry.redact(text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Any other object would be rendered with str() later, unmasked: render it now.
    return redact(str(value))


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields a caller passed with ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments, extra fields and traceback.

    Attach it to a handler (not a logger): handler filters see records from every logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep both, masked
            message = f"{record.msg} {record.args!r}"
        # The rendered message replaces msg + args, so no unmasked argument survives.
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in extra_fields(record).items():
            setattr(record, key, _redact_value(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            # An extra field never overwrites the fixed keys.
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=lambda o: redact(str(o)), ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value …`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = extra_fields(record)
        if not fields:
            return line
        parts = [f"{k}={_text_value(v)}" for k, v in fields.items()]
        return f"{line} {' '.join(parts)}"


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class _BelegsyncHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler ``configure_logging`` installed, so a second call replaces it."""


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Send log records to stderr as text or JSON lines, secrets masked.

    stdout stays free for command output such as ``--json`` listings. Calling it again
    replaces the handler it installed before.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BelegsyncHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _BelegsyncHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)


# How loudly each outcome is logged: a parked document needs an operator, a retry may.
_OUTCOME_LEVELS = {
    "synced": logging.INFO,
    "duplicate_avoided": logging.INFO,
    "skipped": logging.INFO,
    "retried": logging.WARNING,
    "parked": logging.ERROR,
}


def log_outcome(
    logger: logging.Logger,
    *,
    account: str,
    direction: str,
    source_id: str | int | None,
    target_id: str | int | None,
    message_id: str,
    outcome: str,
    duration_s: float,
    error: BaseException | str | None = None,
) -> None:
    """Log the one line that tells what happened to one document message."""
    fields: dict[str, Any] = {
        "account": account,
        "direction": str(direction),
        "source_id": source_id,
        "target_id": target_id,
        "message_id": message_id,
        "outcome": str(outcome),
        "duration_s": round(duration_s, 3),
    }
    fmt = "%s document %s -> %s: %s in %.2fs (account %s)"
    args: list[Any] = [direction, source_id, target_id or "-", outcome, duration_s, account]
    if error is not None:
        fields["error"] = str(error)
        error_class = getattr(error, "error_class", None)
        if error_class is not None:
            fields["error_class"] = str(error_class)
        fmt += ": %s"
        args.append(error)
    level = _OUTCOME_LEVELS.get(str(outcome), logging.WARNING)
    # stacklevel=2: the record names the caller's line, not this helper.
    logger.log(level, fmt, *args, extra=fields, stacklevel=2)
