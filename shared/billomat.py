"""Billomat REST client: the inbox (export target) and finished documents with PDFs (import source).

``BillomatClient`` builds calls and checks answers; ``shared.billomat_parsing`` absorbs the
shapes of Billomat's XML-converted JSON. Two unconfirmed points are guarded here: a 403 from
the API is confirmed with ``GET /clients/myself`` before an account is paused, and a refused
``order_by`` falls back to a field the API accepts, learnt once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

import requests

from shared.auth import SecretHeaderAuth
from shared.billomat_parsing import (
    KINDS,
    MAX_PER_PAGE,
    BillomatDocument,
    InboxDocument,
    KindSpec,
    Page,
    Pdf,
    check_paging,
    default_pdf_name,
    error_detail,
    kind_spec,
    normalise_order_by,
    parse_document,
    parse_inbox_document,
    parse_list,
    parse_pdf,
    quota_from,
    rate_limit_reset,
    unwrap,
)
from shared.errors import ApiError, ConfigurationError, PermanentError
from shared.http import (
    DEFAULT_TIMEOUT,
    ApiHooks,
    Call,
    CallGate,
    ErrorRule,
    Quota,
    Transport,
    confirmation,
    encode_query,
)
from shared.readers import ResponseShapeError, describe_body, encode_base64, json_body

# Result types live with their parsers; importing them from here is the client's interface.
__all__ = [
    "API",
    "DOCUMENTS",
    "INBOX",
    "KINDS",
    "MAX_PER_PAGE",
    "BillomatClient",
    "BillomatDocument",
    "InboxDocument",
    "KindSpec",
    "Page",
    "Pdf",
    "parse_document",
]

API = "billomat"
DEFAULT_URL_TEMPLATE = "https://{billomat_id}.billomat.net/api"
BILLOMAT_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# List families and the fields tried, in order, when the API refuses a sort; "" is none at all.
INBOX = "inbox-documents"
DOCUMENTS = "documents"
SORT_FALLBACKS: Mapping[str, tuple[str, ...]] = {
    INBOX: ("id", "created", ""),
    DOCUMENTS: ("id", "created", "date", ""),
}


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
        sort_fields: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        on_sort_learnt: Callable[[str, str], None] | None = None,
        gate: CallGate | None = None,
    ) -> None:
        """``sort_fields``: what an earlier run learnt (see ``sort_field``), or a function
        that reads it when a list call first needs it; ``on_sort_learnt`` is told when a
        rejected ``order_by`` fell back to another field; ``gate`` admits every call first
        (the shared quota book)."""
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
        self._transport = Transport(
            API, auth=auth, session=session, timeout=timeout, hooks=hooks, gate=gate
        )
        self._sort_source = sort_fields
        self._sort_fields_loaded: dict[str, str] | None = None
        self._on_sort_learnt = on_sort_learnt

    def __repr__(self) -> str:
        return f"BillomatClient(billomat_id={self.billomat_id!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Closes the session if this client created it."""
        self._transport.close()

    # --- inbox (export target) --------------------------------------------------------------

    def inbox_page(
        self, page: int = 1, per_page: int = 100, order_by: str | None = None
    ) -> Page[InboxDocument]:
        """One page of the inbox; ``order_by`` falls back as ``sort_field`` explains."""
        check_paging(page, per_page)
        params: list[tuple[str, object]] = [("page", page), ("per_page", per_page)]
        call, body, status = self._list("/inbox-documents", INBOX, params, order_by)
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
            return parse_inbox_document(unwrap(body, "inbox-document"))

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
            return parse_inbox_document(unwrap(body, "inbox-document"))

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
        check_paging(page, per_page)
        params: list[tuple[str, object]] = [("page", page), ("per_page", per_page)]
        if date_from is not None:
            params.append(("from", date_from.isoformat()))
        if date_to is not None:
            params.append(("to", date_to.isoformat()))
        if statuses:
            # Multi-value filters are comma lists, OR-combined (§3.1).
            params.append(("status", ",".join(s.strip().upper() for s in statuses)))
        call, body, status = self._list(f"/{kind}", DOCUMENTS, params, order_by)
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
            return parse_document(kind, unwrap(body, spec.singular))

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

    # --- the account --------------------------------------------------------------------------

    def myself(self) -> dict[str, Any]:
        """``GET /clients/myself``: the account's own data (one call; refreshes ``quota``)."""
        call = self._call("GET", "/clients/myself")
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            return dict(unwrap(body, "client"))

    # --- sorting: order_by=id is sent everywhere but only date/number sorts are documented ----

    def sort_field(self, family: str) -> str | None:
        """The field ``order_by`` uses for ``INBOX`` or ``DOCUMENTS`` lists.

        ``None``: not known yet (the caller's field is tried first); ``""``: the API accepted
        no field we tried, so lists come in the server's default order.
        """
        return self._sort_fields.get(family)

    @property
    def _sort_fields(self) -> dict[str, str]:
        if self._sort_fields_loaded is None:
            source = self._sort_source
            known = source() if callable(source) else source or {}
            self._sort_fields_loaded = {k: v for k, v in known.items() if k in SORT_FALLBACKS}
        return self._sort_fields_loaded

    def _list(
        self,
        path: str,
        family: str,
        params: list[tuple[str, object]],
        order_by: str | None,
    ) -> tuple[Call, Any, int]:
        """A list call whose ``order_by`` falls back to a field the API accepts.

        A 400 to a call with ``order_by`` is tried again with the next field of
        ``SORT_FALLBACKS`` and finally without any; the field that worked is remembered (and
        reported through ``on_sort_learnt``), so this costs extra calls once per account.
        """
        if not order_by:
            call = self._call("GET", path, params=params)
            return (call, *self._json(call))
        clauses = normalise_order_by(order_by).split(",")
        wanted, _, direction = clauses[0].partition(" ")
        learnt = self._sort_fields.get(family)
        if learnt is not None:
            fields = [learnt]
        else:
            rest = SORT_FALLBACKS[family]
            fields = [wanted, *(f for f in rest if f != wanted)]
        first_refusal: PermanentError | None = None
        for field_name in fields:
            ordered = list(params)
            if field_name:
                clause = f"{field_name} {direction}".strip()
                ordered.append(("order_by", ",".join([clause, *clauses[1:]])))
            call = self._call("GET", path, params=ordered)
            try:
                body, status = self._json(call)
            except PermanentError as e:
                if e.status != 400 or learnt is not None:
                    raise
                first_refusal = first_refusal or e
                continue
            if learnt is None:
                self._sort_fields[family] = field_name
                if field_name != wanted and self._on_sort_learnt is not None:
                    self._on_sort_learnt(family, field_name)
            return call, body, status
        assert first_refusal is not None
        raise first_refusal

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
        status = response.status_code
        detail = error_detail(response)
        reset_at = rate_limit_reset(response, detail) if status == 429 else None
        # Every answer of Billomat's own app carries the rate headers (billomat.md §2); one
        # without them came from something in front of the API (a firewall, a proxy).
        origin = "app" if quota is not None else "gateway"
        rule = self._transport.rule_for(status, None, detail, origin=origin)
        if rule.confirm:
            rule = self._confirm()
        note = _size_note(call) if status == 413 else ""
        raise self._transport.error(
            call, status=status, detail=detail, reset_at=reset_at, rule=rule, note=note
        )

    def _confirm(self) -> ErrorRule:
        """Ask ``GET /clients/myself`` whether the key works at all after a 403 from the API.

        Costs one call of the window; never itself confirmed (one question, no loop).
        """
        call = self._call("GET", "/clients/myself")
        try:
            response = self._transport.send(call)
        except ApiError:
            return confirmation(API, "unexplained")
        quota = quota_from(response)
        if quota is not None:
            self.quota = quota
            self._transport.hooks.on_quota(API, quota)
        if 200 <= response.status_code < 300:
            return confirmation(API, "works")
        origin = "app" if quota is not None else "gateway"
        rule = self._transport.rule_for(
            response.status_code, None, error_detail(response), origin=origin
        )
        return confirmation(API, "unexplained") if rule.confirm else rule

    def _json(self, call: Call) -> tuple[Any, int]:
        response = self._send(call)
        body = json_body(response)
        if body is None:
            raise self._transport.malformed(call, response.status_code, describe_body(response))
        return body, response.status_code


def _size_note(call: Call) -> str:
    """What a 413 leaves out: how large the refused request was (the limit stays unknown)."""
    if call.body is None:
        return "the server did not say its limit"
    sent = len(json.dumps(call.body))
    return f"the request body was {sent / 1_000_000:.1f} MB; the server did not say its limit"
