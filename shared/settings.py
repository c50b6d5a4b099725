"""One typed settings object per process, built from ``BELEGSYNC_*`` environment variables.

Tests construct ``Settings(...)`` directly instead of patching the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain import parse_duration

DEFAULT_RETRY_DELAYS = "10s,1m,10m,1h,6h"


class Settings(BaseSettings):
    """Everything a belegsync process needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="BELEGSYNC_", frozen=True, extra="ignore")

    database_url: str = "sqlite:///belegsync.db"
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
    max_attempts: int | None = Field(default=None, ge=1)
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Seconds to wait for the broker to confirm a publish.
    publish_timeout: float = Field(default=15.0, gt=0)
    # Messages a consumer holds at once; small so that work spreads over consumers.
    prefetch: int = Field(default=1, ge=1, le=100)
    # Calls kept back per Billomat account so a poll never takes the last of the quota.
    billomat_quota_reserve: int = Field(default=10, ge=0)
    # How far back (days of document date) an import poll looks behind its cursor.
    import_overlap_days: int = Field(default=31, ge=0)

    # The web console.  Signs the login form's CSRF token; unset, it is derived from the
    # Fernet key with HKDF-SHA256 (app.web.security), so one secret is enough to run.
    web_session_secret: SecretStr | None = None
    # Set the session cookie's Secure flag: on whenever the console is reached over HTTPS.
    web_secure_cookies: bool = False
    # A session ends after this long without a request (and at logout).
    web_session_idle_minutes: int = Field(default=720, ge=1)
    # Addresses whose X-Forwarded-For is believed (a TLS proxy in front); comma-separated.
    web_trusted_proxies: str = "127.0.0.1"

    @field_validator("queue_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("BELEGSYNC_QUEUE_PREFIX must be a non-empty word without spaces")
        return value

    @field_validator("billomat_base_url")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if "{billomat_id}" not in value:
            raise ValueError("BELEGSYNC_BILLOMAT_BASE_URL must contain {billomat_id}")
        return value.rstrip("/")

    @field_validator("gmi_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("retry_delays")
    @classmethod
    def _check_delays(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            raise ValueError("BELEGSYNC_RETRY_DELAYS needs at least one delay such as 10s")
        for part in parts:
            parse_duration(part, minimum=1)
        return ",".join(parts)

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value not in {"text", "json"}:
            raise ValueError("BELEGSYNC_LOG_FORMAT must be text or json")
        return value

    @property
    def retry_delay_seconds(self) -> tuple[int, ...]:
        return tuple(parse_duration(p, minimum=1) for p in self.retry_delays.split(","))

    @property
    def attempts_allowed(self) -> int:
        return self.max_attempts or len(self.retry_delay_seconds) + 1

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
