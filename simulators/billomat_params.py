"""Billomat requests in, answers out: errors, list paging/sorting/filtering, bodies.

The handlers of :mod:`simulators.billomat_api` read parameters and build answers through these,
so every list pages, sorts and filters the same way (billomat.md §3) and every error has the
same shape (§1.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from simulators.billomat_model import Kind, NotFound, Tenant, parse_amount
from simulators.formats import (
    Format,
    Items,
    Record,
    Value,
    parse_body,
    render_errors,
    render_list,
    render_record,
)
from simulators.http import Request, Response
from simulators.ratelimit import WindowState
from simulators.variants import BillomatBehaviour

MAX_PER_PAGE = 1000


class ApiError(Exception):
    """An error answer in the requested format."""

    def __init__(self, status: int, *messages: str) -> None:
        super().__init__(*messages)
        self.status = status
        self.messages = messages or ("Error",)


@dataclass(frozen=True)
class Call:
    request: Request
    tenant: Tenant
    fmt: Format
    behaviour: BillomatBehaviour


def phrase(status: int) -> str:
    return {500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")


def error_response(fmt: Format, status: int, *messages: str) -> Response:
    return Response(status, render_errors(fmt, messages), fmt.content_type)


def with_quota(response: Response, quota: WindowState) -> Response:
    response.headers += [
        ("X-Rate-Limit-Remaining", str(quota.remaining)),
        ("X-Rate-Limit-Reset", str(quota.reset_epoch)),
    ]
    return response


def authorized(tenant: Tenant, request: Request) -> bool:
    key = request.header("X-BillomatApiKey") or request.query_value("api_key")
    return bool(key) and key == tenant.api_key


def id_param(text: str) -> int:
    if not text.isdigit():
        raise NotFound(text)
    return int(text)


def root(call: Call, name: str) -> Mapping[str, Any]:
    """The body's single root object, ``{"client":{…}}`` / ``<client>…</client>``."""
    payload = parse_body(call.request)
    data = payload.get(name)
    if not isinstance(data, Mapping):
        raise ApiError(400, f"The request body must contain one {name} element.")
    return data


def record_response(call: Call, root: str, record: Record, *, status: int = 200) -> Response:
    return Response(status, render_record(call.fmt, root, record), call.fmt.content_type)


