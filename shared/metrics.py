"""Prometheus metrics of one belegsync process, kept in an explicit registry.

The composition root builds one ``Metrics`` per process and passes it down; pipeline code calls
the ``observe_*`` helpers and never touches label plumbing. Labels are a few fixed,
low-cardinality values: never a document id, never an API key.
"""

from __future__ import annotations

import importlib.metadata
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from shared.http import ApiHooks

DIRECTIONS: tuple[str, ...] = ("export", "import")
OUTCOMES: tuple[str, ...] = ("synced", "duplicate_avoided", "retried", "parked", "skipped")
ERROR_CLASSES: tuple[str, ...] = (
    "transient",
    "rate_limited",
    "permanent",
    "configuration",
    "malformed",
)
POLL_RESULTS: tuple[str, ...] = ("ok", "error", "rate_limited", "skipped_quota")
APIS: tuple[str, ...] = ("gmi", "billomat")
STATUS_CLASSES: tuple[str, ...] = ("2xx", "3xx", "4xx", "5xx", "error")
QUEUE_ROLES: tuple[str, ...] = ("work", "retry", "parked")
PROCESS_ROLES: tuple[str, ...] = ("producer", "consumer", "webhooks", "web")

# Handling one document moves MBs of base64 through two APIs: seconds to minutes, not ms.
PROCESSING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Detection → landing spans one poll interval at best and a day of retry tiers at worst.
SYNC_LATENCY_BUCKETS = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    43200.0,
    86400.0,
)
POLL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
API_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# An API name is a short word; anything else is collapsed so a caller's mistake cannot
# create unbounded series.
_API_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Path segments that look like ids (numbers, UUIDs, long hex) are replaced by "{id}": the
# endpoint label is meant to be a template, and a concrete document id must never leak into it.
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{12,}|(?=[^/]*\d)[A-Za-z0-9_-]{16,})$"
)
_MAX_ENDPOINT_CHARS = 80

_BILLOMAT_KINDS = (
    "invoices",
    "credit-notes",
    "offers",
    "confirmations",
    "delivery-notes",
    "reminders",
    "letters",
    "incomings",
)
# Every endpoint template the product calls, so that each (api, endpoint, status class) series
# exists at 0 from the start: a series born at 1 hides its first call from rate().
KNOWN_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "gmi": (
        "GET /documents",
        "GET /documents/{id}",
        "POST /documents",
        "PUT /documents/{id}",
        "POST /documents/exists",
        "GET /companies",
        "POST /companies",
        "GET /countries",
    ),
    "billomat": (
        "GET /inbox-documents",
        "GET /inbox-documents/{id}",
        "POST /inbox-documents",
        *(f"GET /{kind}" for kind in _BILLOMAT_KINDS),
        *(f"GET /{kind}/{{id}}" for kind in _BILLOMAT_KINDS),
        *(f"GET /{kind}/{{id}}/pdf" for kind in _BILLOMAT_KINDS),
    ),
}


