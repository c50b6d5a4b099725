"""Billomat's state: tenants, clients, outgoing documents with their PDFs, inbox documents.

:class:`BillomatStore` is the thread-safe state both the HTTP API and the control methods work on.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from simulators.billomat_model import (
    CLIENT_FIELDS,
    KINDS,
    Conflict,
    Document,
    InboxDocument,
    Kind,
    NotFound,
    Party,
    PdfFile,
    Tenant,
    kind_of,
    parse_amount,
    parse_date,
)
from simulators.billomat_records import document_record, document_state, party_record
from simulators.clock import Clock, now_utc
from simulators.formats import Record
from simulators.pdf import count_pages, make_pdf


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
        rename: bool = False,
    ) -> InboxDocument:
        """Store an upload; ``rename`` names it ``inbox_{id}.pdf`` whatever the client sent."""
        with self._lock:
            tenant = self.tenant(billomat_id)
            doc_id = self.next_id("inbox-documents")
            now = self.now()
            doc = InboxDocument(
                doc_id, now, now, tenant.user_id,
                # The server names nameless uploads inbox_{id}.pdf, even images (observed).
                (not rename and filename) or f"inbox_{doc_id}.pdf",
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
