"""Billomat's data: tenants, clients, outgoing documents with their PDFs, inbox documents.

:class:`BillomatStore` is the thread-safe state both the HTTP API and the control methods work on;
the ``*_record`` functions give each object the field set real captures show (billomat.md §5–§7).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from simulators.clock import Clock, now_utc
from simulators.formats import Items, Record, Value
from simulators.pdf import count_pages, make_pdf


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


_NUMBER_RE = re.compile(r"^(.*?)(\d+)$")


def _split_number(number: str) -> tuple[str, str, str]:
    """``RE-0240`` → (number_pre ``RE-``, number ``240``, number_length ``4``)."""
    m = _NUMBER_RE.match(number)
    if not m:
        return number, "", "0"
    digits = m.group(2)
    return m.group(1), str(int(digits)), str(len(digits)) if digits.startswith("0") else "0"


class BillomatStore:
    """All Billomat state; every public method is atomic under one lock."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._tenants: dict[str, Tenant] = {}
        # Separate tables in the real service: ids overlap across kinds, so a client that keys
        # documents by id alone collides (as it would in production).
        self._ids: dict[str, Iterator[int]] = {}
        self._user_ids = itertools.count(58001)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def next_id(self, table: str) -> int:
        with self._lock:
            return next(self._ids.setdefault(table, itertools.count(1001)))

    def now(self) -> datetime:
        return now_utc(self.clock)

    # --- tenants and parties --------------------------------------------------------------

    def add_tenant(
        self,
        billomat_id: str,
        api_key: str,
        *,
        limit: int = 300,
        window_seconds: float = 900.0,
        apps: Mapping[str, str] | None = None,
        app_limit: int = 1000,
    ) -> None:
        """Create a tenant, or reconfigure an existing one keeping its data."""
        if not billomat_id or "/" in billomat_id:
            raise ValueError(f"invalid billomat_id {billomat_id!r}")
        if limit < 0 or app_limit < 0 or window_seconds <= 0:
            raise ValueError("limits must be >= 0 and the window > 0")
        with self._lock:
            existing = self._tenants.get(billomat_id)
            if existing is not None:
                existing.api_key, existing.limit = api_key, limit
                existing.window_seconds, existing.app_limit = window_seconds, app_limit
                existing.apps = dict(apps or {})
                return
            self._tenants[billomat_id] = Tenant(
                billomat_id, api_key, limit, window_seconds, dict(apps or {}), app_limit,
                next(self._user_ids),
            )  # fmt: skip

    def tenant(self, billomat_id: str) -> Tenant:
        with self._lock:
            tenant = self._tenants.get(billomat_id)
        if tenant is None:
            raise NotFound(f"unknown tenant {billomat_id!r}")
        return tenant

    def find_tenant(self, billomat_id: str) -> Tenant | None:
        with self._lock:
            return self._tenants.get(billomat_id)

    def add_party(
        self, billomat_id: str, name: str, fields: Mapping[str, str], *, supplier: bool = False
    ) -> int:
        unknown = set(fields) - set(CLIENT_FIELDS)
        if unknown:
            raise ValueError(f"unknown client fields: {sorted(unknown)}")
        with self._lock:
            tenant = self.tenant(billomat_id)
            table = tenant.suppliers if supplier else tenant.clients
            now = self.now()
            party = Party(
                self.next_id("suppliers" if supplier else "clients"), now, now, name,
                len(table) + 1, {k: str(v) for k, v in fields.items()},
            )  # fmt: skip
            table[party.id] = party
            return party.id

    def update_party(self, billomat_id: str, party_id: int, values: Mapping[str, Any]) -> None:
        with self._lock:
            party = self.tenant(billomat_id).clients.get(party_id)
            if party is None:
                raise NotFound(f"client {party_id} not found")
            for key, value in values.items():
                if key == "name":
                    party.name = str(value)
                elif key in CLIENT_FIELDS:
                    party.fields[key] = str(value)
            party.updated = self.now()

    def delete_party(self, billomat_id: str, party_id: int) -> None:
        with self._lock:
            tenant = self.tenant(billomat_id)
            if party_id not in tenant.clients:
                raise NotFound(f"client {party_id} not found")
            for kind in KINDS.values():
                if kind.party_field == "client_id" and any(
                    d.party_id == party_id for d in tenant.documents[kind.path].values()
                ):
                    raise Conflict("The client cannot be deleted because documents exist for it.")
            del tenant.clients[party_id]

    def _party_by_name(self, tenant: Tenant, kind: Kind, name: str) -> int:
        for party in tenant.parties(kind).values():
            if party.name == name:
                return party.id
        defaults = {"street": "Musterstraße 1", "zip": "12345", "city": "Musterstadt"}
        return self.add_party(
            tenant.billomat_id, name, defaults, supplier=kind.party_field == "supplier_id"
        )

    # --- documents --------------------------------------------------------------------------

    def add_document(
        self,
        billomat_id: str,
        kind_path: str,
        *,
        status: str,
        number: str | None,
        date_: date,
        party_id: int | None,
        party_name: str,
        total_net: Decimal,
        total_gross: Decimal,
        currency_code: str,
        content: bytes | None,
        title: str,
        label: str = "",
        note: str = "",
        intro: str = "",
    ) -> Document:
        kind = kind_of(kind_path)
        if status not in kind.statuses:
            raise ValueError(f"{kind.path} cannot have status {status!r}; one of {kind.statuses}")
        with self._lock:
            tenant = self.tenant(billomat_id)
            if party_id is None:
                party_id = self._party_by_name(tenant, kind, party_name)
            elif party_id not in tenant.parties(kind):
                raise NotFound(f"{kind.party_field} {party_id} not found")
            now = self.now()
            doc = Document(
                self.next_id(kind.path), kind, "DRAFT", "", date_, party_id, title,
                total_net, total_gross, currency_code, now, now, label, note, intro,
            )  # fmt: skip
            tenant.documents[kind.path][doc.id] = doc
            if status != "DRAFT":
                self._finish(tenant, doc, status, number, content)
            elif number:
                doc.number = number
            return replace(doc)

    def complete(self, billomat_id: str, kind_path: str, doc_id: int) -> Document:
        """Assign the number, render the PDF and leave DRAFT, like ``PUT …/complete``."""
        kind = kind_of(kind_path)
        with self._lock:
            tenant = self.tenant(billomat_id)
            doc = self._document(tenant, kind, doc_id)
            if doc.status != "DRAFT":
                raise Conflict(f"{kind.singular} {doc_id} is not a draft (status {doc.status})")
            self._finish(tenant, doc, kind.completed_status, doc.number or None, None)
            return replace(doc)

    def _finish(
        self, tenant: Tenant, doc: Document, status: str, number: str | None, content: bytes | None
    ) -> None:
        kind = doc.kind
        if not number:
            seq = tenant.next_number.get(kind.path, 1)
            tenant.next_number[kind.path] = seq + 1
            number = f"{kind.number_prefix}-{seq:04d}" if kind.number_prefix else str(seq)
        doc.number = number
        doc.status = status
        now = self.now()
        doc.updated = now
        party = tenant.parties(kind)[doc.party_id]
        label = f"{kind.pdf_title} {number}"
        if content is None:
            content = make_pdf(
                label,
                [
                    party.name,
                    f"Datum: {doc.date.isoformat()}",
                    doc.title,
                    f"Netto: {doc.total_net} {doc.currency_code}",
                    f"Brutto: {doc.total_gross} {doc.currency_code}",
                ],
            )
        doc.pdf = PdfFile(self.next_id("pdfs"), now, f"{label}.pdf", content)

    def update_document(
        self, billomat_id: str, kind_path: str, doc_id: int, **values: Any
    ) -> Document:
        kind = kind_of(kind_path)
        with self._lock:
            tenant = self.tenant(billomat_id)
            doc = self._document(tenant, kind, doc_id)
            for key, value in values.items():
                if key == "status":
                    if value not in kind.statuses:
                        raise ValueError(f"{kind.path} cannot have status {value!r}")
                    doc.status = str(value)
                elif key == "party_id":
                    if value not in tenant.parties(kind):
                        raise NotFound(f"{kind.party_field} {value} not found")
                    doc.party_id = int(value)
                elif key in ("title", "label", "note", "intro", "currency_code", "number"):
                    setattr(doc, key, str(value))
                elif key in ("total_net", "total_gross"):
                    setattr(doc, key, parse_amount(value, key))
                elif key == "date":
                    doc.date = value if isinstance(value, date) else parse_date(value, "date")
                else:
                    raise ValueError(f"cannot update {key!r}")
            doc.updated = self.now()
            return replace(doc)

    def delete_document(self, billomat_id: str, kind_path: str, doc_id: int) -> None:
        kind = kind_of(kind_path)
        with self._lock:
            tenant = self.tenant(billomat_id)
            doc = self._document(tenant, kind, doc_id)
            if kind.has_drafts and doc.status != "DRAFT":
                raise Conflict(
                    f"Only drafts can be deleted; {kind.singular} {doc_id} is {doc.status}"
                )
            del tenant.documents[kind.path][doc_id]

    def _document(self, tenant: Tenant, kind: Kind, doc_id: int) -> Document:
        doc = tenant.documents[kind.path].get(doc_id)
        if doc is None:
            raise NotFound(f"{kind.singular} {doc_id} not found")
        return doc

    def document(self, billomat_id: str, kind_path: str, doc_id: int) -> Document:
        with self._lock:
            return replace(self._document(self.tenant(billomat_id), kind_of(kind_path), doc_id))

    def document_records(self, billomat_id: str, kind_path: str) -> list[Record]:
        kind = kind_of(kind_path)
        with self._lock:
            tenant = self.tenant(billomat_id)
            return [document_record(tenant, d) for d in tenant.documents[kind.path].values()]

    def document_record(self, billomat_id: str, kind_path: str, doc_id: int) -> Record:
        with self._lock:
            tenant = self.tenant(billomat_id)
            return document_record(tenant, self._document(tenant, kind_of(kind_path), doc_id))

    def documents_state(self, billomat_id: str, kind_path: str) -> list[dict[str, Any]]:
        kind = kind_of(kind_path)
        with self._lock:
            tenant = self.tenant(billomat_id)
            return [document_state(tenant, d) for d in tenant.documents[kind.path].values()]

    # --- parties as records -------------------------------------------------------------------

    def party_records(self, billomat_id: str, *, supplier: bool = False) -> list[Record]:
        with self._lock:
            tenant = self.tenant(billomat_id)
            table = tenant.suppliers if supplier else tenant.clients
            return [party_record(tenant, p, supplier=supplier) for p in table.values()]

    def party_record(self, billomat_id: str, party_id: int, *, supplier: bool = False) -> Record:
        with self._lock:
            tenant = self.tenant(billomat_id)
            party = (tenant.suppliers if supplier else tenant.clients).get(party_id)
            if party is None:
                raise NotFound(f"{'supplier' if supplier else 'client'} {party_id} not found")
            return party_record(tenant, party, supplier=supplier)

    # --- inbox ----------------------------------------------------------------------------------

    def add_inbox_document(
        self,
        billomat_id: str,
        *,
        content: bytes,
        mimetype: str,
        filename: str | None,
        document_type: str,
        metadata: Sequence[tuple[str, str]],
    ) -> InboxDocument:
        with self._lock:
            tenant = self.tenant(billomat_id)
            doc_id = self.next_id("inbox-documents")
            now = self.now()
            doc = InboxDocument(
                doc_id, now, now, tenant.user_id,
                # The server names nameless uploads inbox_{id}.pdf, even images (observed).
                filename or f"inbox_{doc_id}.pdf",
                mimetype, document_type, content, count_pages(content), tuple(metadata),
            )  # fmt: skip
            tenant.inbox[doc_id] = doc
            return doc

    def inbox_documents(self, billomat_id: str) -> list[InboxDocument]:
        with self._lock:
            return list(self.tenant(billomat_id).inbox.values())

    def inbox_document(self, billomat_id: str, doc_id: int) -> InboxDocument:
        with self._lock:
            doc = self.tenant(billomat_id).inbox.get(doc_id)
        if doc is None:
            raise NotFound(f"inbox-document {doc_id} not found")
        return doc

    def delete_inbox_document(self, billomat_id: str, doc_id: int) -> None:
        with self._lock:
            if self.tenant(billomat_id).inbox.pop(doc_id, None) is None:
                raise NotFound(f"inbox-document {doc_id} not found")


