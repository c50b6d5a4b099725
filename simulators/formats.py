"""Billomat's wire formats: XML by default, JSON that is a literal XML-to-JSON conversion.

Records are plain mappings of typed Python values (``int``, ``Decimal``, ``date``, ``datetime``,
``str``, ``None``) plus :class:`Items` for nested collections. The renderers apply the quirks
clients must survive: every JSON scalar a string, Berlin datetimes, PHP-style ``\\uXXXX``
and ``\\/`` escapes, and collections that collapse to an object for one item and vanish for none.
"""

from __future__ import annotations

import enum
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias
from xml.sax.saxutils import escape

from simulators.clock import berlin_iso
from simulators.http import Request

Scalar: TypeAlias = str | int | Decimal | date | datetime | None


@dataclass(frozen=True)
class Items:
    """A nested collection such as ``taxes.tax`` or ``metadata.data``."""

    key: str
    items: Sequence[Record]


Value: TypeAlias = Scalar | Items
Record: TypeAlias = Mapping[str, Value]


class Format(enum.Enum):
    JSON = "json"
    XML = "xml"

    @property
    def content_type(self) -> str:
        if self is Format.JSON:
            return "application/json; charset=utf-8"
        return "application/xml; charset=utf-8"


def negotiate(request: Request) -> Format:
    """``format=json`` or ``Accept: application/json`` give JSON; everything else gets XML."""
    requested = (request.query_value("format") or "").lower()
    if requested == "json":
        return Format.JSON
    if requested == "xml":
        return Format.XML
    if "application/json" in (request.header("Accept") or "").lower():
        return Format.JSON
    return Format.XML


def php_amount(value: Decimal) -> str:
    """Amounts the way PHP prints floats: ``3885``, ``4615.5`` (observed), never ``100.00``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _scalar_text(value: Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):  # before date: datetime is a date subclass
        return berlin_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return php_amount(value)
    return str(value)


def _xml_type(value: Scalar) -> str | None:
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, Decimal):
        return "float"
    if isinstance(value, int):
        return "integer"
    return None


# --- JSON ---------------------------------------------------------------------------------


def _json_value(value: Value) -> Any:
    if isinstance(value, Items):
        # Empty nested collections come as "" in real captures ("incoming-property-values":"").
        return _collapse(value.key, value.items) if value.items else ""
    if value is None:
        return None  # rare, but real (e.g. "discount_amount":null)
    return _scalar_text(value)


def _json_record(record: Record) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in record.items()}


def _collapse(key: str, items: Sequence[Record]) -> dict[str, Any]:
    """One item → an object, several → a list, none → the key is absent."""
    if not items:
        return {}
    if len(items) == 1:
        return {key: _json_record(items[0])}
    return {key: [_json_record(item) for item in items]}


def php_json(payload: Any) -> bytes:
    """``json_encode`` defaults: ASCII only (``\\uXXXX`` escapes) and ``/`` escaped as ``\\/``."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    # "/" only ever occurs inside strings in JSON text, so a plain replace is exact.
    return text.replace("/", "\\/").encode("ascii")


# --- XML ----------------------------------------------------------------------------------


def _xml_value(name: str, value: Value, out: list[str]) -> None:
    if isinstance(value, Items):
        out.append(f'<{name} type="array">')
        for item in value.items:
            _xml_record(value.key, item, out)
        out.append(f"</{name}>")
        return
    kind = _xml_type(value)
    attr = f' type="{kind}"' if kind else ""
    text = _scalar_text(value)
    out.append(f"<{name}{attr}>{escape(text)}</{name}>" if text else f"<{name}{attr}/>")


def _xml_record(name: str, record: Record, out: list[str]) -> None:
    out.append(f"<{name}>")
    for key, value in record.items():
        _xml_value(key, value, out)
    out.append(f"</{name}>")


def _xml_document(parts: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(parts) + "\n").encode("utf-8")


# --- public renderers -----------------------------------------------------------------------


def render_record(fmt: Format, root: str, record: Record) -> bytes:
    """A single object wrapped in its singular name: ``{"invoice":{…}}`` / ``<invoice>…``."""
    if fmt is Format.JSON:
        return php_json({root: _json_record(record)})
    out: list[str] = []
    _xml_record(root, record, out)
    return _xml_document(out)


def render_list(
    fmt: Format,
    plural: str,
    singular: str,
    records: Sequence[Record],
    *,
    page: int,
    per_page: int,
    total: int,
) -> bytes:
    """A list page with the string-typed ``@page/@per_page/@total`` envelope."""
    if fmt is Format.JSON:
        body = _collapse(singular, records)
        body.update({"@page": str(page), "@per_page": str(per_page), "@total": str(total)})
        return php_json({plural: body})
    out = [f'<{plural} type="array" page="{page}" per_page="{per_page}" total="{total}">']
    for record in records:
        _xml_record(singular, record, out)
    out.append(f"</{plural}>")
    return _xml_document(out)


def render_errors(fmt: Format, messages: Sequence[str]) -> bytes:
    """``{"errors":{"error":"…"}}`` (a list when several) or ``<errors><error>…``."""
    if fmt is Format.JSON:
        error: str | list[str] = messages[0] if len(messages) == 1 else list(messages)
        return php_json({"errors": {"error": error}})
    return _xml_document(
        ["<errors>", *(f"<error>{escape(m)}</error>" for m in messages), "</errors>"]
    )


# --- request bodies -----------------------------------------------------------------------


class BodyError(ValueError):
    """The request body cannot be read; the message is what the 400 answer says."""


def _element_value(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    result: dict[str, Any] = {}
    for child in children:
        value = _element_value(child)
        if child.tag not in result:
            result[child.tag] = value
        elif isinstance(result[child.tag], list):
            result[child.tag].append(value)
        else:
            # Repeated elements become a list, mirroring the JSON form of the same data.
            result[child.tag] = [result[child.tag], value]
    return result


def parse_body(request: Request) -> dict[str, Any]:
    """The write body as ``{root: payload}`` from JSON or XML, chosen by ``Content-Type``."""
    if not request.body.strip():
        return {}
    media = request.content_type
    if media in ("application/json", "text/json"):
        try:
            parsed = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BodyError(f"Invalid JSON: {e}") from e
        if not isinstance(parsed, dict):
            raise BodyError("Invalid JSON: expected an object")
        return parsed
    if media in ("application/xml", "text/xml"):
        try:
            root = ET.fromstring(request.body)  # noqa: S314 - bodies come from local test clients
        except ET.ParseError as e:
            raise BodyError(f"Invalid XML: {e}") from e
        return {root.tag: _element_value(root)}
    # The docs tell clients to declare the body's format; a body without one is not guessed at.
    raise BodyError("Unsupported Content-Type; send application/json or application/xml")


def record_dict(record: Record) -> dict[str, Any]:
    """A record with JSON-style string values, for control-surface snapshots."""
    return _json_record(record)
