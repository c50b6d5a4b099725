"""GetMyInvoices data: accounts (one per API key), their documents and companies.

:class:`GmiStore` is the thread-safe state; ``document_record``/``company_record`` give the v3
field sets with their casing and typing quirks (getmyinvoices.md §5–§7). Each document keeps an
internal ``updated_at`` that is never shown but drives ``updatedOrNewSinceFilter``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from simulators.clock import BERLIN, Clock, now_utc
from simulators.pdf import make_pdf

DOCUMENT_TYPES = (
    "INCOMING_INVOICE", "RECEIPT", "PAYMENT_RECEIPT", "EXPENSE_REIMBURSEMENT", "SALES_INVOICE",
    "CREDIT_NOTE", "STATEMENT", "DELIVERY_NOTE", "ORDER_CONFIRMATION", "PAYROLL",
    "COMPANY_REGISTRATION_DOCUMENT", "MISC", "TRAVEL_EXPENSES", "REMINDER",
)  # fmt: skip
PAYMENT_STATUSES = ("Unknown", "Paid", "Partially", "Not paid")
PAYMENT_METHODS = (
    "bank_transfer", "cash", "check", "direct_debit", "credit", "cc", "paypal", "online_payment",
    "amazon_pay", "apple_pay", "google_pay", "external_receivables_management", "cashbox",
    "offsetting", "other",
)  # fmt: skip

# (countryUid, name, German name, ISO code, standard VAT, EU member)
COUNTRIES = (
    (76, "Germany", "Deutschland", "DE", 19, 1),
    (14, "Austria", "Österreich", "AT", 20, 1),
    (206, "Switzerland", "Schweiz", "CH", 8.1, 0),
    (73, "France", "Frankreich", "FR", 20, 1),
    (150, "Netherlands", "Niederlande", "NL", 21, 1),
    (225, "United Kingdom", "Vereinigtes Königreich", "GB", 20, 0),
    (226, "United States", "Vereinigte Staaten", "US", 0, 0),
)
GERMANY = 76

_DOCUMENT_LABELS = {
    "INCOMING_INVOICE": "Eingangsrechnung",
    "RECEIPT": "Beleg",
    "SALES_INVOICE": "Rechnung",
    "CREDIT_NOTE": "Gutschrift",
    "STATEMENT": "Kontoauszug",
    "TRAVEL_EXPENSES": "Reisekosten",
}


@dataclass
class Limits:
    per_minute: int = 100
    per_day: int = 2500
    uploads_per_hour: int = 100
    minute_seconds: float = 60.0
    day_seconds: float = 86400.0
    hour_seconds: float = 3600.0
    rate_limit_status: int = 403  # documented: 403 with code 429 in the body; or a real 429


@dataclass
class Company:
    uid: int
    name: str
    company_type: str  # CUSTOM_COMPANY or ONLINE_PORTAL
    country_uid: int
    tags: list[str] = field(default_factory=list)
    note: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    supplier_uid: int | None = None


@dataclass
class GmiDocument:
    uid: int
    document_type: str
    content: bytes
    filename: str
    created_at: datetime
    updated_at: datetime
    source: str
    document_number: str = ""
    document_date: date | None = None
    due_date: date | None = None
    company_uid: int | None = None
    order_number: str = ""
    net_amount: Decimal | None = None
    gross_amount: Decimal | None = None
    vat: Decimal | None = None
    tax_rates: list[Decimal] = field(default_factory=list)
    currency: str = "EUR"
    is_archived: bool = False
    is_locked: bool = False
    tags: list[str] = field(default_factory=list)
    note: str = ""
    payment_status: str = "Unknown"
    payment_method: str = ""
    paid_at: date | None = None
    approval: bool | None = None  # None: no workflow; False: pending; True: completed
    line_items: list[dict[str, Any]] = field(default_factory=list)
    readable_text: str = ""
    sha256: str = ""
    md5: str = ""

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.content).hexdigest()
        self.md5 = hashlib.md5(self.content, usedforsecurity=False).hexdigest()


@dataclass
class Account:
    api_key: str
    name: str
    account_id: str
    read_only: bool = False
    blocked: bool = False
    cancelled: bool = False
    limits: Limits = field(default_factory=Limits)
    documents: dict[int, GmiDocument] = field(default_factory=dict)
    companies: dict[int, Company] = field(default_factory=dict)

    def company_named(self, name: str) -> Company | None:
        wanted = name.strip().lower()
        for company in self.companies.values():
            if company.name.strip().lower() == wanted:
                return company
        return None

    def document_with_hash(self, sha256: str) -> GmiDocument | None:
        for doc in self.documents.values():
            if doc.sha256 == sha256:
                return doc
        return None


# Fields update_document accepts, as the Python names of GmiDocument attributes.
UPDATABLE = (
    "document_type", "document_number", "document_date", "due_date", "company_uid",
    "order_number", "net_amount", "gross_amount", "vat", "tax_rates", "currency", "is_archived",
    "is_locked", "tags", "note", "payment_status", "payment_method", "paid_at", "approval",
    "line_items", "filename",
)  # fmt: skip


class GmiStore:
    """All GMI state; every public method is atomic under one lock."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        # uids are global across accounts in the real service; distinct ranges make mix-ups
        # between document and company uids visible.
        self._document_uids = itertools.count(28701)
        self._company_uids = itertools.count(5001)
        self._account_numbers = itertools.count(20707)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def now(self) -> datetime:
        return now_utc(self.clock)

    # --- accounts -----------------------------------------------------------------------------

    def add_account(
        self,
        api_key: str,
        *,
        name: str = "Demo GmbH",
        read_only: bool = False,
        blocked: bool = False,
        cancelled: bool = False,
    ) -> None:
        """Create an account, or change an existing one's flags keeping its data."""
        if not api_key:
            raise ValueError("api_key must not be empty")
        with self._lock:
            account = self._accounts.get(api_key)
            if account is None:
                account = Account(api_key, name, f"G-{next(self._account_numbers)}-0")
                self._accounts[api_key] = account
            account.name = name
            account.read_only, account.blocked, account.cancelled = read_only, blocked, cancelled

    def set_limits(self, api_key: str, limits: Limits) -> None:
        with self._lock:
            self.account(api_key).limits = limits

    def account(self, api_key: str) -> Account:
        with self._lock:
            account = self._accounts.get(api_key)
        if account is None:
            raise KeyError(f"unknown GMI account {api_key[:4]}…")
        return account

    def find_account(self, api_key: str | None) -> Account | None:
        if not api_key:
            return None
        with self._lock:
            return self._accounts.get(api_key)

    # --- companies ----------------------------------------------------------------------------

    def add_company(
        self,
        api_key: str,
        name: str,
        *,
        country_uid: int = GERMANY,
        tags: Sequence[str] = (),
        company_type: str = "CUSTOM_COMPANY",
        **fields: str,
    ) -> Company:
        with self._lock:
            account = self.account(api_key)
            if account.company_named(name) is not None:
                raise ValueError(f"company {name!r} already exists")
            company = Company(
                next(self._company_uids), name, company_type, country_uid, list(tags),
                fields=dict(fields),
            )  # fmt: skip
            account.companies[company.uid] = company
            return company

    def company_for_name(self, api_key: str, name: str) -> Company:
        with self._lock:
            existing = self.account(api_key).company_named(name)
            return existing if existing is not None else self.add_company(api_key, name)

    # --- documents ----------------------------------------------------------------------------

    def next_document_uid(self) -> int:
        with self._lock:
            return next(self._document_uids)

    def add_document(self, api_key: str, doc: GmiDocument) -> None:
        with self._lock:
            self.account(api_key).documents[doc.uid] = doc

    def seed_document(
        self,
        api_key: str,
        *,
        document_type: str,
        document_number: str | None,
        document_date: date | None,
        company_name: str | None,
        tags: Sequence[str],
        net_amount: Decimal | None,
        gross_amount: Decimal | None,
        currency: str,
        content: bytes | None,
        filename: str | None,
        approval: bool | None,
        is_archived: bool,
        is_locked: bool,
        note: str,
    ) -> int:
        if document_type not in DOCUMENT_TYPES:
            raise ValueError(f"unknown document type {document_type!r}")
        with self._lock:
            account = self.account(api_key)
            company = self.company_for_name(api_key, company_name) if company_name else None
            uid = next(self._document_uids)
            label = _DOCUMENT_LABELS.get(document_type, "Dokument")
            title = f"{label} {document_number or uid}"
            lines = [
                company.name if company else "",
                f"Datum: {document_date.isoformat() if document_date else ''}",
                f"Netto: {net_amount if net_amount is not None else '-'} {currency}",
                f"Brutto: {gross_amount if gross_amount is not None else '-'} {currency}",
            ]
            if content is None:
                content = make_pdf(title, lines)
            now = self.now()
            doc = GmiDocument(
                uid=uid,
                document_type=document_type,
                content=content,
                filename=filename or f"{_slug(document_number or f'document-{uid}')}.pdf",
                created_at=now,
                updated_at=now,
                source="Manual",
                document_number=document_number or "",
                document_date=document_date,
                company_uid=company.uid if company else None,
                net_amount=net_amount,
                gross_amount=gross_amount,
                currency=currency,
                is_archived=is_archived,
                is_locked=is_locked,
                tags=list(tags),
                note=note,
                approval=approval,
                readable_text="\n".join([title, *lines]),
            )
            duplicate = account.document_with_hash(doc.sha256)
            if duplicate is not None:
                raise ValueError(f"identical content already stored as document {duplicate.uid}")
            account.documents[uid] = doc
            return uid

    def document(self, api_key: str, uid: int) -> GmiDocument:
        with self._lock:
            doc = self.account(api_key).documents.get(uid)
        if doc is None:
            raise KeyError(f"document {uid} not found")
        return doc

    def update_document(self, api_key: str, uid: int, *, touch: bool = True, **fields: Any) -> None:
        """Change fields (Python names, see ``UPDATABLE``) and bump the hidden ``updated_at``.

        ``touch=False`` leaves ``updated_at`` alone (a change the "updated since" filter misses).
        """
        unknown = set(fields) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}; allowed: {list(UPDATABLE)}")
        with self._lock:
            account = self.account(api_key)
            doc = self.document(api_key, uid)
            if "company_uid" in fields and fields["company_uid"] not in (None, *account.companies):
                raise KeyError(f"company {fields['company_uid']} not found")
            for key, value in fields.items():
                setattr(doc, key, value)
            if touch:
                doc.updated_at = self.now()

    def age_documents(self, api_key: str, seconds: float) -> None:
        """Move every document's creation and modification time ``seconds`` into the past."""
        shift = timedelta(seconds=seconds)
        with self._lock:
            for doc in self.account(api_key).documents.values():
                doc.created_at -= shift
                doc.updated_at -= shift

    def delete_document(self, api_key: str, uid: int) -> None:
        with self._lock:
            if self.account(api_key).documents.pop(uid, None) is None:
                raise KeyError(f"document {uid} not found")

    def documents(self, api_key: str) -> list[GmiDocument]:
        with self._lock:
            return list(self.account(api_key).documents.values())

    def all_tags(self, api_key: str) -> list[str]:
        with self._lock:
            account = self.account(api_key)
            tags = {t for d in account.documents.values() for t in d.tags}
            tags.update(t for c in account.companies.values() for t in c.tags)
        return sorted(tags)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "document"


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _date_text(value: date | None) -> str:
    # Unset dates come back empty (documentDueDate is known to hold non-dates; unconfirmed which).
    return value.isoformat() if value else ""


