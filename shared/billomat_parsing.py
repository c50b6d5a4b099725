"""What Billomat's answers mean: result types, document kinds, parsers and error bodies.

Billomat's JSON is a mechanical XML conversion (billomat.md §3.3, §4): one item arrives as an
object instead of a list, no item key at all for none, every scalar is a string and empties are
``""``. The parsers (pure: JSON in, dataclasses out) absorb that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

import requests

from shared.http import Quota
from shared.readers import (
    ResponseShapeError,
    as_list,
    decode_base64,
    describe_body,
    epoch_to_utc,
    is_empty,
    json_body,
    looks_like_html,
    read_date,
    read_datetime,
    read_decimal,
    read_int,
    read_str,
    retry_after,
    short_text,
)

MAX_PER_PAGE = 1000
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class InboxDocument:
    id: int
    created: datetime | None
    filename: str
    mimetype: str
    filesize: int
    document_type: str
    metadata: dict[str, str]
    content: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class BillomatDocument:
    kind: str
    id: int
    number: str
    status: str
    date: date | None
    created: datetime | None
    updated: datetime | None
    client_id: int | None
    title: str
    total_net: Decimal | None
    total_gross: Decimal | None
    currency_code: str


@dataclass(frozen=True)
class Pdf:
    filename: str
    mimetype: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def has_more(self) -> bool:
        # billomat.md §3.3: @total counts all pages; an empty page ends paging whatever it says.
        return bool(self.items) and self.page * self.per_page < self.total


# ---------------------------------------------------------------------------------------------
# Kinds: the resource path segment and what its JSON calls things (billomat.md §3.2, §6.1)


@dataclass(frozen=True)
class KindSpec:
    singular: str  # JSON key of one item, also the webhook body's root
    number_fields: tuple[str, ...]  # first non-empty one is the document's number
    title_fields: tuple[str, ...]
    party_field: str  # the counterparty's id: client for sales documents, supplier for incomings


KINDS: Mapping[str, KindSpec] = {
    "invoices": KindSpec("invoice", ("invoice_number",), ("title",), "client_id"),
    "credit-notes": KindSpec("credit-note", ("credit_note_number",), ("title",), "client_id"),
    "offers": KindSpec("offer", ("offer_number",), ("title",), "client_id"),
    "confirmations": KindSpec("confirmation", ("confirmation_number",), ("title",), "client_id"),
    "delivery-notes": KindSpec("delivery-note", ("delivery_note_number",), ("title",), "client_id"),
    # Reminders carry the number of the invoice they remind of (§6.1); letters have none.
    "reminders": KindSpec("reminder", ("invoice_number",), ("subject", "title"), "client_id"),
    "letters": KindSpec("letter", (), ("subject", "title"), "client_id"),
    # An incoming's `number` is the supplier's invoice number (§6.4); the filter says incoming_.
    "incomings": KindSpec("incoming", ("number", "incoming_number"), ("title",), "supplier_id"),
}


def kind_spec(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown Billomat document kind {kind!r}; expected one of {', '.join(KINDS)}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Parsers (pure: JSON in, dataclasses out)


def _first(record: Mapping[str, Any], names: Sequence[str]) -> str:
    for name in names:
        text = read_str(record.get(name))
        if text:
            return text
    return ""


def _required_id(record: Mapping[str, Any], what: str) -> int:
    value = read_int(record.get("id"))
    if value is None:
        raise ResponseShapeError(f"{what} without a numeric id")
    return value


def _root(body: object, key: str) -> Mapping[str, Any] | None:
    """``{"invoice": {...}}`` → ``{...}``; also accepts ``credit_note`` for ``credit-note``."""
    if isinstance(body, Mapping):
        for name in (key, key.replace("-", "_")):
            inner = body.get(name)
            if isinstance(inner, Mapping):
                return inner
    return None


def unwrap(body: object, key: str) -> Mapping[str, Any]:
    inner = _root(body, key)
    if inner is None:
        raise ResponseShapeError(f"no {key!r} object in the body")
    return inner


def parse_metadata(value: object) -> dict[str, str]:
    """``{"data": [{"key", "value"}]}``, one bare entry, ``""`` or absent → a plain dict."""
    container = value.get("data") if isinstance(value, Mapping) else None
    result: dict[str, str] = {}
    for entry in as_list(container):
        key = read_str(entry.get("key"))
        if key:
            result[key] = read_str(entry.get("value"))
    return result


def parse_inbox_document(record: Mapping[str, Any]) -> InboxDocument:
    raw_file = record.get("base64file")
    return InboxDocument(
        id=_required_id(record, "inbox document"),
        created=read_datetime(record.get("created")),
        filename=read_str(record.get("filename")),
        mimetype=read_str(record.get("mimetype")),
        filesize=read_int(record.get("filesize")) or 0,
        document_type=read_str(record.get("document_type")),
        metadata=parse_metadata(record.get("metadata")),
        content=None if is_empty(raw_file) else decode_base64(raw_file, "base64file"),
    )


def parse_document(kind: str, record: Mapping[str, Any]) -> BillomatDocument:
    """One document of ``kind``, bare or wrapped in its singular key (as webhooks send it)."""
    spec = kind_spec(kind)
    record = _root(record, spec.singular) or record  # else it is the bare record
    return BillomatDocument(
        kind=kind,
        id=_required_id(record, spec.singular),
        number=_first(record, spec.number_fields),
        status=read_str(record.get("status")).upper(),
        date=read_date(record.get("date")),
        created=read_datetime(record.get("created")),
        updated=read_datetime(record.get("updated")),
        client_id=read_int(record.get(spec.party_field)),
        title=_first(record, spec.title_fields),
        total_net=read_decimal(record.get("total_net")),
        total_gross=read_decimal(record.get("total_gross")),
        currency_code=read_str(record.get("currency_code")),
    )


def parse_list(
    body: object, plural: str, singular: str
) -> tuple[list[Mapping[str, Any]], int, int, int]:
    """A list envelope → (items, page, per_page, total); tolerates every §3.3 quirk."""
    if not isinstance(body, Mapping) or plural not in body:
        raise ResponseShapeError(f"no {plural!r} list in the body")
    container = body[plural]
    if not isinstance(container, Mapping):
        container = {}  # "" or null: nothing at all
    items = as_list(container.get(singular))
    page = read_int(container.get("@page")) or 1
    per_page = read_int(container.get("@per_page")) or max(len(items), 1)
    total = read_int(container.get("@total"))
    if total is None:
        total = (page - 1) * per_page + len(items)
    return items, page, per_page, total


def parse_pdf(kind: str, doc_id: int, body: object) -> Pdf:
    # Very old servers used a "document" root (billomat.md §6.2).
    for root in ("pdf", "document"):
        if isinstance(body, Mapping) and isinstance(body.get(root), Mapping):
            record = body[root]
            break
    else:
        raise ResponseShapeError("no 'pdf' object in the body")
    return Pdf(
        filename=read_str(record.get("filename")) or default_pdf_name(kind, doc_id),
        mimetype=read_str(record.get("mimetype")) or "application/pdf",
        content=decode_base64(record.get("base64file"), "base64file"),
    )


def default_pdf_name(kind: str, doc_id: int) -> str:
    return f"{kind_spec(kind).singular}-{doc_id}.pdf"


_XML_ERROR_RE = re.compile(r"<error>(.*?)</error>", re.DOTALL)


def error_detail(response: requests.Response) -> str:
    """The server's reason: ``errors.error`` (a string or a list), XML, or short plain text."""
    body = json_body(response)
    if isinstance(body, Mapping):
        errors = body.get("errors")
        found = errors.get("error") if isinstance(errors, Mapping) else errors
        if found is None:
            found = body.get("error") or body.get("message")
        texts = [found] if isinstance(found, str) else found if isinstance(found, list) else []
        detail = "; ".join(read_str(t) for t in texts if read_str(t))
        return detail or describe_body(response)
    if body is not None or looks_like_html(response):
        return describe_body(response)
    text = response.content.decode("utf-8", errors="replace")
    xml = _XML_ERROR_RE.findall(text)
    if xml:
        return "; ".join(xml)
    # billomat.md §1.5: "a short plain-text message in the body".
    return short_text(text) or describe_body(response)


