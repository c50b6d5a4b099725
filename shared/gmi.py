"""GetMyInvoices (GMI) Accounts API v3 client: documents out (export), PDFs in (import).

``GmiClient`` builds calls, checks answers (the parsers in ``shared.gmi_parsing`` absorb GMI's
varying shapes) and confirms an unexplained 403 with ``GET /apiStatus`` before anyone pauses an
account for it: the spec's example body for its limits is ``{}`` (getmyinvoices.md §2.1).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import requests

from shared.auth import SecretHeaderAuth
from shared.domain import GMI_DOCUMENT_TYPES
from shared.errors import ApiError, ConfigurationError, RateLimitedError
from shared.gmi_parsing import (
    MAX_PER_PAGE,
    Company,
    DocumentPage,
    Failure,
    GmiDocument,
    GmiUpload,
    Workflow,
    format_since,
    is_failure_envelope,
    new_uid,
    next_minute,
    parse_company,
    parse_document_page,
    parse_single_document,
    rate_limit_reset,
    read_failure,
    records_of,
    upload_body,
)
from shared.http import (
    DEFAULT_TIMEOUT,
    ApiHooks,
    Call,
    CallGate,
    ErrorRule,
    Transport,
    confirmation,
    encode_query,
)
from shared.readers import (
    ResponseShapeError,
    describe_body,
    encode_base64,
    json_body,
    read_bool,
)

# Result types live with their parsers; importing them from here is the client's interface.
__all__ = [
    "API",
    "DEFAULT_BASE_URL",
    "MAX_PER_PAGE",
    "Company",
    "DocumentPage",
    "Failure",
    "GmiClient",
    "GmiDocument",
    "GmiUpload",
    "LimitRefusal",
    "Workflow",
    "rate_limit_reset",
    "read_failure",
]

API = "gmi"
DEFAULT_BASE_URL = "https://api.getmyinvoices.com/accounts/v3"


@dataclass(frozen=True)
class LimitRefusal:
    """How GMI refused the call that went over a limit (``provoke_limit``)."""

    calls: int  # calls it took, the refused one included
    status: int
    code: int | None
    detail: str
    rule: ErrorRule  # how the error table reads the answer on its own


# ---------------------------------------------------------------------------------------------
# Client


class GmiClient:
    """Calls one GMI account (one API key). Thread-safe as far as ``requests.Session`` is."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        hooks: ApiHooks | None = None,
        application: str = "belegsync",
        gate: CallGate | None = None,
    ) -> None:
        try:
            auth = SecretHeaderAuth({"X-API-KEY": api_key})
        except ValueError as e:
            raise ConfigurationError(f"unusable GMI API key: {e}", api=API) from None
        self.base_url = base_url.rstrip("/")
        self._transport = Transport(
            API,
            auth=auth,
            session=session,
            timeout=timeout,
            hooks=hooks,
            # Optional header naming the document source (getmyinvoices.md §1.3).
            headers={"x-application": application},
            gate=gate,
        )

    def __repr__(self) -> str:
        return f"GmiClient(base_url={self.base_url!r})"

    def close(self) -> None:
        """Closes the session if this client created it."""
        self._transport.close()

    # --- documents --------------------------------------------------------------------------

    def list_documents_page(
        self,
        *,
        page: int = 1,
        per_page: int | None = None,
        updated_since: datetime | None = None,
        document_type: str | None = None,
        tags: Sequence[str] = (),
        start_date: date | None = None,
        end_date: date | None = None,
        archived: int = 0,
        company: int | None = None,
        document_number: str | None = None,
        uid_start: int | None = None,
    ) -> DocumentPage:
        if page < 1:
            raise ValueError("page starts at 1")
        if per_page is not None and not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")
        if archived not in (0, 1, 2):
            raise ValueError("archived is 0 (not archived), 1 (any) or 2 (only archived)")
        if document_type is not None and document_type not in GMI_DOCUMENT_TYPES:
            raise ValueError(f"unknown GMI document type {document_type!r}")
        params: list[tuple[str, object]] = [("pageNumber", page), ("archivedFilter", archived)]
        if per_page is not None:
            params.append(("perPage", per_page))
        if updated_since is not None:
            params.append(("updatedOrNewSinceFilter", format_since(updated_since)))
        if document_type:
            params.append(("documentTypeFilter", document_type))
        params.extend(("tagFilter[]", tag) for tag in tags)
        if start_date is not None:
            params.append(("startDateFilter", start_date.isoformat()))
        if end_date is not None:
            params.append(("endDateFilter", end_date.isoformat()))
        if company is not None:
            params.append(("companyFilter", company))
        if document_number:
            params.append(("documentNumberFilter", document_number))
        if uid_start is not None:
            params.append(("documentUidStartFilter", uid_start))
        call = self._call("GET", "/documents", params=params)
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            return parse_document_page(body, page, per_page or MAX_PER_PAGE)

    def iter_documents(self, **filters: Any) -> Iterator[GmiDocument]:
        """Every matching document, fetching the next page only when this one is used up.

        Takes the keyword filters of ``list_documents_page`` except ``page``.
        """
        if "page" in filters:
            raise TypeError("iter_documents pages by itself; do not pass page")
        page_no = 1
        while True:
            page = self.list_documents_page(page=page_no, **filters)
            yield from page.records
            if not page.has_more:
                return
            page_no += 1

    def get_document(
        self, uid: int, *, include_file: bool = True, approval: bool = True
    ) -> GmiDocument:
        # 1/0 rather than true/false: PHP reads the string "false" as true.
        params = [
            ("includeDocument", int(include_file)),
            ("documentApproval", int(approval)),
            ("transactions", 0),
        ]
        call = self._call("GET", f"/documents/{int(uid)}", "/documents/{uid}", params=params)
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            return parse_single_document(body, int(uid))

    def upload_document(self, upload: GmiUpload) -> int:
        """The new document's uid; ``DuplicateDocumentError`` if the file is there already."""
        call = self._call("POST", "/documents", body=upload_body(upload))
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            return new_uid(body, "documentUid", "document_prim_uid")

    def document_exists(self, content: bytes) -> bool:
        """Whether a (not deleted) document with exactly this file is in the account."""
        if not content:
            raise ValueError("content is empty")
        call = self._call("POST", "/documents/exists", body={"fileContent": encode_base64(content)})
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            if not isinstance(body, Mapping) or "exists" not in body:
                raise ResponseShapeError("no 'exists' in the answer")
            return read_bool(body["exists"])

    def find_documents_by_number(self, number: str) -> list[GmiDocument]:
        """Documents whose number is exactly ``number``, archived or not.

        ``documentNumberFilter`` is a search (substring), so matches are checked here.
        """
        if not number:
            raise ValueError("number is empty")
        wanted = number.strip()
        return [
            doc
            for doc in self.iter_documents(document_number=wanted, archived=1)
            if doc.document_number == wanted
        ]

    def update_document(
        self,
        uid: int,
        *,
        is_archived: bool | None = None,
        tags: Sequence[str] | None = None,
        note: str | None = None,
    ) -> None:
        body: dict[str, Any] = {}
        if is_archived is not None:
            body["isArchived"] = int(is_archived)
        if tags is not None:
            body["tags"] = list(tags)  # replaces the document's tags (getmyinvoices.md §5.5)
        if note is not None:
            body["note"] = note
        if not body:
            raise ValueError("nothing to update")  # the server would answer 422 code 136
        call = self._call("PUT", f"/documents/{int(uid)}", "/documents/{uid}", body=body)
        # Only success matters here; an empty 200 is taken as one (the update is idempotent).
        self._json(call, allow_empty=True)

    def delete_document(self, uid: int) -> None:
        """Delete a document (``belegsync doctor`` removes its write probe this way)."""
        call = self._call("DELETE", f"/documents/{int(uid)}", "/documents/{uid}")
        self._json(call, allow_empty=True)

    # --- the account and its limits ---------------------------------------------------------

    def api_status(self) -> dict[str, str]:
        """``GET /apiStatus``; returns the rate-limit headers GMI sent (none are documented)."""
        call = self._call("GET", "/apiStatus")
        response = self._transport.send(call)
        self._answer(call, response)
        return {
            name: value
            for name, value in response.headers.items()
            if "rate" in name.lower() or "limit" in name.lower()
        }

    def provoke_limit(self, max_calls: int) -> LimitRefusal | None:
        """Call ``GET /apiStatus`` until GMI refuses one, to see how it says so.

        Spends up to ``max_calls`` calls of the per-minute (and daily) quota: only
        ``belegsync doctor --limit-probe`` does this, on the operator's word.
        """
        call = self._call("GET", "/apiStatus")
        for n in range(1, max_calls + 1):
            response = self._transport.send(call)
            if 200 <= response.status_code < 300:
                continue
            body = json_body(response)
            failure = read_failure(body)
            detail = failure.detail or ("" if body is not None else describe_body(response))
            rule = self._transport.rule_for(response.status_code, failure.code, detail)
            return LimitRefusal(n, response.status_code, failure.code, detail, rule)
        return None

    # --- reference data ---------------------------------------------------------------------

    def list_companies(self) -> list[Company]:
        # 0 = any status / any type; the server defaults are undocumented.
        params = [("statusFilter", 0), ("companyTypeFilter", 0)]
        call = self._call("GET", "/companies", params=params)
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            raw = body.get("records", body.get("data")) if isinstance(body, Mapping) else body
            return [parse_company(r) for r in records_of(raw)]

    def create_company(self, name: str, country_uid: int) -> int:
        """A custom company's uid; names are unique (422 code 116 for a taken one)."""
        if not name.strip():
            raise ValueError("a company needs a name")
        call = self._call(
            "POST", "/companies", body={"name": name.strip(), "countryUid": int(country_uid)}
        )
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            return new_uid(body, "companyUid", "company_id")

    def countries(self) -> list[dict[str, Any]]:
        call = self._call("GET", "/countries")
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            raw = body.get("records", body.get("data")) if isinstance(body, Mapping) else body
            if not isinstance(raw, list | Mapping):
                raise ResponseShapeError("the country list is not a list")
            return [dict(r) for r in records_of(raw)]

    def account(self) -> dict[str, Any]:
        call = self._call("GET", "/account")
        body, status = self._json(call)
        with self._transport.parsing(call, status):
            if not isinstance(body, Mapping):
                raise ResponseShapeError("the account is not a JSON object")
            return dict(body)

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
            # urllib3 percent-encodes the brackets of tagFilter[] whatever we do; PHP decodes a
            # parameter name before it parses brackets, so %5B%5D means the same.
            query=encode_query(params, safe=":"),
            body=body,
            # Every write carries JSON, DELETE an empty {}: otherwise 415 (§1.3).
            send_json=method != "GET",
        )

    def _json(self, call: Call, *, allow_empty: bool = False) -> tuple[Any, int]:
        return self._answer(call, self._transport.send(call), allow_empty=allow_empty)

    def _answer(
        self, call: Call, response: requests.Response, *, allow_empty: bool = False
    ) -> tuple[Any, int]:
        status = response.status_code
        body = json_body(response)
        if 200 <= status < 300:
            if body is None and allow_empty and not response.content.strip():
                return {}, status
            if body is None:
                raise self._transport.malformed(call, status, describe_body(response))
            if not is_failure_envelope(body):
                return body, status
        failure = read_failure(body)
        detail = failure.detail or (describe_body(response) if body is None else "")
        # The failure envelope inside a 2xx reads like the spec's 422 with the same code.
        table_status = 422 if 200 <= status < 300 else None
        rule = self._transport.rule_for(status, failure.code, detail, table_status=table_status)
        reset_at = rate_limit_reset(failure, response)
        if rule.confirm:
            rule, confirmed_reset = self._confirm()
            reset_at = confirmed_reset or reset_at or next_minute(datetime.now(UTC))
        raise self._transport.error(
            call,
            status=status,
            code=failure.code,
            detail=detail,
            reset_at=reset_at,
            rule=rule,
        )

    def _confirm(self) -> tuple[ErrorRule, datetime | None]:
        """Ask ``GET /apiStatus`` what an unexplained 403 meant (getmyinvoices.md §2.1).

        A limit passes; only a key the status call, too, rejects with a reason is a matter
        for the operator. Never itself confirmed: one cheap question, no loop.
        """
        call = self._call("GET", "/apiStatus")
        try:
            response = self._transport.send(call)
        except ApiError:
            return confirmation(API, "unexplained"), None
        body = json_body(response)
        ok = 200 <= response.status_code < 300 and body is not None
        if ok and not is_failure_envelope(body):
            return confirmation(API, "works"), None
        failure = read_failure(body)
        detail = failure.detail or (describe_body(response) if body is None else "")
        rule = self._transport.rule_for(response.status_code, failure.code, detail)
        if rule.confirm or rule.error not in (ConfigurationError, RateLimitedError):
            return confirmation(API, "unexplained"), None
        return rule, rate_limit_reset(failure, response)
