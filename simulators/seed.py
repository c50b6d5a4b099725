"""A realistic demo data set for both simulators: German suppliers, customers, 2026 documents."""

from __future__ import annotations

from typing import Any

from simulators.pdf import make_pdf
from simulators.suite import Simulators

LARGE_PDF_BYTES = 3 * 1024 * 1024

# (type, number, date, company, tags, net, gross, approval, archived, note)
_GMI_DOCUMENTS: tuple[
    tuple[str, str, str, str, tuple[str, ...], str, str, bool | None, bool, str], ...
] = (
    ("INCOMING_INVOICE", "RG-2026-004711", "2026-01-15", "Telekom Deutschland GmbH",
     ("Telefon", "Internet"), "49.95", "59.44", True, False, ""),
    ("INCOMING_INVOICE", "VF-88120034", "2026-02-03", "Vodafone GmbH",
     ("Mobilfunk",), "39.99", "47.59", False, False, "Freigabe durch GF ausstehend"),
    ("INCOMING_INVOICE", "DE6A1B2C3D4", "2026-02-11", "Amazon EU S.à r.l.",
     ("Büro",), "84.03", "99.99", None, False, ""),
    ("INCOMING_INVOICE", "R0004512345", "2026-03-01", "Hetzner Online GmbH",
     ("Hosting", "IT"), "1250.00", "1487.50", True, False, "Jahresabrechnung mit Anlagen"),
    ("RECEIPT", "TK-0815-2026", "2026-03-09", "Aral AG",
     ("Fahrzeug",), "62.18", "74.00", None, False, "Tankquittung"),
    ("RECEIPT", "DB-7F3K9Q", "2026-04-14", "Deutsche Bahn AG",
     ("Reise",), "117.76", "126.00", True, False, "Köln–München"),
    ("RECEIPT", "BON-2026-55", "2026-04-22", "REWE Markt GmbH",
     ("Bewirtung",), "42.06", "50.05", False, False, "Bewirtung Kunde Weber"),
    ("SALES_INVOICE", "AR-2026-0012", "2026-05-05", "Müller & Söhne KG",
     ("Kunde",), "2400.00", "2856.00", None, False, ""),
    ("SALES_INVOICE", "AR-2026-0013", "2026-05-19", "Schmidt Maschinenbau GmbH",
     ("Kunde",), "980.00", "1166.20", True, False, ""),
    ("CREDIT_NOTE", "GS-2026-003", "2026-06-02", "OTTO GmbH & Co KG",
     ("Gutschrift",), "-25.21", "-30.00", None, False, "Retoure"),
    ("STATEMENT", "KA-2026-06", "2026-06-30", "Sparkasse KölnBonn",
     ("Bank",), "", "", None, False, "Kontoauszug Juni"),
    ("TRAVEL_EXPENSES", "RK-2026-07-01", "2026-07-08", "Deutsche Lufthansa AG",
     ("Reise",), "312.61", "372.00", False, False, "Messe Hannover"),
    ("MISC", "ST-2026-123", "2026-08-17", "Finanzamt Köln-Mitte",
     (), "", "", None, False, "Steuerbescheid Umsatzsteuer"),
    ("INCOMING_INVOICE", "IE-2026-998877", "2026-09-01", "Adobe Systems Software Ireland Ltd",
     ("Software",), "59.49", "70.79", True, False, ""),
    ("INCOMING_INVOICE", "IONOS-2026-1001", "2026-10-01", "IONOS SE",
     ("Hosting",), "10.00", "11.90", None, True, "bereits archiviert"),
)  # fmt: skip
_LARGE_INDEX = 3  # the Hetzner annual statement carries ~3 MB of attachments

_CLIENTS = (
    ("Müller & Söhne KG", {"street": "Domstraße 12", "zip": "50668", "city": "Köln"}),
    ("Schmidt Maschinenbau GmbH", {"street": "Industriestr. 4", "zip": "70565",
                                   "city": "Stuttgart"}),
    ("Bäckerei Weber", {"first_name": "Anna", "last_name": "Weber", "street": "Marktplatz 3",
                        "zip": "80331", "city": "München"}),
    ("Nordlicht Media GmbH", {"street": "Speicherstadt 9", "zip": "20457", "city": "Hamburg"}),
)  # fmt: skip

