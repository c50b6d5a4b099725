"""HTTP plumbing shared by the GMI and Billomat clients.

Pooled sessions, header auth that never shows its key, the one error table that maps both APIs'
answers onto ``shared.errors``, and the translation of ``requests`` failures at this boundary.
API-specific body parsing lives in ``shared.gmi`` and ``shared.billomat``.
"""

from __future__ import annotations

import base64
import binascii
import html
import importlib.metadata
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProxyError,
    SSLError,
)
from urllib3.util.retry import Retry

from shared.errors import (
    ApiError,
    ConfigurationError,
    DuplicateDocumentError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 120.0)  # connect, read: bodies are MBs of base64
DEFAULT_POOL_SIZE = 10
FALLBACK_RATE_LIMIT_WAIT = timedelta(seconds=60)
MAX_DETAIL_CHARS = 300

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
    or ``None`` (any code). ``may_have_landed`` marks answers after which a write may still have
    been performed (a gateway gave up waiting, the server failed half-way), so that retrying a
    write blindly could duplicate it.
    """

    api: str
    status_from: int
    status_to: int
    code: int | None
    error: type[ApiError]
    reason: str
    may_have_landed: bool = False

    def matches(self, api: str, status: int, code: int | None) -> bool:
        return (
            self.api in ("*", api)
            and self.status_from <= status <= self.status_to
            and (self.code is None or self.code == code)
        )

    def specificity(self) -> tuple[bool, bool, int]:
        # A row naming a code beats one that does not, a row naming the API beats "*", and a
        # narrow status range beats a wide one: the table reads like a list of exceptions.
        return (self.code is not None, self.api != "*", -(self.status_to - self.status_from))


def _rule(
    api: str,
    status: int | tuple[int, int],
    code: int | None,
    error: type[ApiError],
    reason: str,
    *,
    may_have_landed: bool = False,
) -> ErrorRule:
    lo, hi = (status, status) if isinstance(status, int) else status
    return ErrorRule(api, lo, hi, code, error, reason, may_have_landed)


ERROR_TABLE: tuple[ErrorRule, ...] = (
    # --- Billomat (billomat.md §1.5, §2): plain text or {"errors":{"error":...}} bodies.
    _rule("billomat", 400, None, PermanentError, "bad request"),
    _rule("billomat", 401, None, ConfigurationError, "API key rejected"),
    _rule("billomat", 403, None, ConfigurationError, "access forbidden"),
    _rule("billomat", 404, None, NotFoundError, "not found"),
    _rule("billomat", 422, None, PermanentError, "validation failed"),
    _rule("billomat", 429, None, RateLimitedError, "request quota used up"),
    _rule("billomat", (500, 599), None, TransientError, "server error", may_have_landed=True),
    _rule("billomat", 503, None, TransientError, "service unavailable"),
    # --- GMI (getmyinvoices.md §2): auth and call limits share the 403 family.
    _rule("gmi", 400, None, PermanentError, "invalid or missing parameters"),
    _rule("gmi", 403, None, ConfigurationError, "API key rejected"),
    _rule("gmi", 403, 403, ConfigurationError, "API key does not exist"),
    _rule("gmi", 403, 407, ConfigurationError, "API key is blocked"),
    _rule("gmi", 403, 429, RateLimitedError, "API call limit reached"),
    _rule("gmi", 403, 430, ConfigurationError, "API key lacks the required permission"),
    _rule("gmi", 403, 431, ConfigurationError, "account cancelled"),
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
    _rule("*", 429, None, RateLimitedError, "rate limited"),
    _rule("*", (500, 599), None, TransientError, "server error", may_have_landed=True),
)

_CATCH_ALL = ErrorRule("*", 0, 999, None, TransientError, "unexpected answer", True)


def lookup_rule(api: str, status: int, code: int | None) -> ErrorRule:
    """The most specific row of ``ERROR_TABLE`` for this answer."""
    candidates = [rule for rule in ERROR_TABLE if rule.matches(api, status, code)]
    return max(candidates, key=ErrorRule.specificity, default=_CATCH_ALL)


# ---------------------------------------------------------------------------------------------
# Secrets and short reasons


class ResponseShapeError(ValueError):
    """A successful answer whose body does not have the documented shape."""


class Redactor:
    """Removes known secrets from text that may have come from a server (which can echo them)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first so that a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


_WS_RE = re.compile(r"\s+")


