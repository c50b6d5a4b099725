"""Reading what the APIs send: bodies that may not be JSON, headers, and lenient scalars.

Both APIs send numbers as strings, empties as "" or null, and sometimes an HTML page where JSON
was due; everything here turns that into plain values without raising on the odd ones.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import requests

MAX_DETAIL_CHARS = 300


class ResponseShapeError(ValueError):
    """A successful answer whose body does not have the documented shape."""


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
