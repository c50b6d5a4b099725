"""Billomat's data objects: document kinds, tenants, clients, documents with PDFs, inbox documents.

The state lives in :class:`simulators.billomat_store.BillomatStore`; the field sets the API shows
are built in :mod:`simulators.billomat_records` (billomat.md §5–§7).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation


@dataclass(frozen=True)
class Kind:
    """One document resource (``/api/invoices`` …) and the names that differ between them."""

    path: str
    singular: str
    number_field: str | None  # the record field holding the full number ("invoice_number")
    number_filter: str | None  # the list filter on that number
    parent_field: str  # the id field inside the /pdf wrapper
    statuses: tuple[str, ...]
    completed_status: str  # what `complete` sets
    number_prefix: str
    pdf_title: str
    party_field: str = "client_id"

    @property
    def has_drafts(self) -> bool:
        return "DRAFT" in self.statuses


KINDS: dict[str, Kind] = {
    k.path: k
    for k in (
        Kind(
            "invoices", "invoice", "invoice_number", "invoice_number", "invoice_id",
            ("DRAFT", "OPEN", "PAID", "OVERDUE", "CANCELED"), "OPEN", "RE", "Rechnung",
        ),
        Kind(
            # CANCELED is unconfirmed for credit notes; cancel/uncancel exist, so it is allowed.
            "credit-notes", "credit-note", "credit_note_number", "credit_note_number",
            "credit_note_id", ("DRAFT", "OPEN", "PAID", "CANCELED"), "OPEN", "GU", "Gutschrift",
        ),
        Kind(
            "offers", "offer", "offer_number", "offer_number", "offer_id",
            ("DRAFT", "OPEN", "WON", "LOST", "CANCELED", "CLEARED"), "OPEN", "AN", "Angebot",
        ),
        Kind(
            "confirmations", "confirmation", "confirmation_number", "confirmation_number",
            "confirmation_id", ("DRAFT", "COMPLETED", "CANCELED", "CLEARED"), "COMPLETED", "AB",
            "Auftragsbestätigung",
        ),
        Kind(
            "delivery-notes", "delivery-note", "delivery_note_number", "delivery_note_number",
            "delivery_note_id", ("DRAFT", "CREATED"), "CREATED", "LS", "Lieferschein",
        ),
        Kind(
            # The docs name the reminders' number filter invoice_number; the simulator keeps the
            # reminder's own number in that field.
            "reminders", "reminder", "invoice_number", "invoice_number", "reminder_id",
            ("DRAFT", "OPEN", "OVERDUE", "PAID", "CANCELED"), "OPEN", "MA", "Mahnung",
        ),
        Kind(
            "letters", "letter", None, None, "letter_id", ("DRAFT", "COMPLETED"), "COMPLETED",
            "", "Brief",
        ),
        Kind(
            # Incomings are booked, never drafted: no DRAFT, the file comes with the record.
            "incomings", "incoming", "number", "incoming_number", "incoming_id",
            ("OPEN", "PAID", "OVERDUE", "CANCELED"), "OPEN", "ER", "Eingangsrechnung",
            party_field="supplier_id",
        ),
    )
}  # fmt: skip

INBOX_DOCUMENT_TYPES = (
    "BANK_STATEMENT", "CONTRACT", "INVOICE", "REMINDER", "REMITTANCE_SLIP",
    "TRAVEL_EXPENSE_REPORT", "RECEIPT", "FUEL_RECEIPT", "ENERGY", "OTHER",
)  # fmt: skip

CLIENT_FIELDS = (
    "salutation", "first_name", "last_name", "street", "zip", "city", "state", "country_code",
    "phone", "fax", "mobile", "email", "www", "tax_number", "vat_number", "note",
    "client_number", "currency_code", "locale",
)  # fmt: skip


class NotFound(LookupError):
    """The tenant, client or document does not exist."""


class Conflict(ValueError):
    """The operation is not allowed in the object's current state (e.g. completing a non-draft)."""


@dataclass
class Party:
    """A client (or, for incomings, a supplier)."""

    id: int
    created: datetime
    updated: datetime
    name: str
    number: int
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        lines = [self.name]
        person = " ".join(
            p for p in (self.fields.get("first_name", ""), self.fields.get("last_name", "")) if p
        )
        if person:
            lines.append(person)
        if self.fields.get("street"):
            lines.append(self.fields["street"])
        town = " ".join(p for p in (self.fields.get("zip", ""), self.fields.get("city", "")) if p)
        if town:
            lines.append(town)
        return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class PdfFile:
    id: int
    created: datetime
    filename: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class Document:
    id: int
    kind: Kind
    status: str
    number: str  # "" until completed
    date: date
    party_id: int
    title: str
    total_net: Decimal
    total_gross: Decimal
    currency_code: str
    created: datetime
    updated: datetime
    label: str = ""
    note: str = ""
    intro: str = ""
    pdf: PdfFile | None = None


@dataclass(frozen=True)
class InboxDocument:
    id: int
    created: datetime
    updated: datetime
    user_id: int
    filename: str
    mimetype: str
    document_type: str
    content: bytes
    page_count: int
    metadata: tuple[tuple[str, str], ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class Tenant:
    billomat_id: str
    api_key: str
    limit: int
    window_seconds: float
    apps: dict[str, str]
    app_limit: int
    user_id: int
    clients: dict[int, Party] = field(default_factory=dict)
    suppliers: dict[int, Party] = field(default_factory=dict)
    documents: dict[str, dict[int, Document]] = field(
        default_factory=lambda: {path: {} for path in KINDS}
    )
    inbox: dict[int, InboxDocument] = field(default_factory=dict)
    next_number: dict[str, int] = field(default_factory=dict)

    def parties(self, kind: Kind) -> dict[int, Party]:
        return self.suppliers if kind.party_field == "supplier_id" else self.clients


def parse_amount(value: object, name: str) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as e:
        raise ValueError(f"{name} must be a number, got {value!r}") from e
    if not amount.is_finite():
        raise ValueError(f"{name} must be a finite number")
    return amount


def parse_date(value: object, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as e:
        raise ValueError(f"{name} must be YYYY-MM-DD, got {value!r}") from e


def kind_of(path: str) -> Kind:
    try:
        return KINDS[path]
    except KeyError:
        raise ValueError(f"unknown kind {path!r}; one of {sorted(KINDS)}") from None