def short_text(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """One line of at most ``limit`` characters."""
    text = _WS_RE.sub(" ", html.unescape(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


_HTML_RE = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<h1|<title)", re.IGNORECASE)


def looks_like_html(response: requests.Response) -> bool:
    ctype = response.headers.get("Content-Type", "").lower()
    return "html" in ctype or bool(_HTML_RE.match(response.content[:200]))


def describe_body(response: requests.Response) -> str:
    """A short reason for a body we cannot read: never the whole page."""
    if not response.content.strip():
        return f"HTTP {response.status_code} with an empty body"
    if looks_like_html(response):
        return f"HTTP {response.status_code} with an HTML body"
    return f"HTTP {response.status_code} with an unparseable body"


def json_body(response: requests.Response) -> Any | None:
    """The decoded JSON body, or ``None`` when there is none or it is not JSON."""
    if not response.content.strip() or looks_like_html(response):
        return None
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; nesting too deep
        return None


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


_BAD_SECRET_RE = re.compile(r"^\s|\s$|[\x00-\x1f\x7f]")


class SecretHeaderAuth(AuthBase):
    """Sends secrets in request headers; its repr names the headers, never their values.

    Values are checked here because ``requests`` would reject a bad one with an exception
    that quotes it.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        for name, value in headers.items():
            if not value or _BAD_SECRET_RE.search(value):
                raise ValueError(f"the {name} value is empty or has whitespace/control characters")
        self._headers = dict(headers)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return f"{type(self).__name__}(headers={sorted(self._headers)!r}, values=***)"

    def secrets(self) -> list[str]:
        return list(self._headers.values())


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
    ) -> None:
        connect, read = timeout
        if connect <= 0 or read <= 0:
            raise ValueError("timeouts must be positive")
        self.api = api
        self.hooks: ApiHooks = hooks or NullHooks()
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

    def error(
        self,
        call: Call,
        *,
        status: int,
        code: int | None = None,
        detail: str = "",
        reset_at: datetime | None = None,
        table_status: int | None = None,
    ) -> ApiError:
        """The exception the table prescribes for this answer.

        ``table_status`` classifies the answer as if it had that status (GMI's failure envelope
        inside a 200 reads like a 422) while the exception keeps the real ``status``.
        """
        rule = lookup_rule(self.api, table_status or status, code)
        detail = short_text(self.redact(detail)) if detail else ""
        message = f"{rule.reason}: {detail}" if detail else rule.reason
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


def epoch_to_utc(value: str | None) -> datetime | None:
    """An epoch-seconds header value as an aware UTC datetime, or ``None``."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value.strip()), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def retry_after(response: requests.Response) -> datetime | None:
    """``Retry-After`` (seconds) if a server sends it; neither API documents it."""
    value = response.headers.get("Retry-After", "").strip()
    # ASCII digits only ("²".isdigit() is true), and few enough for a timedelta
    if value.isascii() and value.isdigit() and len(value) <= 9:
        return datetime.now(UTC) + timedelta(seconds=int(value))
    return None


# ---------------------------------------------------------------------------------------------
# Lenient readers for scalars: both APIs send numbers as strings, empties as "" or null.

_BERLIN = ZoneInfo("Europe/Berlin")


def is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_str(value: object) -> str:
    if is_empty(value) or isinstance(value, Mapping | list):
        return ""
    return str(value).strip()


MAX_READ_INT_DIGITS = 19  # ids and counts fit in 64 bits; more is not a number we can use


def read_int(value: object) -> int | None:
    if is_empty(value) or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):  # ValueError: an int too long to turn into text
        return None
    # Infinity, NaN and sNaN are Decimals too; 1E+999999 would be a million digits.
    if not number.is_finite() or number.adjusted() >= MAX_READ_INT_DIGITS:
        return None
    return int(number) if number == number.to_integral_value() else None


def read_decimal(value: object) -> Decimal | None:
    if is_empty(value) or isinstance(value, bool):
        return None
    try:
        # str() first: Decimal(0.1) would carry the float's binary noise.
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", ""})


def read_bool(value: object, default: bool = False) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return default


def read_date(value: object) -> date | None:
    """``YYYY-MM-DD`` (a longer timestamp keeps its date part); sentinels such as
    ``0000-00-00`` and ``""`` are ``None``."""
    text = read_str(value)
    try:
        parsed = date.fromisoformat(text[:10])
    except ValueError:
        return None
    return None if parsed.year <= 1 else parsed


def read_datetime(value: object) -> datetime | None:
    """An ISO-8601 timestamp as aware UTC; one without an offset is read as Berlin time.

    Billomat sends German local time with its offset (``+01:00``/``+02:00``) and uses
    ``0001-01-01T00:00:00+01:00`` as a sentinel for "unset".
    """
    text = read_str(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.year <= 1:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_BERLIN)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past the last representable moment
        return None


def as_list(value: object) -> list[Mapping[str, Any]]:
    """A collection that may be a list, one bare object, or absent/empty (XML→JSON quirk)."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def decode_base64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ResponseShapeError(f"{what} is not a base64 string")
    try:
        # Not validating: PHP may wrap long base64 lines; b64decode skips the line breaks.
        return base64.b64decode(value)
    except (binascii.Error, ValueError) as e:
        raise ResponseShapeError(f"{what} is not valid base64") from e


def encode_base64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")
