"""The field sets Billomat shows for each object, as real captures have them (billomat.md §5–§7)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from simulators.billomat_model import Document, InboxDocument, Party, PdfFile, Tenant
from simulators.formats import Items, Record, Value
from simulators.pdf import count_pages

_NUMBER_RE = re.compile(r"^(.*?)(\d+)$")


def _split_number(number: str) -> tuple[str, str, str]:
    """``RE-0240`` → (number_pre ``RE-``, number ``240``, number_length ``4``)."""
    m = _NUMBER_RE.match(number)
    if not m:
        return number, "", "0"
    digits = m.group(2)
    return m.group(1), str(int(digits)), str(len(digits)) if digits.startswith("0") else "0"


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


# Keys Billomat's own text recognition fills (seen in real captures, billomat.md §5.3).
OCR_KEYS = frozenset(
    {
        "TOTAL_NET", "TOTAL_GROSS", "CURRENCY_CODE", "INVOICE_NUMBER", "PAYMENT_REFERENCE",
        "PAYMENT_STATE", "DOCUMENT_DOMAIN", "DOC_TYPE",
    }
)  # fmt: skip


def stored_metadata(
    mode: str, sent: Sequence[tuple[str, str]], document_type: str
) -> tuple[tuple[str, str], ...]:
    """What the inbox keeps of the metadata a client sent (unconfirmed, see ``variants.py``).

    ``kept``: everything as sent. ``dropped``: nothing. ``rewritten``: the text recognition
    keeps the keys it knows, drops the others and adds its own findings.
    """
    if mode == "kept":
        return tuple(sent)
    if mode == "dropped":
        return ()
    known = [(k, v) for k, v in sent if k in OCR_KEYS and k not in ("DOC_TYPE", "DOCUMENT_DOMAIN")]
    return (*known, ("DOC_TYPE", document_type), ("DOCUMENT_DOMAIN", "INCOMING"))