_PAYMENT_DETAIL_KEYS = (
    "sender_email", "recipient_email", "transaction_id", "card_number", "sepa_creditor_id",
    "sepa_mandate_reference", "purposeOfUsage", "iban", "bic", "accountHolderName",
    "accountNumber", "bank_name", "bank_address", "sort_code", "routing_number", "ifsc_code",
    "routing_code", "cash_discount_date", "cash_discount_value",
)  # fmt: skip


def document_record(account: Account, doc: GmiDocument) -> dict[str, Any]:
    """A list record: numbers as numbers, ``createdAt`` a bare date, no ``updatedAt``."""
    company = account.companies.get(doc.company_uid) if doc.company_uid is not None else None
    return {
        "documentUid": doc.uid,
        "createdAt": doc.created_at.astimezone(BERLIN).date().isoformat(),
        # Unassigned documents: null uid and name (unconfirmed whether 0 or null).
        "companyUid": company.uid if company else None,
        "companyName": company.name if company else None,
        "orderNumber": doc.order_number,
        "documentType": doc.document_type,
        "documentNumber": doc.document_number,
        "documentDate": _date_text(doc.document_date),
        "documentDueDate": _date_text(doc.due_date),
        # Unknown amounts are null, not 0: nothing was read from the document.
        "netAmount": _number(doc.net_amount),
        "vat": _number(doc.vat),
        "vat_id": None,
        "taxRates": [float(r) for r in doc.tax_rates],
        "grossAmount": _number(doc.gross_amount),
        "currency": doc.currency,
        "isArchived": doc.is_archived,
        "isLocked": doc.is_locked,
        "isOcrCompleted": 1,
        "tags": list(doc.tags),
        "note": doc.note,
        "source": doc.source,
        "sourceUser": account.name,
        "filename": doc.filename,
        "fileSize": f"{len(doc.content) / 1024:.2f}",  # a string, apparently KiB
        "paymentStatus": doc.payment_status,
        "paidAt": _date_text(doc.paid_at),
        "supplierUid": company.supplier_uid if company else None,
        "paymentMethod": doc.payment_method,
        "attachments": 0,
        "paymentDetails": dict.fromkeys(_PAYMENT_DETAIL_KEYS, ""),
    }


