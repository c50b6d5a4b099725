"""HTTP plumbing shared by the GMI and Billomat clients.

Pooled sessions, the one error table that maps both APIs' answers onto ``shared.errors`` (and
the cheap second question that settles an answer which cannot tell on its own), and the
translation of ``requests`` failures at this boundary. Reading bodies and scalars lives in
``shared.readers``, header secrets in ``shared.auth``, API-specific parsing in
``shared.gmi_parsing`` and ``shared.billomat_parsing``.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote_plus, urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProxyError,
    SSLError,
)
from urllib3.util.retry import Retry

from shared.auth import Redactor, SecretHeaderAuth
from shared.errors import (
    ApiError,
    ConfigurationError,
    DuplicateDocumentError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from shared.readers import ResponseShapeError, short_text

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 120.0)  # connect, read: bodies are MBs of base64
DEFAULT_POOL_SIZE = 10
FALLBACK_RATE_LIMIT_WAIT = timedelta(seconds=60)

# Methods that cannot change anything on the server: a lost answer to them is never ambiguous.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _version() -> str:
    try:
        return importlib.metadata.version("belegsync")
    except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
        return "0"


USER_AGENT = f"belegsync/{_version()}"


# ---------------------------------------------------------------------------------------------
# Quota and hooks


@dataclass(frozen=True)
class Quota:
    """Calls left in the current window and when the next window starts (aware UTC)."""

    remaining: int
    reset_at: datetime


class ApiHooks(Protocol):
    """Observer of every API call; metrics implement it. Subclass ``NullHooks`` to pick some."""

    def on_response(self, api: str, endpoint: str, status: int | None, seconds: float) -> None:
        """A call ended; ``endpoint`` is a template like ``"GET /documents/{uid}"``."""

    def on_quota(self, api: str, quota: Quota) -> None:
        """The API reported how many calls are left."""

    def on_rate_limited(self, api: str) -> None:
        """The API refused a call because a quota is used up."""


class CallGate(Protocol):
    """Decides, before a call is sent, whether it may be made now (the shared quota book)."""

    def before_call(self, api: str, endpoint: str) -> None:
        """Raise ``RateLimitedError`` when the call must wait; otherwise count it."""


class NullHooks:
    """Hooks that do nothing."""

    def on_response(self, api: str, endpoint: str, status: int | None, seconds: float) -> None:
        return None

    def on_quota(self, api: str, quota: Quota) -> None:
        return None

    def on_rate_limited(self, api: str) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# The error table


@dataclass(frozen=True)
class ErrorRule:
    """One row: which answers of which API mean which exception.

    ``api`` is ``"gmi"``, ``"billomat"`` or ``"*"`` (any); ``code`` is the API's own error code
    or ``None`` (any code); ``detail`` a pattern the answer's text must contain (case does not
    matter); ``origin`` whether the answer came from the API itself (``"app"``) or from
    something in front of it (``"gateway"``: a firewall or proxy page without the API's
    headers). ``may_have_landed`` marks answers after which a write may still have been
    performed (a gateway gave up waiting, the server failed half-way), so that retrying a write
    blindly could duplicate it. ``confirm`` marks answers that cannot tell on their own what
    happened: the client asks a cheap second question (``CONFIRMATIONS``) before acting.
    """

    api: str
    status_from: int
    status_to: int
    code: int | None
    error: type[ApiError]
    reason: str
    may_have_landed: bool = False
    detail: re.Pattern[str] | None = None
    origin: str | None = None
    confirm: bool = False

    def matches(
        self, api: str, status: int, code: int | None, text: str = "", origin: str | None = None
    ) -> bool:
        return (
            self.api in ("*", api)
            and self.status_from <= status <= self.status_to
            and (self.code is None or self.code == code)
            and (self.detail is None or bool(self.detail.search(text)))
            and (self.origin is None or self.origin == origin)
        )

    def specificity(self) -> tuple[bool, bool, bool, bool, int]:
        # A row naming a code beats one that does not, then one naming a text, then one naming
        # the origin, a row naming the API beats "*", and a narrow status range beats a wide
        # one: the table reads like a list of exceptions.
        return (
            self.code is not None,
            self.detail is not None,
            self.origin is not None,
            self.api != "*",
            -(self.status_to - self.status_from),
        )


def _rule(
    api: str,
    status: int | tuple[int, int],
    code: int | None,
    error: type[ApiError],
    reason: str,
    *,
    may_have_landed: bool = False,
    detail: str | None = None,
    origin: str | None = None,
    confirm: bool = False,
) -> ErrorRule:
    lo, hi = (status, status) if isinstance(status, int) else status
    pattern = re.compile(detail, re.IGNORECASE) if detail else None
    return ErrorRule(api, lo, hi, code, error, reason, may_have_landed, pattern, origin, confirm)


ERROR_TABLE: tuple[ErrorRule, ...] = (
    # --- Billomat (billomat.md §1.5, §2): plain text or {"errors":{"error":...}} bodies.
    _rule("billomat", 400, None, PermanentError, "bad request"),
    _rule("billomat", 401, None, ConfigurationError, "API key rejected"),
    # 403 is not among Billomat's documented answers. From the API itself (it carries the rate
    # headers every answer of Billomat carries) it is confirmed with a cheap call; from
    # something in front of the API (a firewall, a proxy) it says nothing about the key.
    _rule("billomat", 403, None, ConfigurationError, "access forbidden", confirm=True),
    _rule(
        "billomat",
        403,
        None,
        TransientError,
        "forbidden by something in front of the API (a firewall or proxy page, no rate headers)",
        origin="gateway",
    ),
    _rule("billomat", 404, None, NotFoundError, "not found"),
    _rule("billomat", 422, None, PermanentError, "validation failed"),
    _rule("billomat", 429, None, RateLimitedError, "request quota used up"),
    _rule("billomat", (500, 599), None, TransientError, "server error", may_have_landed=True),
    _rule("billomat", 503, None, TransientError, "service unavailable"),
    # --- GMI (getmyinvoices.md §2): auth and call limits share the 403 family. The sub-code
    # decides; without one the text may; an answer with neither (the spec's example body is
    # {}) is confirmed with GET /apiStatus before anything is paused.
    _rule("gmi", 400, None, PermanentError, "invalid or missing parameters"),
    _rule("gmi", 403, None, ConfigurationError, "refused (403) without a reason", confirm=True),
    _rule("gmi", 403, 403, ConfigurationError, "API key does not exist"),
    _rule("gmi", 403, 407, ConfigurationError, "API key is blocked"),
    _rule("gmi", 403, 429, RateLimitedError, "API call limit reached"),
    _rule("gmi", 403, 430, ConfigurationError, "API key lacks the required permission"),
    _rule("gmi", 403, 431, ConfigurationError, "account cancelled"),
    _rule(
        "gmi",
        403,
        None,
        RateLimitedError,
        "API call limit reached",
        detail=r"limit|exceed|too many|quota",
    ),
    _rule(
        "gmi",
        403,
        None,
        ConfigurationError,
        "API key does not exist",
        detail=r"api.?key.*(does not exist|not found|invalid|unknown)|invalid api.?key",
    ),
    _rule("gmi", 403, None, ConfigurationError, "API key is blocked", detail=r"\bblocked\b"),
    _rule(
        "gmi",
        403,
        None,
        ConfigurationError,
        "API key lacks the required permission",
        detail=r"permission",
    ),
    _rule("gmi", 403, None, ConfigurationError, "account cancelled", detail=r"cancel"),
    _rule("gmi", 405, None, PermanentError, "method not allowed"),
    _rule("gmi", 415, None, PermanentError, "request content type rejected"),
    _rule("gmi", 422, None, PermanentError, "request rejected"),
    _rule("gmi", 422, 100, TransientError, "unexpected server error", may_have_landed=True),
    _rule("gmi", 422, 105, RateLimitedError, "hourly upload limit reached"),
    _rule("gmi", 422, 106, NotFoundError, "document not found"),
    _rule("gmi", 422, 118, TransientError, "unexpected error while creating the company"),
    _rule("gmi", 422, 127, DuplicateDocumentError, "document already exists"),
    _rule("gmi", 422, 131, NotFoundError, "company not found"),
    _rule("gmi", 422, 135, NotFoundError, "document not found"),
    _rule("gmi", 422, 139, NotFoundError, "company not found"),
    _rule("gmi", 429, None, RateLimitedError, "API call limit reached"),
    _rule("gmi", 503, None, TransientError, "temporary issue"),
    _rule("gmi", (500, 599), None, TransientError, "server error", may_have_landed=True),
    # --- Fallbacks by status class for combinations no row above names.
    _rule("*", (100, 299), None, TransientError, "unexpected answer", may_have_landed=True),
    _rule("*", (300, 399), None, ConfigurationError, "unexpected redirect; check the base URL"),
    _rule("*", (400, 499), None, PermanentError, "request rejected"),
    _rule("*", 401, None, ConfigurationError, "not authorised"),
    _rule("*", 408, None, TransientError, "request timed out at the server"),
    # A gateway refusing a large body does not say its limit; the client adds the size sent.
    _rule("*", 413, None, PermanentError, "too large for the server"),
    _rule("*", 429, None, RateLimitedError, "rate limited"),
    _rule("*", (500, 599), None, TransientError, "server error", may_have_landed=True),
)

# What the cheap second question makes of an answer marked ``confirm``: "works" when it
# succeeded, "unexplained" when it was refused just as vaguely (or not answered). Any other
# answer to it is classified by ERROR_TABLE like every answer.
CONFIRMATIONS: dict[tuple[str, str], ErrorRule] = {
    ("gmi", "works"): _rule(
        "gmi", 403, None, RateLimitedError,
        "refused with 403 while the key answers GET /apiStatus: a call limit, waited out",
    ),
    ("gmi", "unexplained"): _rule(
        "gmi", 403, None, RateLimitedError,
        "refused with 403 without a reason, and so was GET /apiStatus: waited out as a limit; "
        "a rejected key would say so",
    ),
    ("billomat", "works"): _rule(
        "billomat", 403, None, ConfigurationError,
        "this call is forbidden (403) while the key works: the key's user lacks a permission",
    ),
    ("billomat", "unexplained"): _rule(
        "billomat", 403, None, ConfigurationError,
        "every call is forbidden (403), also GET /clients/myself: check the key's user",
    ),
}  # fmt: skip

_CATCH_ALL = ErrorRule("*", 0, 999, None, TransientError, "unexpected answer", True)


def lookup_rule(
    api: str, status: int, code: int | None, text: str = "", origin: str | None = None
) -> ErrorRule:
    """The most specific row of ``ERROR_TABLE`` for this answer."""
    candidates = [rule for rule in ERROR_TABLE if rule.matches(api, status, code, text, origin)]
    return max(candidates, key=ErrorRule.specificity, default=_CATCH_ALL)


def confirmation(api: str, outcome: str) -> ErrorRule:
    """The row for what a confirming call said (``"works"`` or ``"unexplained"``)."""
    return CONFIRMATIONS[(api, outcome)]


def encode_query(params: Iterable[tuple[str, object]], *, safe: str = "") -> str:
    """A query string with spaces as ``+`` and ``safe`` characters left literal.

    Billomat wants ``order_by=id+ASC`` and comma lists literally (billomat.md §3.1).
    """
    return urlencode([(k, str(v)) for k, v in params], safe=safe, quote_via=quote_plus)


# ---------------------------------------------------------------------------------------------
# Session and auth


def build_session(pool_size: int = DEFAULT_POOL_SIZE) -> requests.Session:
    """A session with a connection pool per host and no transparent retries.

    Retrying is the queue's job: a blind retry inside ``requests`` could upload twice.
    """
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=pool_size,
        pool_maxsize=pool_size,
        max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


# ---------------------------------------------------------------------------------------------
# Transport


@dataclass(frozen=True)
class Call:
    """What the API client wants sent; ``endpoint`` is the low-cardinality template for hooks."""

    method: str
    url: str
    endpoint: str
    query: str = ""
    body: Any = None
    send_json: bool = False  # send the body (even ``{}``) with Content-Type: application/json

    @property
    def writes(self) -> bool:
        return self.method not in SAFE_METHODS


class Transport:
    """Sends one call, times it, reports it to the hooks and translates driver failures.

    It returns every HTTP answer, successful or not: reading an error body is the API module's
    job; building the exception from the table is ``error()``'s.
    """

    def __init__(
        self,
        api: str,
        *,
        auth: SecretHeaderAuth,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        hooks: ApiHooks | None = None,
        headers: Mapping[str, str] | None = None,
        extra_secrets: Iterable[str | None] = (),
        gate: CallGate | None = None,
    ) -> None:
        connect, read = timeout
        if connect <= 0 or read <= 0:
            raise ValueError("timeouts must be positive")
        self.api = api
        self.hooks: ApiHooks = hooks or NullHooks()
        self.gate = gate
        self._auth = auth
        self._owns_session = session is None
        self._session = session or build_session()
        self._timeout = (float(connect), float(read))
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        self.redact = Redactor([*auth.secrets(), *extra_secrets])

    def __repr__(self) -> str:
        return f"Transport(api={self.api!r}, timeout={self._timeout!r})"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def send(self, call: Call) -> requests.Response:
        if self.gate is not None:
            self.gate.before_call(self.api, call.endpoint)  # may raise RateLimitedError
        headers = dict(self._headers)
        data: bytes | None = None
        if call.send_json:
            headers["Content-Type"] = "application/json"
            # Compact and ASCII-safe; bodies are mostly base64, so this is about size.
            data = json.dumps(call.body if call.body is not None else {}).encode("utf-8")
        url = f"{call.url}?{call.query}" if call.query else call.url
        started = time.perf_counter()
        try:
            response = self._session.request(
                call.method,
                url,
                data=data,
                headers=headers,
                auth=self._auth,
                timeout=self._timeout,
                allow_redirects=False,  # the APIs never redirect; a redirect means a wrong URL
            )
        except requests.RequestException as e:
            seconds = time.perf_counter() - started
            self.hooks.on_response(self.api, call.endpoint, None, seconds)
            log.info(
                "%s %s failed after %.3fs: %s", self.api, call.endpoint, seconds, type(e).__name__
            )
            raise self._translate(call, e) from e
        seconds = time.perf_counter() - started
        self.hooks.on_response(self.api, call.endpoint, response.status_code, seconds)
        log.debug("%s %s -> %s in %.3fs", self.api, call.endpoint, response.status_code, seconds)
        return response

    def _translate(self, call: Call, e: requests.RequestException) -> ApiError:
        where = f"{call.endpoint}"
        if isinstance(e, requests.exceptions.InvalidHeader):
            # Never reached with checked secrets; its text could quote a header value.
            return ConfigurationError(f"invalid request header for {where}", api=self.api)
        if isinstance(e, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return ConfigurationError(f"invalid URL for {where}", api=self.api)
        if isinstance(e, requests.exceptions.InvalidSchema):
            return ConfigurationError(f"unsupported URL scheme for {where}", api=self.api)
        cause = type(_root_cause(e)).__name__
        if not _request_was_sent(e):
            return TransientError(f"could not connect for {where} ({cause})", api=self.api)
        if isinstance(e, requests.exceptions.ReadTimeout):
            what = f"no answer within {self._timeout[1]:g}s for {where}"
        else:
            what = f"connection lost during {where} ({cause})"
        # The request left this process: a write may have landed although no answer came.
        return TransientError(what, api=self.api, ambiguous=call.writes)

    def rule_for(
        self,
        status: int,
        code: int | None = None,
        detail: str = "",
        *,
        origin: str | None = None,
        table_status: int | None = None,
    ) -> ErrorRule:
        """The table's row for this answer (``table_status``: classify as if it had that)."""
        return lookup_rule(self.api, table_status or status, code, detail, origin)

    def error(
        self,
        call: Call,
        *,
        status: int,
        code: int | None = None,
        detail: str = "",
        reset_at: datetime | None = None,
        table_status: int | None = None,
        rule: ErrorRule | None = None,
        note: str = "",
    ) -> ApiError:
        """The exception the table prescribes for this answer.

        ``table_status`` classifies the answer as if it had that status (GMI's failure envelope
        inside a 200 reads like a 422) while the exception keeps the real ``status``. ``rule``
        is a row the caller already settled on (after confirming an ambiguous answer); ``note``
        adds what the caller knows beyond the answer (e.g. the size of a refused upload).
        """
        rule = rule or self.rule_for(status, code, detail, table_status=table_status)
        detail = short_text(self.redact(detail)) if detail else ""
        message = f"{rule.reason}: {detail}" if detail else rule.reason
        if note:
            message = f"{message}; {note}"
        message = f"{message} ({call.endpoint})"
        if rule.error is RateLimitedError:
            self.hooks.on_rate_limited(self.api)
            when = reset_at or datetime.now(UTC) + FALLBACK_RATE_LIMIT_WAIT
            return RateLimitedError(message, api=self.api, status=status, code=code, reset_at=when)
        if rule.error is TransientError:
            ambiguous = rule.may_have_landed and call.writes
            return TransientError(
                message, api=self.api, status=status, code=code, ambiguous=ambiguous
            )
        return rule.error(message, api=self.api, status=status, code=code)

    @contextmanager
    def parsing(self, call: Call, status: int) -> Iterator[None]:
        """Turns a ``ResponseShapeError`` raised by a parser into ``malformed()``."""
        try:
            yield
        except ResponseShapeError as e:
            raise self.malformed(call, status, str(e)) from e

    def malformed(self, call: Call, status: int, what: str) -> TransientError:
        """A successful status with a body we cannot understand.

        Transient rather than permanent: a proxy page or a half-deployed server fixes itself,
        and the retry tiers park the document if it does not. A write may have landed.
        """
        return TransientError(
            f"unexpected response to {call.endpoint}: {short_text(self.redact(what))}",
            api=self.api,
            status=status,
            ambiguous=call.writes,
        )


def _root_cause(e: BaseException) -> BaseException:
    inner = e.args[0] if e.args and isinstance(e.args[0], BaseException) else None
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        return inner.reason
    return inner or e


# Failures to *open* a connection: refused, DNS, connect timeout, TLS handshake, proxy.
_NOT_SENT = (NewConnectionError, ConnectTimeoutError, SSLError, ProxyError)


def _request_was_sent(e: requests.RequestException) -> bool:
    """Whether any byte of the request may have reached the server."""
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return False
    inner = e.args[0] if e.args else None
    # With no retries configured, urllib3 wraps only connection-opening failures in
    # MaxRetryError; failures after sending (reset, closed, read timeout) arrive unwrapped.
    return not (isinstance(inner, MaxRetryError) and isinstance(inner.reason, _NOT_SENT))