class QuotaLike(Protocol):
    """What ``on_quota`` reads from ``shared.http.Quota``."""

    @property
    def remaining(self) -> int: ...

    @property
    def reset_at(self) -> datetime: ...


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx`` for an HTTP status, ``error`` when no (sensible) answer arrived."""
    if status is None or not 200 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def normalise_endpoint(endpoint: str) -> str:
    """Reduce an endpoint to a template: no query string, no id-like path segments."""
    method, _, path = endpoint.strip().partition(" ")
    if not path:  # no method given: the whole string is the path
        method, path = "", method
    path = path.split("?", 1)[0].split("#", 1)[0]
    segments = ["{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/")]
    template = "/".join(segments)
    if method:
        template = f"{method.upper()} {template}"
    return template[:_MAX_ENDPOINT_CHARS]


def queue_role(queue: str) -> str:
    """The role of a queue from its name without the prefix: work, retry or parked."""
    parts = queue.split(".")
    if parts[-1] == "parked":
        return "parked"
    if "retry" in parts:
        return "retry"
    return "work"


@dataclass(frozen=True)
class QueueDepth:
    """Messages waiting in a queue and consumers attached to it, as the broker reports."""

    messages: int
    consumers: int


def _check(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    # A label value outside its fixed set is a programming error; failing loudly in tests
    # beats a dashboard that silently splits into unexpected series.
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; expected one of {', '.join(allowed)}")
    return str(value)


def _package_version() -> str:
    try:
        return importlib.metadata.version("belegsync")
    except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
        return "0"


class Metrics:
    """Every metric one belegsync process exposes, registered in ``self.registry``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        role: str,
        version: str | None = None,
    ) -> None:
        _check("role", role, PROCESS_ROLES)
        # Never the library's global REGISTRY: two Metrics in one process (tests, the demo
        # command) must not collide, and nothing may be registered at import time.
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.role = str(role)
        r = self.registry

        # prometheus_client appends "_total" to counter names itself.
        self.documents_processed = Counter(
            "belegsync_documents_processed",
            "Documents whose handling ended, by direction and outcome.",
            ["direction", "outcome"],
            registry=r,
        )
        self.processing_seconds = Histogram(
            "belegsync_processing_seconds",
            "Time a consumer spent handling one document message.",
            ["direction"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.documents_in_progress = Gauge(
            "belegsync_documents_in_progress",
            "Document messages being handled right now.",
            ["direction"],
            registry=r,
        )
        self.sync_latency_seconds = Histogram(
            "belegsync_sync_latency_seconds",
            "Time from a document's detection to its landing in the target system.",
            ["direction"],
            buckets=SYNC_LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "belegsync_retries",
            "Documents sent to a retry tier, by error class.",
            ["direction", "error_class"],
            registry=r,
        )
        self.parked = Counter(
            "belegsync_parked",
            "Documents parked for an operator, by error class.",
            ["direction", "error_class"],
            registry=r,
        )
        self.polls = Counter(
            "belegsync_polls",
            "Polls of a sync account, by result.",
            ["direction", "result"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            "belegsync_poll_seconds",
            "Duration of one poll of one sync account.",
            ["direction"],
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.documents_detected = Counter(
            "belegsync_documents_detected",
            "New or changed documents found by polls and webhooks.",
            ["direction"],
            registry=r,
        )
        self.last_successful_poll = Gauge(
            "belegsync_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll of a sync account.",
            ["account"],
            registry=r,
        )
        self.poll_interval = Gauge(
            "belegsync_poll_interval_seconds",
            "Configured poll interval of a sync account (alerts compare poll age with it).",
            ["account"],
            registry=r,
        )
        self.api_requests = Counter(
            "belegsync_api_requests",
            "Calls to the GMI and Billomat APIs, by endpoint template and status class.",
            ["api", "endpoint", "status_class"],
            registry=r,
        )
        self.api_request_seconds = Histogram(
            "belegsync_api_request_seconds",
            "Duration of one API call.",
            ["api"],
            buckets=API_BUCKETS,
            registry=r,
        )
        self.api_quota_remaining = Gauge(
            "belegsync_api_quota_remaining",
            "Calls left in the API's current quota window for an account.",
            ["api", "account"],
            registry=r,
        )
        self.backlog_documents = Gauge(
            "belegsync_backlog_documents",
            "Documents of a sync account not landed yet (pending, held for quota, in hand, "
            "retrying), as the ledger says; parked ones are not counted.",
            ["account"],
            registry=r,
        )
        self.backlog_eta_seconds = Gauge(
            "belegsync_backlog_eta_seconds",
            "Seconds until an account's backlog is drained at its current quota (as `status` "
            "says); absent while unknown (a paused account, a window of unknown size).",
            ["account"],
            registry=r,
        )
        self.rate_limited = Counter(
            "belegsync_rate_limited",
            "Calls the API refused because a quota was used up (HTTP 429 or GMI code 429).",
            ["api"],
            registry=r,
        )
        self.queue_messages = Gauge(
            "belegsync_queue_messages",
            "Messages waiting in a queue (name without prefix), as the broker reports.",
            ["queue", "role"],
            registry=r,
        )
        self.queue_consumers = Gauge(
            "belegsync_queue_consumers",
            "Consumers attached to a queue (name without prefix), as the broker reports.",
            ["queue", "role"],
            registry=r,
        )
        self.info = Gauge(
            "belegsync_info",
            "Always 1; labels tell the process role and the belegsync version.",
            ["role", "version"],
            registry=r,
        )
        self.info.labels(role=self.role, version=version or _package_version()).set(1)
        self._preinitialise()

    def _preinitialise(self) -> None:
        # Series that exist from the start read 0 instead of "no data", and rate() sees the
        # first increment. Accounts and queues are not known up front: their
        # series appear when first observed (a queue depth of 0 reported by a process that
        # never asked the broker would be a lie).
        for direction in DIRECTIONS:
            for outcome in OUTCOMES:
                self.documents_processed.labels(direction, outcome)
            for error_class in ERROR_CLASSES:
                self.retries.labels(direction, error_class)
                self.parked.labels(direction, error_class)
            for result in POLL_RESULTS:
                self.polls.labels(direction, result)
            self.processing_seconds.labels(direction)
            self.documents_in_progress.labels(direction)
            self.sync_latency_seconds.labels(direction)
            self.poll_seconds.labels(direction)
            self.documents_detected.labels(direction)
        for api in APIS:
            self.api_request_seconds.labels(api)
            self.rate_limited.labels(api)
            for endpoint in KNOWN_ENDPOINTS[api]:
                for status in STATUS_CLASSES:
                    if status != "3xx":  # redirects are switched off in the clients
                        self.api_requests.labels(api, normalise_endpoint(endpoint), status)

    # -- consumers ---------------------------------------------------------------------------

    @contextmanager
    def in_progress(self, direction: str) -> Iterator[None]:
        """Count a document message as being handled for the duration of the block."""
        gauge = self.documents_in_progress.labels(_check("direction", direction, DIRECTIONS))
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def observe_processed(
        self,
        direction: str,
        outcome: str,
        seconds: float,
        *,
        error_class: str | None = None,
        sync_latency_s: float | None = None,
    ) -> None:
        """Record how handling one document message ended.

        ``retried`` and ``parked`` need the ``error_class`` and also count in
        ``belegsync_retries_total`` / ``belegsync_parked_total``, so the two never disagree.
        ``sync_latency_s`` (detection → landing) is recorded for a document that landed.
        """
        direction = _check("direction", direction, DIRECTIONS)
        outcome = _check("outcome", outcome, OUTCOMES)
        if outcome in ("retried", "parked"):
            if error_class is None:
                raise ValueError(f"outcome {outcome!r} needs an error_class")
            error_class = _check("error_class", error_class, ERROR_CLASSES)
            counter = self.retries if outcome == "retried" else self.parked
            counter.labels(direction, error_class).inc()
        self.documents_processed.labels(direction, outcome).inc()
        self.processing_seconds.labels(direction).observe(max(0.0, seconds))
        if sync_latency_s is not None:
            self.sync_latency_seconds.labels(direction).observe(max(0.0, sync_latency_s))

    def observe_parked(self, direction: str, error_class: str) -> None:
        """Count a document parked outside message handling (e.g. an undecodable message)."""
        self.parked.labels(
            _check("direction", direction, DIRECTIONS),
            _check("error_class", error_class, ERROR_CLASSES),
        ).inc()

    # -- producers ---------------------------------------------------------------------------

    def observe_poll(
        self,
        direction: str,
        result: str,
        seconds: float,
        account: str,
        detected: int = 0,
        *,
        now: float | None = None,
        interval_s: float | None = None,
    ) -> None:
        """Record one poll of one account; an ``ok`` poll stamps the account's last success."""
        if interval_s is not None:
            self.poll_interval.labels(account).set(interval_s)
        direction = _check("direction", direction, DIRECTIONS)
        result = _check("result", result, POLL_RESULTS)
        self.polls.labels(direction, result).inc()
        self.poll_seconds.labels(direction).observe(max(0.0, seconds))
        if detected > 0:
            self.documents_detected.labels(direction).inc(detected)
        if result == "ok":
            self.last_successful_poll.labels(account).set(time.time() if now is None else now)

    def observe_detected(self, direction: str, count: int = 1) -> None:
        """Count documents found outside a poll (webhooks)."""
        if count > 0:
            self.documents_detected.labels(_check("direction", direction, DIRECTIONS)).inc(count)

    def set_backlog(self, account: str, documents: int, eta_seconds: float | None) -> None:
        """Record an account's backlog; an unknown ETA removes its series rather than lying."""
        self.backlog_documents.labels(account).set(documents)
        if eta_seconds is None:
            with suppress(KeyError):
                self.backlog_eta_seconds.remove(account)
        else:
            self.backlog_eta_seconds.labels(account).set(eta_seconds)

    def forget_account(self, account: str) -> None:
        """Drop an account's series after it was removed, so no alert fires for it forever."""
        series: list[tuple[Gauge, tuple[str, ...]]] = [
            (self.last_successful_poll, (account,)),
            (self.poll_interval, (account,)),
            (self.backlog_documents, (account,)),
            (self.backlog_eta_seconds, (account,)),
        ]
        series += [(self.api_quota_remaining, (api, account)) for api in APIS]
        for gauge, labels in series:
            # remove() raises KeyError for a series never observed: nothing to forget then.
            with suppress(KeyError):
                gauge.remove(*labels)

    # -- broker --------------------------------------------------------------------------------

    def set_queue_depth(self, queue: str, messages: int, consumers: int) -> None:
        """Record one queue's depth; ``queue`` is its name without the prefix."""
        role = queue_role(queue)
        self.queue_messages.labels(queue, role).set(messages)
        self.queue_consumers.labels(queue, role).set(consumers)

    def set_queue_depths(self, depths: Mapping[str, QueueDepth], *, prefix: str = "") -> None:
        """Record the depths of several queues; a leading ``prefix`` + "." is stripped."""
        strip = f"{prefix}." if prefix else ""
        for name, depth in depths.items():
            queue = name[len(strip) :] if strip and name.startswith(strip) else name
            self.set_queue_depth(queue, depth.messages, depth.consumers)

    # -- API clients ---------------------------------------------------------------------------

    def api_hooks(self, account: str) -> ApiHooks:
        """Hooks for the HTTP clients of one sync account (``shared.http.ApiHooks``)."""
        return AccountApiHooks(self, account)


class AccountApiHooks:
    """``shared.http.ApiHooks`` recording into ``Metrics`` for one account.

    Hooks run inside every API call, so they normalise odd values instead of raising.
    """

    def __init__(self, metrics: Metrics, account: str) -> None:
        self._metrics = metrics
        self._account = account

    @staticmethod
    def _api(api: str) -> str:
        return api if _API_NAME.match(api) else "other"

    def on_response(self, api: str, endpoint: str, status: int | None, seconds: float) -> None:
        api = self._api(api)
        m = self._metrics
        m.api_requests.labels(api, normalise_endpoint(endpoint), status_class(status)).inc()
        m.api_request_seconds.labels(api).observe(max(0.0, seconds))

    def on_quota(self, api: str, quota: QuotaLike) -> None:
        self._metrics.api_quota_remaining.labels(self._api(api), self._account).set(quota.remaining)

    def on_rate_limited(self, api: str) -> None:
        self._metrics.rate_limited.labels(self._api(api)).inc()