# (client, date, net, gross, status, title)
_INVOICES = (
    ("Müller & Söhne KG", "2026-01-20", "2400.00", "2856.00", "PAID", "Wartungsvertrag Q1"),
    ("Schmidt Maschinenbau GmbH", "2026-03-05", "980.00", "1166.20", "PAID", "Beratung März"),
    ("Bäckerei Weber", "2026-05-12", "150.00", "178.50", "OPEN", "Kassensystem-Einrichtung"),
    ("Nordlicht Media GmbH", "2026-07-01", "4200.00", "4998.00", "OVERDUE", "Website-Relaunch"),
    ("Müller & Söhne KG", "2026-09-15", "2400.00", "2856.00", "OPEN", "Wartungsvertrag Q3"),
    ("Schmidt Maschinenbau GmbH", "2026-10-28", "1320.50", "1571.40", "OPEN", "Schulung Oktober"),
)
_CREDIT_NOTES = (
    ("Müller & Söhne KG", "2026-02-02", "200.00", "238.00", "OPEN", "Gutschrift Ausfallzeit"),
    ("Nordlicht Media GmbH", "2026-07-20", "420.00", "499.80", "PAID", "Teilgutschrift Relaunch"),
    ("Bäckerei Weber", "2026-06-01", "30.00", "35.70", "OPEN", "Kulanz"),
)


def seed_demo(
    sims: Simulators, *, gmi_api_key: str, billomat_id: str, billomat_api_key: str
) -> dict[str, Any]:
    """Create the demo account and tenant with documents; returns uids and ids for printing."""
    gmi = sims.gmi
    gmi.add_account(gmi_api_key, name="Demo GmbH")
    documents: list[dict[str, Any]] = []
    for index, (
        doc_type,
        number,
        day,
        company,
        tags,
        net,
        gross,
        approval,
        archived,
        note,
    ) in enumerate(_GMI_DOCUMENTS):
        content = None
        if index == _LARGE_INDEX:
            content = make_pdf(
                f"Jahresabrechnung {number}",
                [company, f"Datum: {day}", f"Brutto: {gross} EUR", "Anlagen: Einzelverbindungen"],
                min_size=LARGE_PDF_BYTES,
            )
        uid = gmi.seed_document(
            gmi_api_key,
            document_type=doc_type,
            document_number=number,
            document_date=day,
            company_name=company,
            tags=tags,
            net_amount=net or None,
            gross_amount=gross or None,
            content=content,
            approval=approval,
            is_archived=archived,
            note=note,
        )
        state = gmi.document(gmi_api_key, uid)
        documents.append(
            {
                "uid": uid,
                "document_type": doc_type,
                "document_number": number,
                "company": company,
                "approval": approval,
                "is_archived": archived,
                "size": state["size"],
            }
        )

    billomat = sims.billomat
    billomat.add_tenant(billomat_id, billomat_api_key)
    clients = {
        name: billomat.add_client(billomat_id, name, country_code="DE", **fields)
        for name, fields in _CLIENTS
    }

    def add_all(kind: str, rows: tuple[tuple[str, str, str, str, str, str], ...]) -> list[int]:
        return [
            billomat.add_document(
                billomat_id,
                kind,
                status=status,
                date=day,
                client_name=client,
                total_net=net,
                total_gross=gross,
                title=title,
            )
            for client, day, net, gross, status, title in rows
        ]

    invoices = add_all("invoices", _INVOICES)
    credit_notes = add_all("credit-notes", _CREDIT_NOTES)
    drafts = add_all(
        "invoices",
        (("Nordlicht Media GmbH", "2026-11-02", "800.00", "952.00", "DRAFT", "Entwurf Hosting"),),
    )
    return {
        "gmi": {
            "base_url": sims.gmi_base_url,
            "api_key": gmi_api_key,
            "documents": documents,
            "large_document_uid": documents[_LARGE_INDEX]["uid"],
        },
        "billomat": {
            "url": sims.billomat.api_url(billomat_id),
            "billomat_id": billomat_id,
            "api_key": billomat_api_key,
            "clients": clients,
            "invoices": invoices,
            "credit_notes": credit_notes,
            "draft_invoices": drafts,
        },
    }
