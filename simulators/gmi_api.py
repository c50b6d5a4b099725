"""GetMyInvoices v3 REST surface under ``/accounts/v3``: auth, limits, parameters and resources.

Pipeline per request: count → latency → injected failure → API key → per-minute/per-day limits →
permission → content type → parameters (query string and JSON body merged) → route → maybe drop
the answer. Handlers raise :class:`Rejected` for the 422 catalogue (getmyinvoices.md §2.2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from simulators.clock import parse_berlin_local
from simulators.counting import RequestCounter
from simulators.faults import FaultInjector
from simulators.formats import php_json
from simulators.gmi_model import (
    COUNTRIES,
    DOCUMENT_TYPES,
    PAYMENT_METHODS,
    PAYMENT_STATUSES,
    Account,
    GmiDocument,
    GmiStore,
    company_record,
    document_record,
    workflow_details,
)
from simulators.http import WRITE_METHODS, Request, Response, Router, html_error
from simulators.pdf import is_pdf, looks_like_eml
from simulators.ratelimit import FixedWindowCounter

BASE_PATH = "/accounts/v3"

ERROR_TEXTS = {
    100: "An unexpected error occurred.",
    101: "File type not supported.",
    102: "Required parameters not set.",
    103: "file_content: Wrong encoding. Must be base64 encoding.",
    104: "Invalid Date Format. Must be in format Y-m-d.",
    105: "Hourly upload limit of {limit} documents reached.",
    106: "Invalid Document Prim UID.",
    107: "Net amount must be numeric.",
    108: "Gross amount must be numeric.",
    109: "VAT must be numeric.",
    110: "VAT must be positive value.",
    112: "Invalid payment status.",
    113: "Invalid company.",
    114: "Company name parameter not set.",
    115: "Company country parameter not set.",
    116: "Company name already exists.",
    117: "Company country not found.",
    121: "Company name OR company country OR company Tags is not set.",
    125: "Company is not custom company.",
    127: "Document already exists in account.",
    129: "Company is having documents.",
    131: "Company not found.",
    133: "Invalid Is Archived, must be either 1 or 0.",
    134: "Document ID must be numeric.",
    135: "Invalid Document.",
    136: "No input meta data found to update.",
    137: "Invalid Due Date Format. Must be in format Y-m-d..",
    138: "Invalid payment method.",
    139: "Invalid company Prim UID.",
    140: "Invalid Date Format. Must be in format Y-m-d H:i:s.",
    141: "File content or file url must be set.",
    146: "Invalid document type.",
    147: "Document is locked.",
}

_YMD = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YMD_HIS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_BRACKETS = re.compile(r"^([^\[\]]+)\[([^\[\]]*)\]$")
_MAX_PER_PAGE = 500


class Rejected(Exception):
    """A 422 answer with one of the documented error codes."""

    def __init__(self, code: int, detail: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail or ERROR_TEXTS.get(code, ERROR_TEXTS[100])


@dataclass(frozen=True)
class Call:
    request: Request
    account: Account
    params: dict[str, Any]


@dataclass
class GmiOptions:
    records_as_object: bool = False  # PHP's keyed-array quirk for the list's "records"
    error_shape: str = "spec"  # "spec": {success,detail,error_code}; "errors": {success,errors[]}


def _code_body(status: int, code: int, detail: str) -> Response:
    return Response(status, php_json({"code": code, "detail": detail}), "application/json")


def _ok(payload: Any) -> Response:
    return Response(200, php_json(payload), "application/json")


def php_params(query: list[tuple[str, str]]) -> dict[str, Any]:
    """Query pairs the way PHP reads them: ``tagFilter[]=a&tagFilter[]=b`` → a list."""
    result: dict[str, Any] = {}
    for key, value in query:
        m = _BRACKETS.match(key)
        if m is None:
            result[key] = value
            continue
        existing = result.get(m.group(1))
        if isinstance(existing, list):
            existing.append(value)
        else:
            result[m.group(1)] = [value]
    return result


class GmiApi:
    """Answers real-API requests against a :class:`GmiStore`."""

    def __init__(
        self,
        store: GmiStore,
        faults: FaultInjector,
        counter: RequestCounter,
        limiter: FixedWindowCounter,
        options: GmiOptions,
    ) -> None:
        self._store = store
        self._faults = faults
        self._counter = counter
        self._limiter = limiter
        self.options = options
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", "/apiStatus", lambda call: _ok({"success": True})),
            ("GET", "/account", self._account),
            ("GET", "/documents", self._list_documents),
            ("POST", "/documents", self._upload),
            ("POST", "/documents/exists", self._exists),
            ("GET", "/documents/{documentUid}", self._get_document),
            ("PUT", "/documents/{documentUid}", self._update_document),
            ("DELETE", "/documents/{documentUid}", self._delete_document),
            ("GET", "/companies", self._list_companies),
            ("POST", "/companies", self._create_company),
            ("GET", "/companies/{companyUid}", self._get_company),
            ("PUT", "/companies/{companyUid}", self._update_company),
            ("DELETE", "/companies/{companyUid}", self._delete_company),
            ("GET", "/tags", self._tags),
            ("GET", "/countries", self._countries),
            ("GET", "/currencies", lambda call: _ok(_CURRENCIES)),
            ("GET", "/vatRates", lambda call: _ok({"success": True, "data": _VAT_RATES})),
        ]
        self._router = Router(routes)

    # --- pipeline ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path != BASE_PATH and not request.path.startswith(BASE_PATH + "/"):
            return _code_body(404, 404, "Not Found")
        sub = request.path[len(BASE_PATH) :] or "/"
        match = self._router.match(request.method, sub)
        api_key = request.header("X-API-KEY") or ""
        self._counter.count(api_key, f"{request.method} {match.template if match else sub}")

        delay = self._faults.latency
        if delay:
            time.sleep(delay)
        failure = self._faults.failure_for(request.method, request.path)
        if failure is not None:
            if failure.html:
                return html_error(failure.status)
            if failure.status == 503:
                return _code_body(503, 503, "Temporary Issue. Please retry in a few minutes.")
            return _code_body(failure.status, failure.status, "An unexpected error occurred.")

        account = self._store.find_account(api_key)
        if account is None:
            return _code_body(403, 403, "API Key does not exist")
        if account.blocked:
            return _code_body(403, 407, "API Key is blocked.")
        if account.cancelled:
            return _code_body(403, 431, "Account is cancelled.")
        limited = self._take_call(account)
        if limited is not None:
            return limited
        if account.read_only and request.method in WRITE_METHODS:
            return _code_body(403, 430, "You do not have required permission.")
        if request.method in WRITE_METHODS and request.content_type != "application/json":
            return _code_body(415, 415, "Request content-type is not valid.")
        if match is None:
            return _code_body(404, 404, "Not Found")
        if match.route is None:
            return _code_body(405, 405, "Method Not Allowed")

        params = php_params(request.query)
        if request.body.strip():
            # GET with a JSON body is normal here (official PHP SDK); the body wins over the
            # query string when both name a parameter. A GET without the JSON content type
            # is still read, leniently (unconfirmed).
            try:
                body = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return _code_body(400, 400, "Request body is not valid JSON.")
            if not isinstance(body, dict):
                return _code_body(400, 400, "Request body must be a JSON object.")
            params.update(body)
        try:
            response = match.route.handler(Call(request, account, params), **match.params)
        except Rejected as e:
            if e.code == 105:
                self._counter.count_limited(api_key)
            response = self._rejected(e)
        if 200 <= response.status < 300 and self._faults.should_drop(request.method, request.path):
            return Response.dropped()
        if 200 <= response.status < 300:
            hold = self._faults.hold_after(request.method, request.path)
            if hold:
                time.sleep(hold)
        return response

    def _take_call(self, account: Account) -> Response | None:
        """Count the call against the minute and day windows, or answer the limit error.

        A refused call does not use up quota in either window.
        """
        limits = account.limits
        with self._store.locked():
            minute = self._limiter.peek(
                (account.api_key, "minute"), limits.per_minute, limits.minute_seconds
            )
            day = self._limiter.peek((account.api_key, "day"), limits.per_day, limits.day_seconds)
            if minute.allowed and day.allowed:
                self._limiter.add((account.api_key, "minute"), limits.minute_seconds)
                self._limiter.add((account.api_key, "day"), limits.day_seconds)
                return None
        self._counter.count_limited(account.api_key)
        if not minute.allowed:
            detail = f"API call limit of {limits.per_minute} calls per minute exceeded."
        else:
            detail = f"API call limit of {limits.per_day} calls per day exceeded."
        return _code_body(limits.rate_limit_status, 429, detail)

    def _rejected(self, error: Rejected) -> Response:
        if self.options.error_shape == "errors":
            payload: dict[str, Any] = {
                "success": False,
                "errors": [{"code": error.code, "detail": error.detail}],
            }
        else:
            payload = {"success": False, "detail": error.detail, "error_code": error.code}
        return Response(422, php_json(payload), "application/json")

    # --- documents ----------------------------------------------------------------------------

    def _list_documents(self, call: Call) -> Response:
        p = call.params
        company = _int(p, "companyFilter", 0)
        archived = _int(
            p, "archivedFilter", 0
        )  # server default assumed 0 (not archived), like the UI
        if archived not in (0, 1, 2):
            raise Rejected(100)
        doc_type = _text(p, "documentTypeFilter")
        if doc_type and doc_type not in DOCUMENT_TYPES:
            raise Rejected(146)
        number = _text(p, "documentNumberFilter").lower()
        note = _text(p, "noteFilter").lower()
        start = _ymd(p.get("startDateFilter"), 104)
        end = _ymd(p.get("endDateFilter"), 104)
        excluded = {_as_int(v) for v in _list(p.get("documentUidExclusionFilter"))}
        uid_start = _int(p, "documentUidStartFilter", 0)
        since = _since(p.get("updatedOrNewSinceFilter"))
        tags = [str(t) for t in _list(p.get("tagFilter")) if str(t)]
        payment = _text(p, "paymentStatusFilter") or "all"
        if payment not in _PAYMENT_FILTERS:
            raise Rejected(112)
        page = max(1, _int(p, "pageNumber", 1))
        per_page = _int(p, "perPage", _MAX_PER_PAGE)
        # Out-of-range page sizes are clamped to 1..500 (unconfirmed; newer clients say 1–500).
        per_page = min(max(per_page, 1), _MAX_PER_PAGE)

        def wanted(doc: GmiDocument) -> bool:
            if company == -1 and doc.company_uid is not None:
                return False
            if company > 0 and doc.company_uid != company:
                return False
            if (archived == 0 and doc.is_archived) or (archived == 2 and not doc.is_archived):
                return False
            if doc_type and doc.document_type != doc_type:
                return False
            # Text filters behave like searches: case-insensitive substrings (MySQL LIKE).
            if number and number not in doc.document_number.lower():
                return False
            if note and note not in doc.note.lower():
                return False
            if start and (doc.document_date is None or doc.document_date < start):
                return False
            if end and (doc.document_date is None or doc.document_date > end):
                return False
            if doc.uid in excluded or doc.uid <= uid_start:
                return False
            # Whole seconds, inclusive: a change in the same second as the filter is returned
            # again rather than lost (unconfirmed; clients must dedupe either way).
            if since is not None and doc.updated_at < since:
                return False
            # Several tags: the document must carry every one (AND; unconfirmed). A client that
            # wants "any of" asks once per tag or filters locally, which works either way.
            if any(tag not in doc.tags for tag in tags):
                return False
            return payment == "all" or _PAYMENT_FILTERS[payment] == doc.payment_status

        with self._store.locked():
            account = call.account
            # Newest first, like the web app (unconfirmed): documents arriving while a client
            # pages shift the later pages, as they would on a live account.
            matching = sorted(
                (d for d in account.documents.values() if wanted(d)),
                key=lambda d: d.uid,
                reverse=True,
            )
            offset = (page - 1) * per_page
            records = [document_record(account, d) for d in matching[offset : offset + per_page]]
        amounts = [d.gross_amount for d in matching if d.gross_amount is not None]
        envelope: dict[str, Any] = {
            "totalCount": len(matching),
            # Unconfirmed meaning; read here as the largest gross amount of the result (the
            # spec example equals totalCount, /portals shows 0).
            "maxAmount": float(max(amounts)) if amounts else 0,
            "offset": offset,
            "maxPages": math.ceil(len(matching) / per_page),
            "records": records,
        }
        if self.options.records_as_object:
            # PHP json_encode of a uid-keyed array; an empty array still encodes as [].
            envelope["records"] = {str(r["documentUid"]): r for r in records} if records else []
        return _ok(envelope)

    def _find(self, call: Call, raw: str, code: int) -> GmiDocument:
        if not raw.isdigit():
            raise Rejected(code)
        with self._store.locked():
            doc = call.account.documents.get(int(raw))
        if doc is None:
            raise Rejected(code)
        return doc

    def _get_document(self, call: Call, documentUid: str) -> Response:
        doc = self._find(call, documentUid, 106)
        p = call.params
        with self._store.locked():
            meta = document_record(call.account, doc)
            content = doc.content
            text = doc.readable_text
            if _flag(p, "loadLineItems", default=False):
                meta["lineItems"] = list(doc.line_items)
            if _flag(p, "transactions", default=True):
                meta["transactions"] = {"totalCount": 0, "records": []}
            # documentApproval defaults to true (the parameter reads as an opt-out);
            # workflowDetails is null when no workflow is assigned to the document.
            if _flag(p, "documentApproval", default=True):
                meta["workflowDetails"] = workflow_details(doc)
        payload: dict[str, Any] = {"meta_data": meta}
        if _flag(p, "includeDocument", default=True):
            payload["fileContent"] = base64.b64encode(content).decode("ascii")
        if _flag(p, "readableText", default=False):
            payload["readableContent"] = text
        return _ok(payload)

    def _upload(self, call: Call) -> Response:
        p = call.params
        file_name = _text(p, "fileName")
        raw_content = p.get("fileContent")
        if raw_content in (None, ""):
            raise Rejected(141)
        if not file_name or not _text(p, "documentType"):
            raise Rejected(102)
        content = _b64(raw_content)
        extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
        # Name and bytes must agree: a renamed PNG is not a PDF.
        if not (
            (extension == "pdf" and is_pdf(content))
            or (extension == "eml" and looks_like_eml(content))
        ):
            raise Rejected(101)
        fields = _document_fields(call, p)
        limits = call.account.limits
        now = self._store.now()
        # Built (and hashed) before taking the lock: files can be several MB.
        doc = GmiDocument(
            uid=0,
            document_type=fields.pop("document_type"),
            content=content,
            filename=file_name,
            created_at=now,
            updated_at=now,
            # The optional x-application header names the source; without it "API" is
            # assumed (unconfirmed; uploads in the web app show "Manual").
            source=call.request.header("x-application") or "API",
        )
        for key, value in fields.items():
            setattr(doc, key, value)
        with self._store.locked():
            uploads = self._limiter.peek(
                (call.account.api_key, "uploads"), limits.uploads_per_hour, limits.hour_seconds
            )
            if not uploads.allowed:
                raise Rejected(105, ERROR_TEXTS[105].format(limit=limits.uploads_per_hour))
            if call.account.document_with_hash(doc.sha256) is not None:
                # Identical bytes (sha256 of the decoded file) already in the account.
                raise Rejected(127)
            doc.uid = self._store.next_document_uid()
            self._store.add_document(call.account.api_key, doc)
            self._limiter.add((call.account.api_key, "uploads"), limits.hour_seconds)
        return _ok({"success": True, "documentUid": doc.uid})

    def _update_document(self, call: Call, documentUid: str) -> Response:
        if not documentUid.isdigit():
            raise Rejected(134)
        doc = self._find(call, documentUid, 135)
        present = [k for k in _UPDATE_KEYS if k in call.params]
        if not present:
            raise Rejected(136)
        if doc.is_locked:
            raise Rejected(147)
        fields = _document_fields(call, call.params)
        if "isArchived" in call.params:
            raw = call.params["isArchived"]
            # 0/1, also as strings (the PHP example sends "1"); booleans are not accepted.
            if isinstance(raw, bool) or str(raw) not in ("0", "1"):
                raise Rejected(133)
            fields["is_archived"] = str(raw) == "1"
        self._store.update_document(call.account.api_key, doc.uid, **fields)
        return _ok({"success": True, "documentUid": doc.uid})

    def _delete_document(self, call: Call, documentUid: str) -> Response:
        doc = self._find(call, documentUid, 106)
        self._store.delete_document(call.account.api_key, doc.uid)
        return _ok({"success": True})

    def _exists(self, call: Call) -> Response:
        p = call.params
        file_hash = _text(p, "fileHash").lower()
        if p.get("fileContent") not in (None, ""):
            file_hash = hashlib.sha256(_b64(p["fileContent"])).hexdigest()
        if not file_hash:
            raise Rejected(102)
        # The algorithm is unconfirmed: a 64-digit hash is compared as sha256, a 32-digit one
        # as md5. Deleted documents are gone, so they never count.
        with self._store.locked():
            docs = list(call.account.documents.values())
        exists = any(file_hash in (d.sha256, d.md5) for d in docs)
        return _ok({"success": True, "exists": exists})

    # --- companies and reference data -------------------------------------------------------

    def _list_companies(self, call: Call) -> Response:
        wanted_type = _text(call.params, "companyTypeFilter") or "0"
        with self._store.locked():
            companies = list(call.account.companies.values())
        records = [
            company_record(c, detailed=False)
            for c in companies
            if wanted_type == "0" or c.company_type == wanted_type
        ]
        return _ok(records)  # a bare array, no envelope (live-observed)

    def _company(self, call: Call, raw: str, code: int) -> Any:
        if not raw.isdigit():
            raise Rejected(code)
        with self._store.locked():
            company = call.account.companies.get(int(raw))
        if company is None:
            raise Rejected(code)
        return company

    def _get_company(self, call: Call, companyUid: str) -> Response:
        return _ok(company_record(self._company(call, companyUid, 139), detailed=True))

    def _create_company(self, call: Call) -> Response:
        p = call.params
        name = _text(p, "name").strip()
        if not name:
            raise Rejected(114)
        if p.get("countryUid") in (None, ""):
            raise Rejected(115)
        country = _country(p.get("countryUid"))
        extra = {k: str(p[k]) for k in _COMPANY_FIELDS if k in p}
        with self._store.locked():
            if call.account.company_named(name) is not None:
                raise Rejected(116)  # names are unique per account (case-insensitive here)
            company = self._store.add_company(
                call.account.api_key,
                name,
                country_uid=country,
                tags=[str(t) for t in _list(p.get("tags"))],
                **extra,
            )
        return _ok({"success": True, "companyUid": company.uid, "name": company.name})

    def _update_company(self, call: Call, companyUid: str) -> Response:
        company = self._company(call, companyUid, 131)
        if company.company_type != "CUSTOM_COMPANY":
            raise Rejected(125)
        p = call.params
        if not any(k in p for k in ("name", "countryUid", "tags")):
            raise Rejected(121)
        with self._store.locked():
            if "name" in p:
                name = _text(p, "name").strip()
                other = call.account.company_named(name)
                if not name or (other is not None and other.uid != company.uid):
                    raise Rejected(116)
                company.name = name
            if "countryUid" in p:
                company.country_uid = _country(p["countryUid"])
            if "tags" in p:
                company.tags = [str(t) for t in _list(p["tags"])]
            company.fields.update({k: str(p[k]) for k in _COMPANY_FIELDS if k in p})
        return _ok({"success": True, "companyUid": company.uid, "name": company.name})

    def _delete_company(self, call: Call, companyUid: str) -> Response:
        company = self._company(call, companyUid, 131)
        if company.company_type != "CUSTOM_COMPANY":
            raise Rejected(125)
        with self._store.locked():
            if any(d.company_uid == company.uid for d in call.account.documents.values()):
                raise Rejected(129)
            call.account.companies.pop(company.uid, None)
        return _ok({"success": True})

    def _tags(self, call: Call) -> Response:
        return _ok({"success": True, "data": self._store.all_tags(call.account.api_key)})

    def _countries(self, call: Call) -> Response:
        return _ok(
            [
                {
                    "countryUid": uid,
                    "name": name,
                    "translations": {"en_us": name, "de_de": german},
                    "countryCode": code,
                    "vat": vat,
                    "is_eu": eu,
                }
                for uid, name, german, code, vat, eu in COUNTRIES
            ]
        )

    def _account(self, call: Call) -> Response:
        account = call.account
        return _ok({"name": account.name, "accountId": account.account_id, "profileImage": ""})


# --- parameter parsing ------------------------------------------------------------------------

_PAYMENT_FILTERS = {"paid": "Paid", "not_paid": "Not paid", "unknown": "Unknown", "all": ""}
_CURRENCIES = [
    {"name": "Euro", "currencyCode": "EUR"},
    {"name": "US Dollar", "currencyCode": "USD"},
    {"name": "Swiss Franc", "currencyCode": "CHF"},
    {"name": "Pound Sterling", "currencyCode": "GBP"},
]
_VAT_RATES = ["0.00", "7.00", "19.00", "20.00", "21.00"]
_COMPANY_FIELDS = (
    "street", "zip", "city", "email", "phone", "fax", "taxNumber", "vatId",
    "commercialRegister", "iban", "bic", "url", "note",
)  # fmt: skip
_UPDATE_KEYS = (
    "documentType", "documentNumber", "documentDate", "documentDueDate", "companyId",
    "netAmount", "grossAmount", "vat", "taxRates", "currency", "paymentStatus", "paymentMethod",
    "paidAt", "cashDiscountDate", "cashDiscountValue", "tags", "note", "isArchived", "lineItems",
    "orderNumber",
)  # fmt: skip


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    return "" if value is None else str(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise Rejected(100)
    try:
        return int(str(value).strip())
    except ValueError:
        raise Rejected(100) from None


def _int(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    return default if value in (None, "") else _as_int(value)


def _flag(params: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]  # a scalar where an array is expected is read as one element, PHP-style


def _ymd(value: Any, code: int) -> date | None:
    if value in (None, ""):
        return None
    text = str(value)
    if not _YMD.match(text):
        raise Rejected(code)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Rejected(code) from None


def _since(value: Any) -> datetime | None:
    """``Y-m-d H:i:s`` read as Europe/Berlin wall time, the server's likely zone (unconfirmed)."""
    if value in (None, ""):
        return None
    text = str(value)
    if not _YMD_HIS.match(text):
        raise Rejected(140)  # a plain Y-m-d is refused (live-observed)
    try:
        return parse_berlin_local(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise Rejected(140) from None


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise Rejected(103)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(103) from None


def _amount(value: Any, code: int) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Rejected(code)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise Rejected(code) from None
    if not amount.is_finite():
        raise Rejected(code)
    return amount


def _country(value: Any) -> int:
    uid = _as_int(value)
    if not any(c[0] == uid for c in COUNTRIES):
        raise Rejected(117)
    return uid


def _document_fields(call: Call, p: Mapping[str, Any]) -> dict[str, Any]:
    """Validated document metadata from upload/update parameters, as GmiDocument attributes."""
    fields: dict[str, Any] = {}
    if "documentType" in p:
        if p["documentType"] not in DOCUMENT_TYPES:
            raise Rejected(146)
        fields["document_type"] = p["documentType"]
    if "companyId" in p and p["companyId"] not in (None, "", 0, "0"):
        company_uid = _as_int(p["companyId"]) if str(p["companyId"]).isdigit() else -1
        if company_uid not in call.account.companies:
            raise Rejected(113)
        fields["company_uid"] = company_uid
    for key, attr, code in (
        ("documentDate", "document_date", 104),
        ("documentDueDate", "due_date", 137),
        ("paidAt", "paid_at", 104),
    ):
        if key in p:
            fields[attr] = _ymd(p[key], code)
    if "cashDiscountDate" in p:
        _ymd(p["cashDiscountDate"], 104)
    for key, attr, code in (("netAmount", "net_amount", 107), ("grossAmount", "gross_amount", 108)):
        if key in p:
            fields[attr] = _amount(p[key], code)
    if "vat" in p:
        rates = [_amount(v, 109) for v in _list(p["vat"])]
        if any(r is not None and r < 0 for r in rates):
            raise Rejected(110)
        fields["vat"] = rates[0] if rates else None
    if "taxRates" in p:
        rates = [_amount(v, 109) for v in _list(p["taxRates"])]
        fields["tax_rates"] = [r for r in rates if r is not None]
    if "paymentStatus" in p:
        if p["paymentStatus"] not in PAYMENT_STATUSES:
            raise Rejected(112)
        fields["payment_status"] = p["paymentStatus"]
    if "paymentMethod" in p and p["paymentMethod"] not in (None, ""):
        if p["paymentMethod"] not in PAYMENT_METHODS:
            raise Rejected(138)
        fields["payment_method"] = p["paymentMethod"]
    for key, attr in (
        ("documentNumber", "document_number"),
        ("currency", "currency"),
        ("note", "note"),
        ("orderNumber", "order_number"),
    ):
        if key in p:
            fields[attr] = _text(p, key)
    if "tags" in p:
        # Tags replace the document's tags (the wording "Tags (Array)"); [] clears them.
        fields["tags"] = [str(t) for t in _list(p["tags"]) if str(t)]
    if "lineItems" in p:
        items = p["lineItems"]
        if isinstance(items, str):  # the PHP SDK sends a JSON-encoded string
            try:
                items = json.loads(items)
            except json.JSONDecodeError:
                raise Rejected(100) from None
        fields["line_items"] = [dict(i) for i in _list(items) if isinstance(i, dict)]
    return fields
