"""Billomat REST client: the inbox (export target) and finished documents with PDFs (import source).

Billomat's JSON is a mechanical XML conversion (billomat.md §3.3, §4): one item arrives as an
object instead of a list, no item key at all for none, every scalar is a string and empties are
``""``. The parsers below absorb that; ``BillomatClient`` only builds calls and checks answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

import requests

from shared.errors import ConfigurationError
from shared.http import (
    DEFAULT_TIMEOUT,
    ApiHooks,
    Call,
    Quota,
    ResponseShapeError,
    SecretHeaderAuth,
    Transport,
    as_list,
    decode_base64,
    describe_body,
    encode_base64,
    encode_query,
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

API = "billomat"
DEFAULT_URL_TEMPLATE = "https://{billomat_id}.billomat.net/api"
BILLOMAT_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
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


def _unwrap(body: object, key: str) -> Mapping[str, Any]:
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


def _check_paging(page: int, per_page: int) -> None:
    if page < 1:
        raise ValueError("page starts at 1")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")


# ---------------------------------------------------------------------------------------------
# Client


class BillomatClient:
    """Calls one Billomat account. Thread-safe as far as ``requests.Session`` is."""

    def __init__(
        self,
        billomat_id: str,
        api_key: str,
        *,
        url_template: str = DEFAULT_URL_TEMPLATE,
        app_id: str | None = None,
        app_secret: str | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        hooks: ApiHooks | None = None,
    ) -> None:
        # The id becomes a host name: validate it before it can reach a URL.
        if not BILLOMAT_ID_RE.match(billomat_id):
            raise ConfigurationError(
                "the Billomat ID must be the lowercase subdomain of billomat.net", api=API
            )
        if "{billomat_id}" not in url_template:
            raise ConfigurationError("the Billomat URL template lacks {billomat_id}", api=API)
        if bool(app_id) != bool(app_secret):
            raise ConfigurationError("a Billomat app needs both app id and app secret", api=API)
        headers = {"X-BillomatApiKey": api_key}
        if app_id and app_secret:
            # A registered app lifts the quota from 300 to 1,000 calls per window (§2).
            headers |= {"X-AppId": app_id, "X-AppSecret": app_secret}
        try:
            auth = SecretHeaderAuth(headers)
        except ValueError as e:
            raise ConfigurationError(f"unusable Billomat credentials: {e}", api=API) from None
        self.billomat_id = billomat_id
        self.base_url = url_template.replace("{billomat_id}", billomat_id).rstrip("/")
        self.quota: Quota | None = None
        self._transport = Transport(API, auth=auth, session=session, timeout=timeout, hooks=hooks)

    def __repr__(self) -> str:
        return f"BillomatClient(billomat_id={self.billomat_id!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Closes the session if this client created it."""
        self._transport.close()

    # --- inbox (export target) --------------------------------------------------------------

    def inbox_page(
        self, page: int = 1, per_page: int = 100, order_by: str | None = None
    ) -> Page[InboxDocument]:
        _check_paging(page, per_page)
        params: list[tuple[str, object]] = [("page", page), ("per_page", per_page)]
        if order_by:
            params.append(("order_by", normalise_order_by(order_by)))
        call = self._call("GET", "/inbox-documents", params=params)
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            items, page_no, size, total = parse_list(body, "inbox-documents", "inbox-document")
            return Page([parse_inbox_document(i) for i in items], page_no, size, total)

    def iter_inbox(self, per_page: int = MAX_PER_PAGE) -> Iterator[InboxDocument]:
        """Every inbox document, fetching a page only when the previous one is used up."""
        page_no = 1
        while True:
            page = self.inbox_page(page_no, per_page, order_by="id ASC")
            yield from page.items
            if not page.has_more:
                return
            page_no += 1

    def get_inbox_document(self, inbox_id: int) -> InboxDocument:
        call = self._call("GET", f"/inbox-documents/{int(inbox_id)}", "/inbox-documents/{id}")
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            return parse_inbox_document(_unwrap(body, "inbox-document"))

    def create_inbox_document(
        self,
        *,
        content: bytes,
        filename: str | None = None,
        document_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> InboxDocument:
        if not content:
            raise ValueError("an inbox document needs content")
        record: dict[str, Any] = {"base64file": encode_base64(content)}
        if filename:
            record["filename"] = filename
        if document_type:
            record["document_type"] = document_type
        if metadata:
            # The XML form is <metadata><data><key/><value/></data>…; JSON mirrors it (§5.3).
            record["metadata"] = {
                "data": [{"key": k, "value": str(v)} for k, v in metadata.items()]
            }
        call = self._call("POST", "/inbox-documents", body={"inbox-document": record})
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            return parse_inbox_document(_unwrap(body, "inbox-document"))

    def delete_inbox_document(self, inbox_id: int) -> None:
        call = self._call("DELETE", f"/inbox-documents/{int(inbox_id)}", "/inbox-documents/{id}")
        self._send(call)

    # --- documents (import source) ----------------------------------------------------------

    def documents_page(
        self,
        kind: str,
        *,
        page: int = 1,
        per_page: int = MAX_PER_PAGE,
        date_from: date | None = None,
        date_to: date | None = None,
        statuses: Sequence[str] = (),
        order_by: str | None = "id ASC",
    ) -> Page[BillomatDocument]:
        spec = kind_spec(kind)
        _check_paging(page, per_page)
        params: list[tuple[str, object]] = [("page", page), ("per_page", per_page)]
        if date_from is not None:
            params.append(("from", date_from.isoformat()))
        if date_to is not None:
            params.append(("to", date_to.isoformat()))
        if statuses:
            # Multi-value filters are comma lists, OR-combined (§3.1).
            params.append(("status", ",".join(s.strip().upper() for s in statuses)))
        if order_by:
            params.append(("order_by", normalise_order_by(order_by)))
        call = self._call("GET", f"/{kind}", params=params)
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            items, page_no, size, total = parse_list(body, kind, spec.singular)
            return Page([parse_document(kind, i) for i in items], page_no, size, total)

    def iter_documents(
        self,
        kind: str,
        *,
        per_page: int = MAX_PER_PAGE,
        date_from: date | None = None,
        date_to: date | None = None,
        statuses: Sequence[str] = (),
        order_by: str | None = "id ASC",
    ) -> Iterator[BillomatDocument]:
        """Every matching document, one page request at a time, until ``page*per_page >= total``."""
        page_no = 1
        while True:
            page = self.documents_page(
                kind,
                page=page_no,
                per_page=per_page,
                date_from=date_from,
                date_to=date_to,
                statuses=statuses,
                order_by=order_by,
            )
            yield from page.items
            if not page.has_more:
                return
            page_no += 1

    def get_document(self, kind: str, doc_id: int) -> BillomatDocument:
        spec = kind_spec(kind)
        call = self._call("GET", f"/{kind}/{int(doc_id)}", f"/{kind}/{{id}}")
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            return parse_document(kind, _unwrap(body, spec.singular))

    def get_pdf(self, kind: str, doc_id: int) -> Pdf:
        kind_spec(kind)
        call = self._call("GET", f"/{kind}/{int(doc_id)}/pdf", f"/{kind}/{{id}}/pdf")
        response = self._send(call)
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == "application/pdf":
            # Servers honouring Accept: application/pdf (or a proxy) send the bytes as they are.
            return Pdf(default_pdf_name(kind, doc_id), ctype, response.content)
        body = json_body(response)
        with self._transport.parsing(call, response.status_code):
            if body is None:
                raise ResponseShapeError(describe_body(response))
            return parse_pdf(kind, doc_id, body)

    @staticmethod
    def parse_document(kind: str, record: Mapping[str, Any]) -> BillomatDocument:
        """A document from a list item, a single GET or a webhook body.

        Raises ``ValueError`` for an unknown kind or a record without an id.
        """
        return parse_document(kind, record)

    # --- plumbing ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        template: str | None = None,
        *,
        params: Sequence[tuple[str, object]] = (),
        body: Any = None,
    ) -> Call:
        return Call(
            method=method,
            url=self.base_url + path,
            endpoint=f"{method} {template or path}",
            # Commas stay literal in multi-value filters; spaces become "+" (order_by).
            query=encode_query(params, safe=","),
            body=body,
            send_json=body is not None,
        )

    def _send(self, call: Call) -> requests.Response:
        response = self._transport.send(call)
        quota = quota_from(response)
        if quota is not None:
            self.quota = quota
            self._transport.hooks.on_quota(API, quota)
        if 200 <= response.status_code < 300:
            return response
        detail = error_detail(response)
        reset_at = rate_limit_reset(response, detail) if response.status_code == 429 else None
        raise self._transport.error(
            call, status=response.status_code, detail=detail, reset_at=reset_at
        )

    def _json(self, call: Call) -> tuple[Any, int]:
        response = self._send(call)
        body = json_body(response)
        if body is None:
            raise self._transport.malformed(call, response.status_code, describe_body(response))
        return body, response.status_code