def int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_value(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ApiError(400, f"Invalid value for {name}: {raw}")
    return int(raw)


def list_response(call: Call, records: Sequence[Record], plural: str, singular: str) -> Response:
    request = call.request
    page = int_param(request, "page", 1)
    # Above the maximum the page size is capped rather than refused (unconfirmed); the
    # envelope's @per_page shows the size actually used.
    per_page = min(int_param(request, "per_page", 100), MAX_PER_PAGE)
    order_by = request.query_value("order_by") or ""
    if not call.behaviour.sort_by_id and "id" in _order_fields(order_by):
        # Sorting by id is not documented (only date and number fields are shown).
        raise ApiError(400, "Invalid value for order_by: sorting by id is not supported")
    ordered = _sort(records, order_by)
    total = len(ordered)
    start = (page - 1) * per_page
    body = render_list(
        call.fmt,
        plural,
        singular,
        ordered[start : start + per_page],
        page=page,
        per_page=per_page,
        total=total,
    )
    return Response(200, body, call.fmt.content_type, [("X-Total-Count", str(total))])


def _sort_key(value: Value) -> tuple[int, Any]:
    if value is None or value == "" or isinstance(value, Items):
        return (0, "")
    if isinstance(value, datetime):
        return (1, Decimal(value.timestamp()))
    if isinstance(value, int | Decimal):
        return (1, Decimal(value))
    if isinstance(value, date):
        return (2, value.isoformat())
    return (3, value.lower())


def _order_fields(order_by: str) -> list[str]:
    return [c.split()[0] for c in order_by.split(",") if c.strip()]


def _sort(records: Sequence[Record], order_by: str) -> list[Record]:
    """``order_by=date DESC,invoice_number ASC`` (the ``+`` arrives as a space).

    Clauses naming an unknown field, or an unknown direction, are ignored: a client that
    double-encodes the ``+`` (``date%2BDESC``) silently gets the default order, as a lenient
    PHP backend would give it.
    """
    ordered = sorted(records, key=lambda r: _sort_key(r.get("id")))
    clauses = [c.split() for c in order_by.split(",") if c.strip()]
    for clause in reversed(clauses):
        field = clause[0]
        direction = clause[1].upper() if len(clause) > 1 else "ASC"
        if len(clause) > 2 or direction not in ("ASC", "DESC"):
            continue
        if not records or field not in records[0]:
            continue
        ordered.sort(key=lambda r: _sort_key(r.get(field)), reverse=direction == "DESC")
    return ordered


def substring_filter(
    request: Request, records: Sequence[Record], fields: Sequence[str]
) -> list[Record]:
    """Text filters match case-insensitive substrings (billomat.md §3.1)."""
    result = list(records)
    for name in fields:
        wanted = request.query_value(name)
        if wanted:
            needle = wanted.lower()
            result = [r for r in result if needle in str(r.get(name) or "").lower()]
    return result


def _date_param(request: Request, name: str) -> date | None:
    raw = request.query_value(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as e:
        raise ApiError(400, f"Invalid date for {name}: {raw}") from e


def filter_documents(request: Request, kind: Kind, records: Sequence[Record]) -> list[Record]:
    result = list(records)
    start, end = _date_param(request, "from"), _date_param(request, "to")
    # from/to filter the document date, not created/updated (billomat.md §6.1).
    if start is not None:
        result = [r for r in result if _as_date(r.get("date")) >= start]
    if end is not None:
        result = [r for r in result if _as_date(r.get("date")) <= end]
    statuses = request.query_value("status")
    if statuses:
        # Comma-separated, OR-combined; matched exactly as documented (upper case) because
        # case-insensitivity is unconfirmed.
        wanted = {s.strip() for s in statuses.split(",") if s.strip()}
        result = [r for r in result if r.get("status") in wanted]
    for party_param in ("client_id", "supplier_id"):
        raw = request.query_value(party_param)
        if raw and party_param == kind.party_field:
            ids = {p.strip() for p in raw.split(",")}
            result = [r for r in result if str(r.get(party_param)) in ids]
    if kind.number_filter and kind.number_field:
        wanted_number = request.query_value(kind.number_filter)
        if wanted_number:
            needle = wanted_number.lower()
            field = kind.number_field
            result = [r for r in result if needle in str(r.get(field) or "").lower()]
    return substring_filter(request, result, ("label", "intro", "note"))


def _as_date(value: Value) -> date:
    return value if isinstance(value, date) else date.min


def parse_metadata(raw: object) -> list[tuple[str, str]]:
    """``{"data":[{key,value},…]}``, ``{"data":{key,value}}`` or the same parsed from XML."""
    if raw in (None, "", [], {}):
        return []
    if not isinstance(raw, Mapping) or "data" not in raw:
        raise ApiError(400, 'metadata must be {"data": [{"key": …, "value": …}, …]}')
    entries = raw["data"]
    if isinstance(entries, Mapping):
        entries = [entries]
    if not isinstance(entries, list):
        raise ApiError(400, "metadata.data must be a list of key/value pairs")
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not str(entry.get("key") or "").strip():
            raise ApiError(400, "every metadata entry needs a key")
        value = entry.get("value")
        pairs.append((str(entry["key"]), "" if value is None else str(value)))
    return pairs


def item_totals(raw: object, kind: Kind) -> tuple[Decimal, Decimal]:
    """Net and gross from ``{"invoice-items":{"invoice-item":[…]}}``; a draft may have none."""
    if not isinstance(raw, Mapping):
        return Decimal(0), Decimal(0)
    items = raw.get(f"{kind.singular}-item")
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        return Decimal(0), Decimal(0)
    net = gross = Decimal(0)
    for item in items:
        if not isinstance(item, Mapping):
            raise ApiError(400, "invalid item")
        line = parse_amount(item.get("quantity") or 1, "quantity") * parse_amount(
            item.get("unit_price") or 0, "unit_price"
        )
        rate = parse_amount(item.get("tax_rate") or 0, "tax_rate")
        net += line
        gross += line * (1 + rate / 100)
    cent = Decimal("0.01")
    return net.quantize(cent), gross.quantize(cent)
