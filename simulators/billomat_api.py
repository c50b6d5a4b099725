"""Billomat's REST surface ``/{billomat_id}/api/...``: auth, quota, formats, lists and resources.

Every request passes the same pipeline (count → latency → injected failure → tenant → quota →
auth → route → maybe drop the answer); handlers only translate between HTTP and the store.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
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
from simulators.billomat_params import (
    ApiError,
    Call,
    authorized,
    error_response,
    filter_documents,
    id_param,
    item_totals,
    list_response,
    parse_metadata,
    phrase,
    record_response,
    root,
    substring_filter,
    with_quota,
)
from simulators.billomat_records import inbox_record, pdf_record, stored_metadata
from simulators.billomat_store import BillomatStore
from simulators.clock import BERLIN
from simulators.counting import RequestCounter
from simulators.faults import FaultInjector
from simulators.formats import (
    BodyError,
    Items,
    Record,
    negotiate,
)
from simulators.http import Request, Response, Router, html_error
from simulators.pdf import sniff_mimetype
from simulators.ratelimit import FixedWindowCounter, WindowState, describe_window
from simulators.variants import BillomatBehaviour

# The quota shown to requests for a tenant that does not exist: the documented default.
_DEFAULT_LIMIT, _DEFAULT_WINDOW = 300, 900.0


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
            return error_response(fmt, 404, "Not found")
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
            return with_quota(
                error_response(fmt, failure.status, phrase(failure.status)),
                self._peek(tenant, request),
            )
        if tenant is None:
            # Unknown Billomat id: answered 401 like a wrong key (unconfirmed; the real host would
            # not exist at all). To a client both mean "check the configured id and key", and a
            # 404 would be mistaken for a missing document.
            return with_quota(error_response(fmt, 401, "Unauthorized"), self._peek(None, request))

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
            return with_quota(error_response(fmt, 429, message), quota)
        if not authorized(tenant, request):
            return with_quota(error_response(fmt, 401, "Unauthorized"), quota)
        if match is None:
            return with_quota(error_response(fmt, 404, "Not found"), quota)
        if match.route is None:
            return with_quota(error_response(fmt, 405, "Method not allowed"), quota)

        try:
            call = Call(request, tenant, fmt, self.behaviour)
            response = match.route.handler(call, **match.params)
        except ApiError as e:
            response = error_response(fmt, e.status, *e.messages)
        except NotFound:
            response = error_response(fmt, 404, "Not found")
        except Conflict as e:
            response = error_response(fmt, 400, str(e))
        except (BodyError, ValueError) as e:
            response = error_response(fmt, 400, str(e))
        if 200 <= response.status < 300 and self._faults.should_drop(request.method, request.path):
            return Response.dropped()
        if 200 <= response.status < 300:
            hold = self._faults.hold_after(request.method, request.path)
            if hold:
                time.sleep(hold)
        return with_quota(response, quota)

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
        records = substring_filter(call.request, records, (*filters, "note"))
        plural, singular = ("suppliers", "supplier") if supplier else ("clients", "client")
        return list_response(call, records, plural, singular)

    def _get_client(self, call: Call, id: str, *, supplier: bool = False) -> Response:
        record = self._store.party_record(call.tenant.billomat_id, id_param(id), supplier=supplier)
        return record_response(call, "supplier" if supplier else "client", record)

    def _myself(self, call: Call) -> Response:
        tenant = call.tenant
        record: Record = {
            "id": 1,
            "name": f"{tenant.billomat_id} GmbH",
            "plan": "BUSINESS",
            "quotas": Items("quota", ({"entity": "documents", "available": 0, "used": 0},)),
        }
        return record_response(call, "client", record)

    def _create_client(self, call: Call) -> Response:
        data = root(call, "client")
        fields = {k: str(v) for k, v in data.items() if k in CLIENT_FIELDS}
        client_id = self._store.add_party(
            call.tenant.billomat_id, str(data.get("name", "")), fields
        )
        record = self._store.party_record(call.tenant.billomat_id, client_id)
        return record_response(call, "client", record, status=201)

    def _update_client(self, call: Call, id: str) -> Response:
        data = root(call, "client")
        self._store.update_party(call.tenant.billomat_id, id_param(id), data)
        return record_response(
            call, "client", self._store.party_record(call.tenant.billomat_id, id_param(id))
        )

    def _delete_client(self, call: Call, id: str) -> Response:
        self._store.delete_party(call.tenant.billomat_id, id_param(id))
        return Response(200)

    # --- inbox ----------------------------------------------------------------------------

    def _list_inbox(self, call: Call) -> Response:
        docs = self._store.inbox_documents(call.tenant.billomat_id)
        # The list never carries the file: one GET per document to fetch it (billomat.md §5.1).
        records = [inbox_record(d, None) for d in docs]
        return list_response(call, records, "inbox-documents", "inbox-document")

    def _get_inbox(self, call: Call, id: str) -> Response:
        doc = self._store.inbox_document(call.tenant.billomat_id, id_param(id))
        encoded = base64.b64encode(doc.content).decode("ascii")
        return record_response(call, "inbox-document", inbox_record(doc, encoded))

    def _create_inbox(self, call: Call) -> Response:
        data = root(call, "inbox-document")
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
        metadata = parse_metadata(data.get("metadata"))
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
        return record_response(call, "inbox-document", inbox_record(doc, encoded), status=201)

    def _delete_inbox(self, call: Call, id: str) -> Response:
        self._store.delete_inbox_document(call.tenant.billomat_id, id_param(id))
        return Response(200)

    # --- outgoing documents ---------------------------------------------------------------

    def _list_documents(self, call: Call, *, kind: Kind) -> Response:
        records = self._store.document_records(call.tenant.billomat_id, kind.path)
        records = filter_documents(call.request, kind, records)
        return list_response(call, records, kind.path, kind.singular)

    def _get_document(self, call: Call, id: str, *, kind: Kind) -> Response:
        record = self._store.document_record(call.tenant.billomat_id, kind.path, id_param(id))
        return record_response(call, kind.singular, record)

    def _get_pdf(self, call: Call, id: str, *, kind: Kind) -> Response:
        doc = self._store.document(call.tenant.billomat_id, kind.path, id_param(id))
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
        return record_response(call, "pdf", pdf_record(doc, pdf, encoded))

    def _create_document(self, call: Call, *, kind: Kind) -> Response:
        data = root(call, kind.singular)
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
            net, gross = item_totals(data.get(f"{kind.singular}-items"), kind)
        try:
            doc = self._add_document(call, kind, data, int(party), net, gross, content)
        except NotFound as e:
            raise ApiError(400, f"{kind.party_field} {party} does not exist") from e
        record = self._store.document_record(call.tenant.billomat_id, kind.path, doc.id)
        return record_response(call, kind.singular, record, status=201)

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
        data = root(call, kind.singular)
        doc = self._store.document(call.tenant.billomat_id, kind.path, id_param(id))
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
        return record_response(call, kind.singular, record)

    def _delete_document(self, call: Call, id: str, *, kind: Kind) -> Response:
        self._store.delete_document(call.tenant.billomat_id, kind.path, id_param(id))
        return Response(200)

    def _complete(self, call: Call, id: str, *, kind: Kind) -> Response:
        self._store.complete(call.tenant.billomat_id, kind.path, id_param(id))
        return Response(200)  # the action's body is empty (observed: clients ignore it)


# --- helpers --------------------------------------------------------------------------------