def kind_of(path: str) -> Kind:
    try:
        return KINDS[path]
    except KeyError:
        raise ValueError(f"unknown kind {path!r}; one of {sorted(KINDS)}") from None


# --- records --------------------------------------------------------------------------------


def _taxes(doc: Document) -> Items:
    tax = doc.total_gross - doc.total_net
    if tax == 0 or doc.total_net == 0:
        return Items("tax", ())
    rate = (tax / doc.total_net * 100).quantize(Decimal("0.01"))
    entry: Record = {
        "name": "MwSt",
        "rate": rate,
        "amount": tax,
        "amount_plain": tax,
        "amount_rounded": tax,
        "amount_net": doc.total_net,
        "amount_net_plain": doc.total_net,
        "amount_net_rounded": doc.total_net,
        "amount_gross": doc.total_gross,
        "amount_gross_plain": doc.total_gross,
        "amount_gross_rounded": doc.total_gross,
    }
    return Items("tax", (entry,))


def _portal_url(tenant: Tenant, doc: Document) -> str:
    token = uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.billomat_id}/{doc.kind.path}/{doc.id}")
    return f"https://{tenant.billomat_id}.billomat.net/customerportal/{doc.kind.path}/show/{token}"


def document_record(tenant: Tenant, doc: Document) -> Record:
    """The record of one document as GET returns it (no file; see :func:`pdf_record`)."""
    kind = doc.kind
    party = tenant.parties(kind).get(doc.party_id)
    address = party.address if party else ""
    if kind.path == "letters":
        return {
            "id": doc.id, "created": doc.created, "updated": doc.updated,
            "client_id": doc.party_id, "contact_id": "", "supplier_id": "",
            "status": doc.status, "address": address, "date": doc.date,
            "subject": doc.title, "label": doc.label, "intro": doc.intro,
            "free_text_id": "", "template_id": "", "customfield": "",
        }  # fmt: skip
    paid = doc.total_gross if doc.status == "PAID" else Decimal(0)
    if kind.path == "incomings":
        return {
            "id": doc.id, "created": doc.created, "updated": doc.updated,
            "supplier_id": doc.party_id, "number": doc.number, "client_number": "",
            "date": doc.date, "due_date": doc.date + timedelta(days=14), "address": address,
            "status": doc.status, "label": doc.label, "note": doc.note,
            "total_net": doc.total_net, "total_gross": doc.total_gross,
            "currency_code": doc.currency_code, "quote": 1, "paid_amount": paid,
            "open_amount": doc.total_gross - paid, "expense_account_number": "",
            "category": "", "page_count": count_pages(doc.pdf.content) if doc.pdf else 0,
            "customfield": "", "incoming-property-values": Items("incoming-property-value", ()),
        }  # fmt: skip
    pre, seq, length = _split_number(doc.number) if doc.number else ("", "", "")
    record: dict[str, Value] = {
        "id": doc.id, "created": doc.created, "updated": doc.updated,
        "client_id": doc.party_id, "contact_id": "",
    }  # fmt: skip
    assert kind.number_field is not None
    record[kind.number_field] = doc.number
    record.update(number=seq, number_pre=pre, number_length=length, title=doc.title, date=doc.date)
    if kind.path in ("invoices", "credit-notes"):
        record.update(supply_date="", supply_date_type="")
    if kind.path in ("invoices", "reminders"):
        record.update(due_date=doc.date + timedelta(days=14), due_days=14)
    if kind.path == "offers":
        record.update(validity_date=doc.date + timedelta(days=30), validity_days=30)
    if kind.path == "reminders":
        record.update(invoice_id="", subject="")
    record.update(
        address=address, status=doc.status, label=doc.label, intro=doc.intro, note=doc.note,
        total_net=doc.total_net, total_gross=doc.total_gross, reduction="", total_reduction=0,
        total_net_unreduced=doc.total_net, total_gross_unreduced=doc.total_gross,
        currency_code=doc.currency_code, quote=1, net_gross="NET",
    )  # fmt: skip
    if kind.path in ("invoices", "credit-notes"):
        record.update(
            discount_rate="", discount_date="", discount_days="", discount_amount=None,
            paid_amount=paid, open_amount=doc.total_gross - paid, payment_types="",
        )  # fmt: skip
    if kind.path == "invoices":
        record["customerportal_url"] = _portal_url(tenant, doc)
    record["taxes"] = _taxes(doc)
    links = {
        "invoices": ("invoice_id", "offer_id", "confirmation_id", "recurring_id"),
        "credit-notes": ("invoice_id",),
        "confirmations": ("offer_id",),
        "delivery-notes": ("invoice_id", "offer_id", "confirmation_id"),
    }.get(kind.path, ())
    record.update(dict.fromkeys(links, ""))
    if kind.path == "invoices":
        record["dig_proceeded"] = 0
    record.update(template_id="", customfield="")
    return record