# ASCII digits, few enough for a timedelta
_TRY_AGAIN_RE = re.compile(r"try again in ([0-9]{1,9}) seconds?", re.IGNORECASE)


def rate_limit_reset(response: requests.Response, detail: str) -> datetime | None:
    """X-Rate-Limit-Reset, else the "Try again in N seconds" text; ``None`` for the default."""
    header = epoch_to_utc(response.headers.get("X-Rate-Limit-Reset"))
    if header is not None and header > datetime.now(UTC):
        return header
    match = _TRY_AGAIN_RE.search(detail)
    if match:
        return datetime.now(UTC) + timedelta(seconds=int(match.group(1)))
    return retry_after(response)


def quota_from(response: requests.Response) -> Quota | None:
    remaining = read_int(response.headers.get("X-Rate-Limit-Remaining"))
    reset_at = epoch_to_utc(response.headers.get("X-Rate-Limit-Reset"))
    if remaining is None or reset_at is None:
        return None
    return Quota(remaining=remaining, reset_at=reset_at)


_ORDER_BY_RE = re.compile(r"^\w+(?: (?:ASC|DESC))?(?:,\s*\w+(?: (?:ASC|DESC))?)*$", re.IGNORECASE)


def normalise_order_by(order_by: str) -> str:
    """``"date DESC,id"`` as Billomat wants it; the space becomes ``+`` on the wire (§3.1)."""
    text = " ".join(order_by.replace("+", " ").split())
    if not _ORDER_BY_RE.match(text):
        raise ValueError(f"order_by must look like 'field ASC|DESC[, …]', got {order_by!r}")
    return ",".join(part.strip() for part in text.split(","))


def check_paging(page: int, per_page: int) -> None:
    if page < 1:
        raise ValueError("page starts at 1")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")
