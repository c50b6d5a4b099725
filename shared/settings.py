"""One typed settings object per process, built from ``BELEGSYNC_*`` environment variables.

Every variable is checked when the settings load: a wrong one ends the command with exit code 2
and one line naming the variable and what is expected (``SetupError``), before anything is
connected, created or written.  Tests construct ``Settings(...)`` directly instead of patching
the environment.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain import parse_duration
from shared.errors import SetupError

DEFAULT_RETRY_DELAYS = "10s,1m,10m,1h,6h"
MAX_RETRY_DELAY = 7 * 86400  # RabbitMQ's per-queue TTL is far larger; a week is plenty
MAX_RETRY_TIERS = 20
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The settings that make up belegsync's own view of the quotas (see quota_environment()).
QUOTA_SETTINGS = (
    "gmi_calls_per_minute",
    "gmi_calls_per_day",
    "gmi_uploads_per_hour",
    "gmi_minute_seconds",
    "gmi_day_seconds",
    "gmi_hour_seconds",
    "billomat_window_seconds",
    "billomat_calls_per_window",
    "billomat_quota_reserve",
)

# What each variable must look like, for the errors pydantic itself finds (types, ranges).
EXPECTED: dict[str, str] = {
    "database_url": "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST[:PORT]/DATABASE",
    "broker_url": "amqp://USER:PASSWORD@HOST[:PORT]/[VHOST] (amqps:// for TLS)",
    "queue_prefix": "a word of letters, digits, '.', '_' or '-' (at most 64 characters)",
    "secret_key": "a Fernet key (44 characters; make one with `belegsync secret-key`)",
    "secret_key_file": "the path of a file (created with mode 0600 if missing)",
    "gmi_base_url": "an http(s) URL such as https://api.getmyinvoices.com/accounts/v3",
    "billomat_base_url": "an http(s) URL with {billomat_id}, e.g. https://{billomat_id}.billomat.net/api",
    "billomat_app_id": "the ID of a registered Billomat app (one word)",
    "billomat_app_secret": "the secret of a registered Billomat app (one word)",
    "retry_delays": "durations separated by commas, e.g. 10s,1m,10m,1h,6h",
    "max_attempts": "a whole number from 1 to 1000",
    "log_format": "text or json",
    "log_level": "one of " + ", ".join(LOG_LEVELS),
    "metrics_port": "a port number from 0 (off) to 65535",
    "publish_timeout": "a number of seconds above 0 and at most 3600",
    "quorum_replicas": "a whole number of replicas per quorum queue from 1 to 99 (e.g. 3)",
    "prefetch": "a whole number from 1 to 100",
    "billomat_quota_reserve": "a whole number from 0 to 1000",
    "import_overlap_days": "a whole number of days from 0 to 3650",
    "web_session_secret": "a secret of at least 16 characters without spaces",
    "web_secure_cookies": "true or false",
    "web_session_idle_minutes": "a whole number of minutes from 1 to 525600 (a year)",
    "web_trusted_proxies": "IP addresses or networks separated by commas, or *",
}
# Values never repeated in an error line: keys, and URLs that may carry a password.
NOT_SHOWN = frozenset(
    {"secret_key", "billomat_app_secret", "database_url", "broker_url", "web_session_secret"}
)

_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_WORD_RE = re.compile(r"^\S{1,200}$")


def variable(field: str) -> str:
    return "BELEGSYNC_" + field.upper()


def describe(error: ValidationError) -> str:
    """The first problem as one line: the variable, what is expected, and what was given."""
    first = error.errors()[0]
    loc = first.get("loc") or ()
    field = str(loc[0]) if loc else ""
    if not field:  # a rule across variables; its message names them
        return str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "value_error":
        expected = str(first["msg"]).removeprefix("Value error, ")
    else:
        expected = "expected " + EXPECTED.get(field, str(first["msg"]))
    line = f"{variable(field)}: {expected}"
    given = first.get("input")
    if field not in NOT_SHOWN and isinstance(given, str | int | float) and given != "":
        shown = str(given)
        line += f" (got {shown[:40]!r}{'…' if len(shown) > 40 else ''})"
    return line


def check_database_url(value: str) -> str:
    text = value.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme == "sqlite":
        if not text.lower().startswith("sqlite:///") or text in ("sqlite:///",):
            raise ValueError(
                "expected sqlite:///PATH (three slashes, then the file; four for an absolute path)"
            )
        path = text[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:":
            parent = Path(path).parent
            if not parent.is_dir():
                raise ValueError(f"the folder {str(parent)!r} of the SQLite file does not exist")
            if Path(path).is_dir():
                raise ValueError(f"{path!r} is a folder, not a SQLite file")
        return text
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+asyncpg"):
        raise ValueError(
            f"{scheme}:// is not supported: use postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
        )
    if scheme == "postgresql+psycopg":
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or port == -1 or not parts.path.strip("/"):
            raise ValueError(
                "expected postgresql+psycopg://USER:PASSWORD@HOST[:PORT]/DATABASE "
                "(host and database name are required)"
            )
        return text
    raise ValueError("expected " + EXPECTED["database_url"])


def check_broker_url(value: str) -> str:
    # Several nodes in kombu's failover syntax: URLs separated by ';'.
    nodes = [node.strip() for node in value.split(";")]
    for node in nodes:
        parts = urlsplit(node)
        if parts.scheme.lower() not in ("amqp", "amqps", "pyamqp"):
            shown = f"{parts.scheme}://" if parts.scheme else repr(node[:10])
            raise ValueError(f"{shown} is not a RabbitMQ URL: expected " + EXPECTED["broker_url"])
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or port == -1:
            raise ValueError("expected " + EXPECTED["broker_url"] + " (a host is required)")
    return ";".join(nodes)


def check_http_url(value: str, field: str) -> str:
    text = value.strip().rstrip("/")
    parts = urlsplit(text.replace("{billomat_id}", "x"))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("expected " + EXPECTED[field])
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("expected " + EXPECTED[field] + " (the port is not a number)") from None
    return text


def check_fernet_key(value: str) -> str:
    key = value.strip()
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(key) != 44 or len(raw) != 32:
        raise ValueError(
            "not a valid Fernet key: expected 44 characters of url-safe base64 "
            "(make one with `belegsync secret-key`)"
        )
    return key


class Settings(BaseSettings):
    """Everything a belegsync process needs to know about its surroundings."""

    # An empty variable counts as unset (compose files like `VAR=` for "use the default").
    model_config = SettingsConfigDict(
        env_prefix="BELEGSYNC_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    database_url: str = "sqlite:///belegsync.db"
    # One RabbitMQ node, or several in kombu's failover syntax: amqp://a//;amqp://b//
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    queue_prefix: str = "belegsync"
    secret_key: SecretStr | None = None
    secret_key_file: Path = Path("belegsync.key")
    gmi_base_url: str = "https://api.getmyinvoices.com/accounts/v3"
    billomat_base_url: str = "https://{billomat_id}.billomat.net/api"
    # A registered Billomat app raises the quota from 300 to 1,000 calls per 15 minutes.
    billomat_app_id: str | None = None
    billomat_app_secret: SecretStr | None = None
    # Delays of the retry tiers; one RabbitMQ queue per tier.
    retry_delays: str = DEFAULT_RETRY_DELAYS
    # Attempts before a transiently failing document is parked (default: one per tier + 1).
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Seconds to wait for the broker to confirm a publish.
    publish_timeout: float = Field(default=15.0, gt=0, le=3600)
    # Replicas of each quorum queue when it is created; unset: RabbitMQ's choice (every node
    # of the cluster, up to its limit).  An odd number up to the node count, e.g. 3 of 5.
    quorum_replicas: int | None = Field(default=None, ge=1, le=99)
    # Messages a consumer holds at once; small so that work spreads over consumers.
    prefetch: int = Field(default=1, ge=1, le=100)
    # The most Billomat calls per window that document work leaves for the import polls due
    # before the window resets (the reserve is what those polls need, up to this).
    billomat_quota_reserve: int = Field(default=10, ge=0, le=1000)
    # GMI's documented limits (getmyinvoices.md §3).  GMI announces nothing, so belegsync counts
    # its own calls per window; raise these only for an account GMI gave more.  The window
    # lengths exist for tests and benchmarks with compressed windows.
    gmi_calls_per_minute: int = Field(default=100, ge=1, le=10**9)
    gmi_calls_per_day: int = Field(default=2500, ge=1, le=10**9)
    gmi_uploads_per_hour: int = Field(default=100, ge=1, le=10**9)
    gmi_minute_seconds: float = Field(default=60.0, gt=0, le=86400 * 366)
    gmi_day_seconds: float = Field(default=86400.0, gt=0, le=86400 * 366)
    gmi_hour_seconds: float = Field(default=3600.0, gt=0, le=86400 * 366)
    # Billomat's clock-aligned quarter hours; only tests and benchmarks compress them.
    billomat_window_seconds: float = Field(default=900.0, gt=0, le=86400 * 366)
    # Calls per window assumed for a Billomat account before its first answer says (unset: 300,
    # or 1,000 with a registered app); the answers' figure takes over from then on.
    billomat_calls_per_window: int | None = Field(default=None, ge=1, le=10**9)
    # How far back (days of document date) an import poll looks behind its cursor.
    import_overlap_days: int = Field(default=31, ge=0, le=3650)
    # How often an import poll lists everything instead of from its cursor, so that a document
    # dated back further than the overlap is found; "off" never does.
    deep_sweep_interval: str = "1d"
    # How long a document waiting for approval goes without a direct look in GMI (approving
    # may not change what GMI's "updated since" filter reads); at most this many looks per poll.
    approval_recheck: str = "6h"
    approval_recheck_batch: int = Field(default=20, ge=0)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise SetupError(describe(e)) from None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        return check_broker_url(value)

    # The web console.  Signs the login form's CSRF token; unset, it is derived from the
    # Fernet key with HKDF-SHA256 (app.web.security), so one secret is enough to run.
    web_session_secret: SecretStr | None = None
    # Set the session cookie's Secure flag: on whenever the console is reached over HTTPS.
    web_secure_cookies: bool = False
    # A session ends after this long without a request (and at logout).
    web_session_idle_minutes: int = Field(default=720, ge=1, le=525600)
    # Addresses whose X-Forwarded-For is believed (a TLS proxy in front); comma-separated.
    web_trusted_proxies: str = "127.0.0.1"

    @field_validator("queue_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _PREFIX_RE.match(value):
            raise ValueError("expected " + EXPECTED["queue_prefix"])
        if value.lower().startswith("amq."):
            raise ValueError("names starting with 'amq.' are reserved by RabbitMQ")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        return SecretStr(check_fernet_key(value.get_secret_value()))

    @field_validator("secret_key_file")
    @classmethod
    def _check_key_file(cls, value: Path) -> Path:
        if value.is_dir() or not value.name:
            raise ValueError(f"{str(value)!r} is a folder: expected the path of a file")
        return value

    @field_validator("gmi_base_url")
    @classmethod
    def _check_gmi_url(cls, value: str) -> str:
        return check_http_url(value, "gmi_base_url")

    @field_validator("billomat_base_url")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if "{billomat_id}" not in value:
            raise ValueError(
                "must contain {billomat_id}: expected " + EXPECTED["billomat_base_url"]
            )
        if re.search(r"\{(?!billomat_id\})", value.replace("{billomat_id}", "")):
            raise ValueError("expected {billomat_id} as its only placeholder")
        return check_http_url(value, "billomat_base_url")

    @field_validator("billomat_app_id")
    @classmethod
    def _check_app_id(cls, value: str | None) -> str | None:
        if value is not None and not _WORD_RE.match(value):
            raise ValueError("expected " + EXPECTED["billomat_app_id"])
        return value

    @field_validator("billomat_app_secret")
    @classmethod
    def _check_app_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WORD_RE.match(value.get_secret_value()):
            raise ValueError("expected " + EXPECTED["billomat_app_secret"])
        return value

    @field_validator("retry_delays")
    @classmethod
    def _check_delays(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            raise ValueError("expected " + EXPECTED["retry_delays"])
        if len(parts) > MAX_RETRY_TIERS:
            raise ValueError(f"at most {MAX_RETRY_TIERS} delays (one queue each)")
        for part in parts:
            parse_duration(part, minimum=1, maximum=MAX_RETRY_DELAY)
        return ",".join(parts)

    @field_validator("deep_sweep_interval")
    @classmethod
    def _check_sweep(cls, value: str) -> str:
        if value.strip().lower() != "off":
            parse_duration(value)
        return value.strip().lower()

    @field_validator("approval_recheck")
    @classmethod
    def _check_recheck(cls, value: str) -> str:
        parse_duration(value)
        return value.strip()

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value.lower() not in {"text", "json"}:
            raise ValueError("expected " + EXPECTED["log_format"])
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError("expected " + EXPECTED["log_level"])
        return value.upper()

    @field_validator("web_session_secret")
    @classmethod
    def _check_session_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"\S{16,}", value.get_secret_value()):
            raise ValueError("expected " + EXPECTED["web_session_secret"])
        return value

    @field_validator("web_trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address: expected " + EXPECTED["web_trusted_proxies"]
                ) from None
        return ",".join(items)

    @model_validator(mode="after")
    def _app_id_and_secret_together(self) -> Settings:
        if (self.billomat_app_id is None) != (self.billomat_app_secret is None):
            raise ValueError(
                "BELEGSYNC_BILLOMAT_APP_ID and BELEGSYNC_BILLOMAT_APP_SECRET go together: "
                "set both (a registered Billomat app) or neither"
            )
        return self

    @property
    def retry_delay_seconds(self) -> tuple[int, ...]:
        return tuple(parse_duration(p, minimum=1) for p in self.retry_delays.split(","))

    @property
    def deep_sweep(self) -> timedelta | None:
        if self.deep_sweep_interval == "off":
            return None
        return timedelta(seconds=parse_duration(self.deep_sweep_interval))

    @property
    def approval_recheck_after(self) -> timedelta:
        return timedelta(seconds=parse_duration(self.approval_recheck))

    @property
    def attempts_allowed(self) -> int:
        return self.max_attempts or len(self.retry_delay_seconds) + 1

    def quota_environment(self) -> dict[str, str]:
        """The BELEGSYNC_* variables that give another process this one's view of the quotas
        (processes counting against one account's windows must agree on them)."""
        values = {name: getattr(self, name) for name in QUOTA_SETTINGS}
        return {f"BELEGSYNC_{k.upper()}": str(v) for k, v in values.items() if v is not None}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