def workflow_details(doc: GmiDocument) -> dict[str, Any] | None:
    if doc.approval is None:
        return None
    return {
        "currentWorkflow": {"name": "Freigabe-Workflow", "id": 1},
        "currentWorkflowStep": {"name": "Freigabe Buchhaltung", "id": 3},
        "isCompleted": doc.approval,
    }


def company_record(company: Company, *, detailed: bool) -> dict[str, Any]:
    country = next((c for c in COUNTRIES if c[0] == company.country_uid), None)
    record: dict[str, Any] = {
        "companyUid": company.uid,
        "name": company.name,
        "companyType": company.company_type,
        "note": company.note,
        "tags": list(company.tags),
        "supplierUid": company.supplier_uid,
    }
    if detailed:
        for key in ("street", "zip", "city", "email", "phone", "fax", "taxNumber", "vatId"):
            record[key] = company.fields.get(key, "")
        record["country"] = country[1] if country else ""
        for key in ("commercialRegister", "iban", "bic", "url"):
            record[key] = company.fields.get(key, "")
    else:
        record["countryUid"] = company.country_uid
        record["countryCode"] = country[3] if country else ""
        record["portalRecords"] = []
    return record


def document_state(account: Account, doc: GmiDocument) -> dict[str, Any]:
    """Plain-Python snapshot for tests and the control surface (includes hidden fields)."""
    company = account.companies.get(doc.company_uid) if doc.company_uid is not None else None
    return {
        "uid": doc.uid,
        "document_type": doc.document_type,
        "document_number": doc.document_number,
        "document_date": _date_text(doc.document_date) or None,
        "due_date": _date_text(doc.due_date) or None,
        "company_uid": company.uid if company else None,
        "company_name": company.name if company else None,
        "tags": list(doc.tags),
        "is_archived": doc.is_archived,
        "is_locked": doc.is_locked,
        "note": doc.note,
        "approval": doc.approval,
        "source": doc.source,
        "filename": doc.filename,
        "size": len(doc.content),
        "sha256": doc.sha256,
        "net_amount": None if doc.net_amount is None else str(doc.net_amount),
        "gross_amount": None if doc.gross_amount is None else str(doc.gross_amount),
        "currency": doc.currency,
        "payment_status": doc.payment_status,
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
    }


def company_state(company: Company, document_count: int) -> dict[str, Any]:
    return {
        "uid": company.uid,
        "name": company.name,
        "company_type": company.company_type,
        "country_uid": company.country_uid,
        "tags": list(company.tags),
        "note": company.note,
        "documents": document_count,
    }
