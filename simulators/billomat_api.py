"""Billomat's REST surface ``/{billomat_id}/api/...``: auth, quota, formats, lists and resources.

Every request passes the same pipeline (count → latency → injected failure → tenant → quota →
auth → route → maybe drop the answer); handlers only translate between HTTP and the store.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from simulators.billomat_model import (
    CLIENT_FIELDS,
    INBOX_DOCUMENT_TYPES,
    KINDS,
    Conflict,
    Document,
    Kind,
    NotFound,
    Tenant,
    parse_amount,
    parse_date,
)
from simulators.billomat_records import inbox_record, pdf_record, stored_metadata
from simulators.billomat_store import BillomatStore
from simulators.clock import BERLIN
from simulators.counting import RequestCounter
from simulators.faults import FaultInjector
from simulators.formats import (
    BodyError,
    Format,
    Items,
    Record,
    Value,
    negotiate,
    parse_body,
    render_errors,
    render_list,
    render_record,
)
from simulators.http import Request, Response, Router, html_error
from simulators.pdf import sniff_mimetype
from simulators.ratelimit import FixedWindowCounter, WindowState, describe_window
from simulators.variants import BillomatBehaviour

# The quota shown to requests for a tenant that does not exist: the documented default.
_DEFAULT_LIMIT, _DEFAULT_WINDOW = 300, 900.0
_MAX_PER_PAGE = 1000


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


Handler = Callable[..., Response]


class BillomatApi:
    """Answers real-API requests against a :class:`BillomatStore`."""

    def __init__(
        self,
        store: BillomatStore,
        faults: FaultInjector,
        counter: RequestCounter,
        limiter: FixedWindowCounter,
        behaviour: BillomatBehaviour,
    ) -> None:
        self._store = store
        self._faults = faults
        self._counter = counter
        self._limiter = limiter
        self.behaviour = behaviour
        self._router = Router()
        self._add_routes()

    def _add_routes(self) -> None:
        r = self._router
        r.add("GET", "/clients", self._list_clients)
        r.add("POST", "/clients", self._create_client)
        r.add("GET", "/clients/myself", self._myself)
        r.add("GET", "/clients/{id}", self._get_client)
        r.add("PUT", "/clients/{id}", self._update_client)
        r.add("DELETE", "/clients/{id}", self._delete_client)
        r.add("GET", "/suppliers", partial(self._list_clients, supplier=True))
        r.add("GET", "/suppliers/{id}", partial(self._get_client, supplier=True))
        r.add("GET", "/inbox-documents", self._list_inbox)
        r.add("POST", "/inbox-documents", self._create_inbox)
        r.add("GET", "/inbox-documents/{id}", self._get_inbox)
        r.add("DELETE", "/inbox-documents/{id}", self._delete_inbox)
        for kind in KINDS.values():
            base = f"/{kind.path}"
            r.add("GET", base, partial(self._list_documents, kind=kind))
            r.add("POST", base, partial(self._create_document, kind=kind))
            r.add("GET", base + "/{id}", partial(self._get_document, kind=kind))
            r.add("PUT", base + "/{id}", partial(self._update_document, kind=kind))
            r.add("DELETE", base + "/{id}", partial(self._delete_document, kind=kind))
            r.add("GET", base + "/{id}/pdf", partial(self._get_pdf, kind=kind))
            if kind.has_drafts:
                r.add("PUT", base + "/{id}/complete", partial(self._complete, kind=kind))

    # --- pipeline ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        fmt = negotiate(request)
        parts = [p for p in request.path.split("/") if p]
        if len(parts) < 2 or parts[1] != "api":
            return _error(fmt, 404, "Not found")
        billomat_id, sub = parts[0], "/" + "/".join(parts[2:])
        match = self._router.match("GET" if request.method == "HEAD" else request.method, sub)
        self._counter.count(billomat_id, f"{request.method} /api{match.template if match else sub}")

        delay = self._faults.latency
        if delay:
            time.sleep(delay)
        tenant = self._store.find_tenant(billomat_id)
        limit = self.behaviour.max_upload_bytes
        if limit is not None and request.method in ("POST", "PUT") and len(request.body) > limit:
            # The gateway refuses a too large body before the app sees it (nginx's
            # client_max_body_size): an HTML page, no quota headers, no word of the limit.
            return html_error(413)
        failure = self._faults.failure_for(request.method, request.path)
        if failure is not None:
            if failure.html:
                # A gateway page: the app never saw the request, so no quota headers either.
                return html_error(failure.status)
            return _with_quota(
                _error(fmt, failure.status, _phrase(failure.status)), self._peek(tenant, request)
            )
        if tenant is None:
            # Unknown Billomat id: answered 401 like a wrong key (unconfirmed; the real host would
            # not exist at all). To a client both mean "check the configured id and key", and a
            # 404 would be mistaken for a missing document.
            return _with_quota(_error(fmt, 401, "Unauthorized"), self._peek(None, request))

        # Every request to an existing tenant counts, even one that then fails auth: the quota is
        # per account and shared by everything that talks to it.
        key, limit = self._bucket(tenant, request)
        quota = self._limiter.take(key, limit, tenant.window_seconds)
        if not quota.allowed:
            self._counter.count_limited(billomat_id)
            message = (
                f"Maximum number of requests ({limit} per "
                f"{describe_window(tenant.window_seconds)}) reached. "
                f"Try again in {quota.retry_after} seconds."
            )
            return _with_quota(_error(fmt, 429, message), quota)
        if not _authorized(tenant, request):
            return _with_quota(_error(fmt, 401, "Unauthorized"), quota)
        if match is None:
            return _with_quota(_error(fmt, 404, "Not found"), quota)
        if match.route is None:
            return _with_quota(_error(fmt, 405, "Method not allowed"), quota)

        try:
            call = Call(request, tenant, fmt, self.behaviour)
            response = match.route.handler(call, **match.params)
        except ApiError as e:
            response = _error(fmt, e.status, *e.messages)
        except NotFound:
            response = _error(fmt, 404, "Not found")
        except Conflict as e:
            response = _error(fmt, 400, str(e))
        except (BodyError, ValueError) as e:
            response = _error(fmt, 400, str(e))
        if 200 <= response.status < 300 and self._faults.should_drop(request.method, request.path):
            return Response.dropped()
        if 200 <= response.status < 300:
            hold = self._faults.hold_after(request.method, request.path)
            if hold:
                time.sleep(hold)
        return _with_quota(response, quota)

    def _bucket(self, tenant: Tenant, request: Request) -> tuple[tuple[str, ...], int]:
        app_id = request.header("X-AppId")
        secret = request.header("X-AppSecret")
        if app_id and secret is not None and tenant.apps.get(app_id) == secret:
            return (tenant.billomat_id, "app", app_id), tenant.app_limit
        # A missing or wrong app pair falls back to the shared quota (the app headers are
        # documented as optional and only decide the quota); unconfirmed for a wrong secret.
        return (tenant.billomat_id,), tenant.limit

    def _peek(self, tenant: Tenant | None, request: Request) -> WindowState:
        if tenant is None:
            return self._limiter.peek(("-unknown-",), _DEFAULT_LIMIT, _DEFAULT_WINDOW)
        key, limit = self._bucket(tenant, request)
        return self._limiter.peek(key, limit, tenant.window_seconds)

    # --- clients --------------------------------------------------------------------------

    def _list_clients(self, call: Call, *, supplier: bool = False) -> Response:
        records = self._store.party_records(call.tenant.billomat_id, supplier=supplier)
        filters = ("name", "client_number", "email", "first_name", "last_name", "country_code")
        records = _substring_filter(call.request, records, (*filters, "note"))
        plural, singular = ("suppliers", "supplier") if supplier else ("clients", "client")
        return _list_response(call, records, plural, singular)

    def _get_client(self, call: Call, id: str, *, supplier: bool = False) -> Response:
        record = self._store.party_record(call.tenant.billomat_id, _id(id), supplier=supplier)
        return _record_response(call, "supplier" if supplier else "client", record)

    def _myself(self, call: Call) -> Response:
        tenant = call.tenant
        record: Record = {
            "id": 1,
            "name": f"{tenant.billomat_id} GmbH",
            "plan": "BUSINESS",
            "quotas": Items("quota", ({"entity": "documents", "available": 0, "used": 0},)),
        }
        return _record_response(call, "client", record)

    def _create_client(self, call: Call) -> Response:
        data = _root(call, "client")
        fields = {k: str(v) for k, v in data.items() if k in CLIENT_FIELDS}
        client_id = self._store.add_party(
            call.tenant.billomat_id, str(data.get("name", "")), fields
        )
        record = self._store.party_record(call.tenant.billomat_id, client_id)
        return _record_response(call, "client", record, status=201)

    def _update_client(self, call: Call, id: str) -> Response:
        data = _root(call, "client")
        self._store.update_party(call.tenant.billomat_id, _id(id), data)
        return _record_response(
            call, "client", self._store.party_record(call.tenant.billomat_id, _id(id))
        )

    def _delete_client(self, call: Call, id: str) -> Response:
        self._store.delete_party(call.tenant.billomat_id, _id(id))
        return Response(200)

    # --- inbox ----------------------------------------------------------------------------

    def _list_inbox(self, call: Call) -> Response:
        docs = self._store.inbox_documents(call.tenant.billomat_id)
        # The list never carries the file: one GET per document to fetch it (billomat.md §5.1).
        records = [inbox_record(d, None) for d in docs]
        return _list_response(call, records, "inbox-documents", "inbox-document")

    def _get_inbox(self, call: Call, id: str) -> Response:
        doc = self._store.inbox_document(call.tenant.billomat_id, _id(id))
        encoded = base64.b64encode(doc.content).decode("ascii")
        return _record_response(call, "inbox-document", inbox_record(doc, encoded))

    def _create_inbox(self, call: Call) -> Response:
        data = _root(call, "inbox-document")
        raw = data.get("base64file")
        if not isinstance(raw, str) or not raw.strip():
            raise ApiError(400, "base64file is required")
        try:
            # XML bodies may wrap the base64 text over lines; whitespace is not an error.
            content = base64.b64decode("".join(raw.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ApiError(400, "base64file is not valid base64") from e
        mimetype = sniff_mimetype(content)
        if mimetype is None:
            # The inbox takes PDFs and images; other bytes are refused rather than stored as
            # a broken document (unconfirmed: the real server may accept and fail OCR later).
            raise ApiError(400, "The file type is not supported. Upload a PDF or an image.")
        document_type = str(data.get("document_type") or "OTHER").strip().upper()
        if document_type not in INBOX_DOCUMENT_TYPES:
            # Unknown values are refused (unconfirmed); the docs' default is written lowercase
            # ("other"), so the value is matched case-insensitively and stored uppercase.
            raise ApiError(400, f"Invalid document_type: {data.get('document_type')}")
        metadata = _parse_metadata(data.get("metadata"))
        filename = data.get("filename")
        doc = self._store.add_inbox_document(
            call.tenant.billomat_id,
            content=content,
            mimetype=mimetype,
            filename=str(filename) if filename else None,
            document_type=document_type,
            metadata=stored_metadata(call.behaviour.inbox_metadata, metadata, document_type),
            rename=call.behaviour.inbox_metadata == "rewritten",
        )
        encoded = base64.b64encode(doc.content).decode("ascii")
        return _record_response(call, "inbox-document", inbox_record(doc, encoded), status=201)

    def _delete_inbox(self, call: Call, id: str) -> Response:
        self._store.delete_inbox_document(call.tenant.billomat_id, _id(id))
        return Response(200)

    # --- outgoing documents ---------------------------------------------------------------

    def _list_documents(self, call: Call, *, kind: Kind) -> Response:
        records = self._store.document_records(call.tenant.billomat_id, kind.path)
        records = _filter_documents(call.request, kind, records)
        return _list_response(call, records, kind.path, kind.singular)

    def _get_document(self, call: Call, id: str, *, kind: Kind) -> Response:
        record = self._store.document_record(call.tenant.billomat_id, kind.path, _id(id))
        return _record_response(call, kind.singular, record)

    def _get_pdf(self, call: Call, id: str, *, kind: Kind) -> Response:
        doc = self._store.document(call.tenant.billomat_id, kind.path, _id(id))
        if doc.pdf is None:
            # Drafts have no PDF until `complete`; answered 404 (unconfirmed: "404 or an error").
            raise ApiError(404, "Not found")
        if call.request.query_value("type") == "signed":
            raise ApiError(404, "Not found")  # no signature was ever uploaded here
        pdf = doc.pdf
        if (call.request.query_value("format") or "").lower() == "pdf":
            disposition = f'inline; filename="{pdf.filename}"'.encode("latin-1", "replace")
            return Response(
                200,
                pdf.content,
                "application/pdf",
                [("Content-Disposition", disposition.decode("latin-1"))],
            )
        encoded = base64.b64encode(pdf.content).decode("ascii")
        return _record_response(call, "pdf", pdf_record(doc, pdf, encoded))

    def _create_document(self, call: Call, *, kind: Kind) -> Response:
        data = _root(call, kind.singular)
        party = str(data.get(kind.party_field) or "")
        if not party.isdigit():
            raise ApiError(400, f"{kind.party_field} is required")
        content = None
        if kind.path == "incomings":
            if not data.get("number") or not data.get("date"):
                raise ApiError(400, "number and date are required")
            net = parse_amount(data.get("total_net") or 0, "total_net")
            gross = parse_amount(data.get("total_gross") or net, "total_gross")
            if data.get("base64file"):
                try:
                    content = base64.b64decode(str(data["base64file"]), validate=True)
                except (binascii.Error, ValueError) as e:
                    raise ApiError(400, "base64file is not valid base64") from e
        else:
            net, gross = _item_totals(data.get(f"{kind.singular}-items"), kind)
        try:
            doc = self._add_document(call, kind, data, int(party), net, gross, content)
        except NotFound as e:
            raise ApiError(400, f"{kind.party_field} {party} does not exist") from e
        record = self._store.document_record(call.tenant.billomat_id, kind.path, doc.id)
        return _record_response(call, kind.singular, record, status=201)

    def _add_document(
        self,
        call: Call,
        kind: Kind,
        data: Mapping[str, Any],
        party_id: int,
        net: Decimal,
        gross: Decimal,
        content: bytes | None,
    ) -> Document:
        when = data.get("date")
        return self._store.add_document(
            call.tenant.billomat_id,
            kind.path,
            status="DRAFT" if kind.has_drafts else kind.completed_status,
            number=str(data["number"]) if data.get("number") else None,
            date_=parse_date(when, "date") if when else self._store.now().astimezone(BERLIN).date(),
            party_id=party_id,
            party_name="",
            total_net=net,
            total_gross=gross,
            currency_code=str(data.get("currency_code") or "EUR"),
            content=content,
            title=str(data.get("title") or data.get("subject") or ""),
            label=str(data.get("label") or ""),
            note=str(data.get("note") or ""),
            intro=str(data.get("intro") or ""),
        )

    def _update_document(self, call: Call, id: str, *, kind: Kind) -> Response:
        data = _root(call, kind.singular)
        doc = self._store.document(call.tenant.billomat_id, kind.path, _id(id))
        if kind.has_drafts and doc.status != "DRAFT":
            # Most write operations are only allowed while DRAFT (billomat.md §10.14).
            raise ApiError(400, f"The {kind.singular} can only be edited as long as it is a draft.")
        changes: dict[str, Any] = {}
        for key in ("title", "label", "note", "intro", "currency_code", "date"):
            if key in data:
                changes[key] = data[key]
        if kind.party_field in data:
            party = str(data[kind.party_field])
            if not party.isdigit():
                raise ApiError(400, f"{kind.party_field} must be an id")
            changes["party_id"] = int(party)
        try:
            self._store.update_document(call.tenant.billomat_id, kind.path, doc.id, **changes)
        except NotFound as e:  # the document exists (read above): it is the new client
            raise ApiError(400, f"{kind.party_field} does not exist") from e
        record = self._store.document_record(call.tenant.billomat_id, kind.path, doc.id)
        return _record_response(call, kind.singular, record)

    def _delete_document(self, call: Call, id: str, *, kind: Kind) -> Response:
        self._store.delete_document(call.tenant.billomat_id, kind.path, _id(id))
        return Response(200)

    def _complete(self, call: Call, id: str, *, kind: Kind) -> Response:
        self._store.complete(call.tenant.billomat_id, kind.path, _id(id))
        return Response(200)  # the action's body is empty (observed: clients ignore it)


# --- helpers --------------------------------------------------------------------------------


def _phrase(status: int) -> str:
    return {500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")


def _error(fmt: Format, status: int, *messages: str) -> Response:
    return Response(status, render_errors(fmt, messages), fmt.content_type)


def _with_quota(response: Response, quota: WindowState) -> Response:
    response.headers += [
        ("X-Rate-Limit-Remaining", str(quota.remaining)),
        ("X-Rate-Limit-Reset", str(quota.reset_epoch)),
    ]
    return response


def _authorized(tenant: Tenant, request: Request) -> bool:
    key = request.header("X-BillomatApiKey") or request.query_value("api_key")
    return bool(key) and key == tenant.api_key


def _id(text: str) -> int:
    if not text.isdigit():
        raise NotFound(text)
    return int(text)


def _root(call: Call, name: str) -> Mapping[str, Any]:
    """The body's single root object, ``{"client":{…}}`` / ``<client>…</client>``."""
    payload = parse_body(call.request)
    data = payload.get(name)
    if not isinstance(data, Mapping):
        raise ApiError(400, f"The request body must contain one {name} element.")
    return data


def _record_response(call: Call, root: str, record: Record, *, status: int = 200) -> Response:
    return Response(status, render_record(call.fmt, root, record), call.fmt.content_type)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_value(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ApiError(400, f"Invalid value for {name}: {raw}")
    return int(raw)


def _list_response(call: Call, records: Sequence[Record], plural: str, singular: str) -> Response:
    request = call.request
    page = _int_param(request, "page", 1)
    # Above the maximum the page size is capped rather than refused (unconfirmed); the
    # envelope's @per_page shows the size actually used.
    per_page = min(_int_param(request, "per_page", 100), _MAX_PER_PAGE)
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


def _substring_filter(
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


def _filter_documents(request: Request, kind: Kind, records: Sequence[Record]) -> list[Record]:
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
    return _substring_filter(request, result, ("label", "intro", "note"))


def _as_date(value: Value) -> date:
    return value if isinstance(value, date) else date.min


def _parse_metadata(raw: object) -> list[tuple[str, str]]:
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


def _item_totals(raw: object, kind: Kind) -> tuple[Decimal, Decimal]:
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