def pdf_record(doc: Document, pdf: PdfFile, base64file: str) -> Record:
    """``{"pdf":{…}}`` of ``GET /{kind}/{id}/pdf``; the parent id field is named per kind."""
    return {
        "id": pdf.id,
        "created": pdf.created,
        doc.kind.parent_field: doc.id,
        "filename": pdf.filename,
        "mimetype": "application/pdf",
        "filesize": len(pdf.content),
        "base64file": base64file,
    }


def party_record(tenant: Tenant, party: Party, *, supplier: bool = False) -> Record:
    f = party.fields
    prefix = "LI" if supplier else "KD"
    record: dict[str, Value] = {
        "id": party.id, "created": party.created, "updated": party.updated, "archived": 0,
        "client_number": f.get("client_number", f"{prefix}{party.number}"),
        "number": party.number, "number_pre": prefix, "number_length": 0, "name": party.name,
    }  # fmt: skip
    for key in ("salutation", "first_name", "last_name", "street", "zip", "city", "state"):
        record[key] = f.get(key, "")
    record["country_code"] = f.get("country_code", "DE")
    record["address"] = party.address
    for key in ("phone", "fax", "mobile", "email", "www", "tax_number", "vat_number"):
        record[key] = f.get(key, "")
    record.update(
        currency_code=f.get("currency_code", ""), locale=f.get("locale", ""),
        tax_rule="COUNTRY", net_gross="SETTINGS", default_payment_types="",
        note=f.get("note", ""), customfield="",
    )  # fmt: skip
    if not supplier:
        record.update(
            revenue_gross=Decimal(0), revenue_net=Decimal(0), enable_customerportal=1,
            customerportal_url=f"https://{tenant.billomat_id}.billomat.net/customerportal/",
            sepa_mandate_date="0001-01-01T00:00:00+01:00",  # the odd sentinel seen in captures
        )  # fmt: skip
    record["client-property-values" if not supplier else "supplier-property-values"] = Items(
        "client-property-value" if not supplier else "supplier-property-value", ()
    )
    return record


