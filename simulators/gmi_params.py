"""GMI requests in: the 422 catalogue, PHP-style parameters and their validation.

Handlers raise :class:`Rejected` for the documented failure codes (getmyinvoices.md §2.2) and
read parameters through the helpers here, so every endpoint refuses bad input the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from simulators.clock import parse_berlin_local
from simulators.formats import php_json
from simulators.gmi_model import (
    COUNTRIES,
    DOCUMENT_TYPES,
    PAYMENT_METHODS,
    PAYMENT_STATUSES,
    Account,
)
from simulators.http import Request, Response

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

YMD = re.compile(r"^\d{4}-\d{2}-\d{2}$")
YMD_HIS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
BRACKETS = re.compile(r"^([^\[\]]+)\[([^\[\]]*)\]$")
MAX_PER_PAGE = 500


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


def code_body(status: int, code: int, detail: str) -> Response:
    return Response(status, php_json({"code": code, "detail": detail}), "application/json")


def ok(payload: Any) -> Response:
    return Response(200, php_json(payload), "application/json")


def php_params(query: list[tuple[str, str]]) -> dict[str, Any]:
    """Query pairs the way PHP reads them: ``tagFilter[]=a&tagFilter[]=b`` → a list."""
    result: dict[str, Any] = {}
    for key, value in query:
        m = BRACKETS.match(key)
        if m is None:
            result[key] = value
            continue
        existing = result.get(m.group(1))
        if isinstance(existing, list):
            existing.append(value)
        else:
            result[m.group(1)] = [value]
    return result


PAYMENT_FILTERS = {"paid": "Paid", "not_paid": "Not paid", "unknown": "Unknown", "all": ""}
CURRENCIES = [
    {"name": "Euro", "currencyCode": "EUR"},
    {"name": "US Dollar", "currencyCode": "USD"},
    {"name": "Swiss Franc", "currencyCode": "CHF"},
    {"name": "Pound Sterling", "currencyCode": "GBP"},
]
VAT_RATES = ["0.00", "7.00", "19.00", "20.00", "21.00"]
COMPANY_FIELDS = (
    "street", "zip", "city", "email", "phone", "fax", "taxNumber", "vatId",
    "commercialRegister", "iban", "bic", "url", "note",
)  # fmt: skip
UPDATE_KEYS = (
    "documentType", "documentNumber", "documentDate", "documentDueDate", "companyId",
    "netAmount", "grossAmount", "vat", "taxRates", "currency", "paymentStatus", "paymentMethod",
    "paidAt", "cashDiscountDate", "cashDiscountValue", "tags", "note", "isArchived", "lineItems",
    "orderNumber",
)  # fmt: skip


def text_param(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    return "" if value is None else str(value)


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise Rejected(100)
    try:
        return int(str(value).strip())
    except ValueError:
        raise Rejected(100) from None


def int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    return default if value in (None, "") else as_int(value)


def flag_param(params: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]  # a scalar where an array is expected is read as one element, PHP-style


def date_param(value: Any, code: int) -> date | None:
    if value in (None, ""):
        return None
    text = str(value)
    if not YMD.match(text):
        raise Rejected(code)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Rejected(code) from None


def since_param(value: Any) -> datetime | None:
    """``Y-m-d H:i:s`` read as Europe/Berlin wall time, the server's likely zone (unconfirmed)."""
    if value in (None, ""):
        return None
    text = str(value)
    if not YMD_HIS.match(text):
        raise Rejected(140)  # a plain Y-m-d is refused (live-observed)
    try:
        return parse_berlin_local(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise Rejected(140) from None


def base64_param(value: Any) -> bytes:
    if not isinstance(value, str):
        raise Rejected(103)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(103) from None


def amount_param(value: Any, code: int) -> Decimal | None:
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


def country_param(value: Any) -> int:
    uid = as_int(value)
    if not any(c[0] == uid for c in COUNTRIES):
        raise Rejected(117)
    return uid


def document_fields(call: Call, p: Mapping[str, Any]) -> dict[str, Any]:
    """Validated document metadata from upload/update parameters, as GmiDocument attributes."""
    fields: dict[str, Any] = {}
    if "documentType" in p:
        if p["documentType"] not in DOCUMENT_TYPES:
            raise Rejected(146)
        fields["document_type"] = p["documentType"]
    if "companyId" in p and p["companyId"] not in (None, "", 0, "0"):
        company_uid = as_int(p["companyId"]) if str(p["companyId"]).isdigit() else -1
        if company_uid not in call.account.companies:
            raise Rejected(113)
        fields["company_uid"] = company_uid
    for key, attr, code in (
        ("documentDate", "document_date", 104),
        ("documentDueDate", "due_date", 137),
        ("paidAt", "paid_at", 104),
    ):
        if key in p:
            fields[attr] = date_param(p[key], code)
    if "cashDiscountDate" in p:
        date_param(p["cashDiscountDate"], 104)
    for key, attr, code in (("netAmount", "net_amount", 107), ("grossAmount", "gross_amount", 108)):
        if key in p:
            fields[attr] = amount_param(p[key], code)
    if "vat" in p:
        rates = [amount_param(v, 109) for v in as_list(p["vat"])]
        if any(r is not None and r < 0 for r in rates):
            raise Rejected(110)
        fields["vat"] = rates[0] if rates else None
    if "taxRates" in p:
        rates = [amount_param(v, 109) for v in as_list(p["taxRates"])]
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
            fields[attr] = text_param(p, key)
    if "tags" in p:
        # Tags replace the document's tags (the wording "Tags (Array)"); [] clears them.
        fields["tags"] = [str(t) for t in as_list(p["tags"]) if str(t)]
    if "lineItems" in p:
        items = p["lineItems"]
        if isinstance(items, str):  # the PHP SDK sends a JSON-encoded string
            try:
                items = json.loads(items)
            except json.JSONDecodeError:
                raise Rejected(100) from None
        fields["line_items"] = [dict(i) for i in as_list(items) if isinstance(i, dict)]
    return fields