def inbox_record(doc: InboxDocument, base64file: str | None) -> Record:
    """An inbox document; ``base64file`` only in the single GET and the POST answer."""
    record: dict[str, Value] = {
        "id": doc.id, "created": doc.created, "updated": doc.updated, "user_id": doc.user_id,
        "filename": doc.filename, "mimetype": doc.mimetype, "document_type": doc.document_type,
        "filesize": len(doc.content), "page_count": doc.page_count,
    }  # fmt: skip
    if base64file is not None:
        record["base64file"] = base64file
    record["metadata"] = Items("data", tuple({"key": k, "value": v} for k, v in doc.metadata))
    record["customfield"] = ""
    return record


def document_state(tenant: Tenant, doc: Document) -> dict[str, Any]:
    """Plain-Python snapshot for tests and the control surface."""
    party = tenant.parties(doc.kind).get(doc.party_id)
    return {
        "id": doc.id,
        "kind": doc.kind.path,
        "status": doc.status,
        "number": doc.number,
        "date": doc.date.isoformat(),
        doc.kind.party_field: doc.party_id,
        "party_name": party.name if party else "",
        "title": doc.title,
        "total_net": str(doc.total_net),
        "total_gross": str(doc.total_gross),
        "currency_code": doc.currency_code,
        "created": doc.created.isoformat(),
        "updated": doc.updated.isoformat(),
        "has_pdf": doc.pdf is not None,
        "pdf_filename": doc.pdf.filename if doc.pdf else None,
        "pdf_sha256": doc.pdf.sha256 if doc.pdf else None,
    }


def inbox_state(doc: InboxDocument) -> dict[str, Any]:
    return {
        "id": doc.id,
        "filename": doc.filename,
        "mimetype": doc.mimetype,
        "document_type": doc.document_type,
        "metadata": dict(doc.metadata),
        "filesize": len(doc.content),
        "page_count": doc.page_count,
        "sha256": doc.sha256,
        "created": doc.created.isoformat(),
        "user_id": doc.user_id,
    }
