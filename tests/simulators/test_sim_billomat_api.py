"""The Billomat simulator against billomat.md: formats, list quirks, resources, auth."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sim_support import BILLOMAT_ID, BILLOMAT_KEY, FakeClock, parse_xml

from simulators import BillomatSimulator, make_pdf

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _json(session: requests.Session, url: str, **params: Any) -> Any:
    response = session.get(url, params={"format": "json", **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_responses_are_xml_unless_json_is_requested(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    billomat.add_document(BILLOMAT_ID, "invoices")
    billomat.add_document(BILLOMAT_ID, "invoices")

    response = billomat_http.get(bm_url + "/invoices")

    assert response.headers["Content-Type"].startswith("application/xml")
    root = parse_xml(response.content)
    assert root.tag == "invoices"
    assert root.attrib == {"type": "array", "page": "1", "per_page": "100", "total": "2"}
    first = root.find("invoice")
    assert first is not None
    assert first.find("id").attrib["type"] == "integer"  # type: ignore[union-attr]
    assert first.find("date").attrib["type"] == "date"  # type: ignore[union-attr]
    assert first.find("created").attrib["type"] == "datetime"  # type: ignore[union-attr]
    assert first.find("total_gross").attrib["type"] == "float"  # type: ignore[union-attr]


def test_json_is_chosen_by_accept_header_or_format_parameter(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    doc_id = billomat.add_document(BILLOMAT_ID, "invoices")

    by_accept = billomat_http.get(
        f"{bm_url}/invoices/{doc_id}", headers={"Accept": "application/json"}
    )
    by_param = billomat_http.get(f"{bm_url}/invoices/{doc_id}", params={"format": "json"})

    for response in (by_accept, by_param):
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["invoice"]["id"] == str(doc_id)


def test_one_item_is_an_object_and_no_items_drop_the_key(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    billomat.add_document(BILLOMAT_ID, "invoices", number="RE-1")

    one = _json(billomat_http, bm_url + "/invoices")["invoices"]
    assert isinstance(one["invoice"], dict)
    assert (one["@page"], one["@per_page"], one["@total"]) == ("1", "100", "1")

    billomat.add_document(BILLOMAT_ID, "invoices", number="RE-2")
    two = _json(billomat_http, bm_url + "/invoices")["invoices"]
    assert isinstance(two["invoice"], list)
    assert len(two["invoice"]) == 2

    none = _json(billomat_http, bm_url + "/invoices", status="CANCELED")["invoices"]
    assert none == {"@page": "1", "@per_page": "100", "@total": "0"}

    past_end = _json(billomat_http, bm_url + "/invoices", page=2)["invoices"]
    assert past_end == {"@page": "2", "@per_page": "100", "@total": "2"}


def test_nested_collections_collapse_like_lists(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    def upload(metadata: Any) -> dict[str, Any]:
        body = {"inbox-document": {"base64file": base64.b64encode(PNG).decode()}}
        if metadata is not None:
            body["inbox-document"]["metadata"] = metadata
        response = billomat_http.post(
            bm_url + "/inbox-documents", json=body, params={"format": "json"}
        )
        assert response.status_code == 201, response.text
        return response.json()["inbox-document"]  # type: ignore[no-any-return]

    single = upload({"data": {"key": "INVOICE_NUMBER", "value": "LR-4711"}})
    several = upload({"data": [{"key": "TOTAL_NET", "value": 25.5}, {"key": "X", "value": "y"}]})
    empty = upload(None)

    assert single["metadata"] == {"data": {"key": "INVOICE_NUMBER", "value": "LR-4711"}}
    assert several["metadata"] == {
        "data": [{"key": "TOTAL_NET", "value": "25.5"}, {"key": "X", "value": "y"}]
    }
    assert empty["metadata"] == ""

    with_tax = billomat.add_document(BILLOMAT_ID, "invoices", total_net="100", total_gross="119")
    no_tax = billomat.add_document(BILLOMAT_ID, "invoices", total_net="50", total_gross="50")
    taxed = _json(billomat_http, f"{bm_url}/invoices/{with_tax}")["invoice"]
    untaxed = _json(billomat_http, f"{bm_url}/invoices/{no_tax}")["invoice"]
    assert isinstance(taxed["taxes"]["tax"], dict)
    assert taxed["taxes"]["tax"]["rate"] == "19"
    assert untaxed["taxes"] == ""


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in _scalars(v)]
    return [value]


def test_every_json_scalar_is_a_string_and_times_carry_the_berlin_offset(
    billomat: BillomatSimulator,
    billomat_http: requests.Session,
    bm_url: str,
    clock: FakeClock,
) -> None:
    winter = billomat.add_document(BILLOMAT_ID, "invoices")
    clock.now = datetime(2026, 7, 1, 8, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    summer = billomat.add_document(BILLOMAT_ID, "credit-notes")
    client = billomat.add_client(BILLOMAT_ID, "Zahl GmbH", zip="01159")

    records = [
        _json(billomat_http, f"{bm_url}/invoices/{winter}")["invoice"],
        _json(billomat_http, f"{bm_url}/credit-notes/{summer}")["credit-note"],
        _json(billomat_http, f"{bm_url}/clients/{client}")["client"],
    ]

    for record in records:
        for value in _scalars(record):
            # The only non-string scalar real captures show is null (e.g. discount_amount).
            assert value is None or isinstance(value, str), value
    assert records[0]["created"] == "2026-11-02T10:00:00+01:00"
    assert records[1]["created"] == "2026-07-01T10:00:00+02:00"
    assert records[2]["zip"] == "01159"  # stays a string with its leading zero


def test_non_ascii_and_slashes_are_escaped_php_style(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    client = billomat.add_client(BILLOMAT_ID, "Bäckerei Müller", www="https://example.de/x")

    raw = billomat_http.get(f"{bm_url}/clients/{client}", params={"format": "json"}).text

    assert "B\\u00e4ckerei M\\u00fcller" in raw
    assert "https:\\/\\/example.de\\/x" in raw
    assert raw.isascii()


def test_list_pages_with_total_count_and_head_counts_without_body(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    ids = [billomat.add_document(BILLOMAT_ID, "invoices") for _ in range(5)]

    page2 = billomat_http.get(
        bm_url + "/invoices", params={"format": "json", "per_page": 2, "page": 2}
    )
    head = billomat_http.head(bm_url + "/invoices", params={"status": "OPEN"})
    capped = _json(billomat_http, bm_url + "/invoices", per_page=5000)["invoices"]

    assert page2.headers["X-Total-Count"] == "5"
    body = page2.json()["invoices"]
    assert [i["id"] for i in body["invoice"]] == [str(ids[2]), str(ids[3])]
    assert (body["@page"], body["@per_page"], body["@total"]) == ("2", "2", "5")
    assert head.status_code == 200
    assert head.headers["X-Total-Count"] == "5"
    assert head.content == b""
    assert capped["@per_page"] == "1000"


def test_order_by_takes_several_fields_and_directions(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    a = billomat.add_document(BILLOMAT_ID, "invoices", date="2026-03-01", status="PAID")
    b = billomat.add_document(BILLOMAT_ID, "invoices", date="2026-05-01", status="OPEN")
    c = billomat.add_document(BILLOMAT_ID, "invoices", date="2026-04-01", status="OPEN")

    def order(order_by: str) -> list[int]:
        # requests encodes the space as "+", exactly what Billomat's docs ask for.
        items = _json(billomat_http, bm_url + "/invoices", order_by=order_by)["invoices"]
        return [int(i["id"]) for i in items["invoice"]]

    assert order("date DESC") == [b, c, a]
    assert order("status ASC,date ASC") == [c, b, a]
    assert order("id DESC") == [c, b, a]
    assert order("invoice_number DESC") == [c, b, a]
    # A double-encoded "+" is not a direction: the clause is ignored, default order remains.
    assert order("date+DESC") == [a, b, c]


def test_document_lists_filter_by_date_status_number_and_client(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    early = billomat.add_document(BILLOMAT_ID, "invoices", date="2026-01-10", number="RE-0100")
    mid = billomat.add_document(
        BILLOMAT_ID, "invoices", date="2026-06-10", status="PAID", client_name="Other AG"
    )
    late = billomat.add_document(BILLOMAT_ID, "invoices", date="2026-12-10", status="OVERDUE")
    other_client = billomat.documents(BILLOMAT_ID, "invoices")[1]["client_id"]

    def ids(**params: Any) -> set[int]:
        body = _json(billomat_http, bm_url + "/invoices", **params)["invoices"]
        items = body.get("invoice", [])
        return {int(i["id"]) for i in ([items] if isinstance(items, dict) else items)}

    assert ids(**{"from": "2026-06-01", "to": "2026-06-30"}) == {mid}
    assert ids(**{"from": "2026-06-10"}) == {mid, late}
    assert ids(status="PAID,OVERDUE") == {mid, late}
    assert ids(status="paid") == set()  # values are upper case, as documented
    assert ids(invoice_number="re-01") == {early}
    assert ids(client_id=other_client) == {mid}
    bad = billomat_http.get(bm_url + "/invoices", params={"from": "10.01.2026"})
    assert bad.status_code == 400


def test_inbox_upload_answers_201_with_the_file_and_the_list_leaves_it_out(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    pdf = make_pdf("Lieferantenrechnung LR-4711")
    created = billomat_http.post(
        bm_url + "/inbox-documents",
        json={
            "inbox-document": {
                "filename": "lr-4711.pdf",
                "document_type": "INVOICE",
                "base64file": base64.b64encode(pdf).decode(),
            }
        },
        headers={"Accept": "application/json"},
    )
    nameless = billomat_http.post(
        bm_url + "/inbox-documents",
        json={"inbox-document": {"base64file": base64.b64encode(PNG).decode()}},
        params={"format": "json"},
    )

    assert created.status_code == 201
    doc = created.json()["inbox-document"]
    assert base64.b64decode(doc["base64file"]) == pdf
    assert (doc["filename"], doc["mimetype"], doc["document_type"]) == (
        "lr-4711.pdf",
        "application/pdf",
        "INVOICE",
    )
    assert (doc["filesize"], doc["page_count"]) == (str(len(pdf)), "1")
    image = nameless.json()["inbox-document"]
    # Nameless uploads are called inbox_{id}.pdf even when they are images (observed).
    assert image["filename"] == f"inbox_{image['id']}.pdf"
    assert (image["mimetype"], image["document_type"]) == ("image/png", "OTHER")

    listed = _json(billomat_http, bm_url + "/inbox-documents")["inbox-documents"]["inbox-document"]
    assert all("base64file" not in item for item in listed)
    one = _json(billomat_http, f"{bm_url}/inbox-documents/{doc['id']}")["inbox-document"]
    assert base64.b64decode(one["base64file"]) == pdf

    state = billomat.inbox(BILLOMAT_ID)
    assert [s["sha256"] for s in state] == [
        hashlib.sha256(pdf).hexdigest(),
        hashlib.sha256(PNG).hexdigest(),
    ]
    assert billomat.inbox_content(BILLOMAT_ID, int(doc["id"])) == pdf


def test_inbox_upload_accepts_an_xml_body_with_metadata(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    pdf = make_pdf("XML upload")
    body = (
        "<inbox-document><document_type>receipt</document_type>"
        f"<base64file>{base64.b64encode(pdf).decode()}</base64file>"
        '<metadata type="array"><data><key>SENDER_CITY</key><value>Siegen</value></data>'
        "<data><key>WWW</key><value>www.billomat.com</value></data></metadata>"
        "</inbox-document>"
    )

    response = billomat_http.post(
        bm_url + "/inbox-documents", data=body, headers={"Content-Type": "application/xml"}
    )

    assert response.status_code == 201
    root = parse_xml(response.content)
    assert root.tag == "inbox-document"
    assert [d.findtext("key") for d in root.iter("data")] == ["SENDER_CITY", "WWW"]
    (stored,) = billomat.inbox(BILLOMAT_ID)
    assert stored["metadata"] == {"SENDER_CITY": "Siegen", "WWW": "www.billomat.com"}
    assert stored["document_type"] == "RECEIPT"


def test_inbox_refuses_missing_file_bad_base64_unknown_type_and_foreign_bytes(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    good = base64.b64encode(make_pdf("x")).decode()
    bodies = [
        {"filename": "a.pdf"},
        {"base64file": "not base64!!"},
        {"base64file": good, "document_type": "PAYSLIP"},
        {"base64file": base64.b64encode(b"PK\x03\x04 zip archive").decode()},
        {"base64file": good, "metadata": [{"key": "bare list"}]},
    ]

    for body in bodies:
        response = billomat_http.post(
            bm_url + "/inbox-documents", json={"inbox-document": body}, params={"format": "json"}
        )
        assert response.status_code == 400, body
        assert isinstance(response.json()["errors"]["error"], str)
    assert billomat.inbox(BILLOMAT_ID) == []


def test_inbox_documents_cannot_be_updated_but_can_be_deleted(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    created = billomat_http.post(
        bm_url + "/inbox-documents",
        json={"inbox-document": {"base64file": base64.b64encode(PNG).decode()}},
        params={"format": "json"},
    ).json()["inbox-document"]
    url = f"{bm_url}/inbox-documents/{created['id']}"

    put = billomat_http.put(url, json={"inbox-document": {"filename": "x.pdf"}})
    delete = billomat_http.delete(url)
    after = billomat_http.get(url)

    assert put.status_code == 405
    assert (delete.status_code, delete.content) == (200, b"")
    assert after.status_code == 404
    assert parse_xml(after.content).findtext("error")


def test_pdf_is_wrapped_with_per_kind_parent_id_or_raw_with_format_pdf(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    invoice = billomat.add_document(BILLOMAT_ID, "invoices")
    credit = billomat.add_document(BILLOMAT_ID, "credit-notes")

    wrapped = _json(billomat_http, f"{bm_url}/invoices/{invoice}/pdf")["pdf"]
    credit_pdf = _json(billomat_http, f"{bm_url}/credit-notes/{credit}/pdf")["pdf"]
    raw = billomat_http.get(f"{bm_url}/invoices/{invoice}/pdf", params={"format": "pdf"})

    content = billomat.pdf_content(BILLOMAT_ID, "invoices", invoice)
    assert content is not None
    assert wrapped["invoice_id"] == str(invoice)
    assert wrapped["filename"] == "Rechnung RE-0001.pdf"
    assert wrapped["mimetype"] == "application/pdf"
    assert wrapped["filesize"] == str(len(content))
    assert base64.b64decode(wrapped["base64file"]) == content
    assert credit_pdf["credit_note_id"] == str(credit)
    assert credit_pdf["filename"] == "Gutschrift GU-0001.pdf"
    assert raw.headers["Content-Type"] == "application/pdf"
    assert raw.content == content


def test_draft_has_no_number_or_pdf_until_completed(
    billomat: BillomatSimulator,
    billomat_http: requests.Session,
    bm_url: str,
    clock: FakeClock,
) -> None:
    billomat.add_document(BILLOMAT_ID, "invoices")  # takes RE-0001
    draft = billomat.add_document(BILLOMAT_ID, "invoices", status="DRAFT")
    before = _json(billomat_http, f"{bm_url}/invoices/{draft}")["invoice"]

    no_pdf = billomat_http.get(f"{bm_url}/invoices/{draft}/pdf")
    clock.advance(60)
    completed = billomat_http.put(f"{bm_url}/invoices/{draft}/complete")
    again = billomat_http.put(f"{bm_url}/invoices/{draft}/complete")
    after = _json(billomat_http, f"{bm_url}/invoices/{draft}")["invoice"]

    assert (before["status"], before["invoice_number"]) == ("DRAFT", "")
    assert no_pdf.status_code == 404
    assert completed.status_code == 200
    assert again.status_code == 400
    assert (after["status"], after["invoice_number"]) == ("OPEN", "RE-0002")
    assert (after["number"], after["number_pre"]) == ("2", "RE-")
    assert after["updated"] > before["updated"]
    assert billomat_http.get(f"{bm_url}/invoices/{draft}/pdf").status_code == 200


def test_complete_control_method_uses_each_kinds_first_finished_status(
    billomat: BillomatSimulator,
) -> None:
    for kind, status in (
        ("confirmations", "COMPLETED"),
        ("delivery-notes", "CREATED"),
        ("credit-notes", "OPEN"),
    ):
        doc_id = billomat.add_document(BILLOMAT_ID, kind, status="DRAFT")
        billomat.complete(BILLOMAT_ID, kind, doc_id)
        state = billomat.document(BILLOMAT_ID, kind, doc_id)
        assert (state["status"], state["has_pdf"]) == (status, True)


def test_api_key_is_required_in_header_or_query_and_unknown_tenants_are_401(
    billomat: BillomatSimulator, http: requests.Session, bm_url: str
) -> None:
    missing = http.get(bm_url + "/invoices", params={"format": "json"})
    wrong = http.get(bm_url + "/invoices", headers={"X-BillomatApiKey": "nope"})
    by_query = http.get(bm_url + "/invoices", params={"api_key": BILLOMAT_KEY})
    unknown = http.get(
        billomat.api_url("nobody") + "/invoices", headers={"X-BillomatApiKey": BILLOMAT_KEY}
    )

    assert missing.status_code == 401
    assert missing.json() == {"errors": {"error": "Unauthorized"}}
    assert wrong.status_code == 401
    assert parse_xml(wrong.content).tag == "errors"
    assert by_query.status_code == 200
    assert unknown.status_code == 401


def test_clients_are_created_updated_and_protected_while_they_have_documents(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    created = billomat_http.post(
        bm_url + "/clients",
        json={"client": {"name": "Neu GmbH", "city": "Köln"}},
        params={"format": "json"},
    )
    client = created.json()["client"]
    updated = billomat_http.put(
        f"{bm_url}/clients/{client['id']}",
        json={"client": {"email": "info@neu.de"}},
        params={"format": "json"},
    )
    billomat.add_document(BILLOMAT_ID, "invoices", client_name="Neu GmbH")
    refused = billomat_http.delete(f"{bm_url}/clients/{client['id']}")
    found = _json(billomat_http, bm_url + "/clients", name="neu")["clients"]

    assert created.status_code == 201
    assert (client["name"], client["city"], client["client_number"]) == ("Neu GmbH", "Köln", "KD1")
    assert updated.json()["client"]["email"] == "info@neu.de"
    assert refused.status_code == 400
    assert found["client"]["id"] == client["id"]


def test_invoices_created_over_the_api_are_drafts_with_item_totals(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    client = billomat.add_client(BILLOMAT_ID, "Kunde AG")
    body = {
        "invoice": {
            "client_id": client,
            "date": "2026-11-02",
            "invoice-items": {
                "invoice-item": [
                    {"quantity": "2", "unit_price": "50", "tax_rate": "19"},
                    {"quantity": 1, "unit_price": 10, "tax_rate": 7},
                ]
            },
        }
    }

    created = billomat_http.post(bm_url + "/invoices", json=body, params={"format": "json"})
    no_client = billomat_http.post(bm_url + "/invoices", json={"invoice": {}})

    invoice = created.json()["invoice"]
    assert created.status_code == 201
    assert (invoice["status"], invoice["invoice_number"]) == ("DRAFT", "")
    assert (invoice["total_net"], invoice["total_gross"]) == ("110", "129.7")
    assert no_client.status_code == 400


def test_unknown_resources_and_ids_are_404_and_wrong_methods_405(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    assert billomat_http.get(bm_url + "/invoices/999999").status_code == 404
    assert billomat_http.get(bm_url + "/invoices/abc").status_code == 404
    assert billomat_http.get(bm_url + "/unicorns").status_code == 404
    assert billomat_http.put(bm_url + "/inbox-documents").status_code == 405


def test_request_counts_are_kept_per_tenant_and_endpoint_template(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    doc = billomat.add_document(BILLOMAT_ID, "invoices")
    billomat_http.get(bm_url + "/invoices")
    billomat_http.get(f"{bm_url}/invoices/{doc}")
    billomat_http.get(f"{bm_url}/invoices/{doc}/pdf")
    billomat_http.get(f"{bm_url}/invoices/{doc}/pdf")
    billomat_http.head(bm_url + "/invoices")

    assert billomat.request_counts(BILLOMAT_ID) == {
        "GET /api/invoices": 1,
        "GET /api/invoices/{id}": 1,
        "GET /api/invoices/{id}/pdf": 2,
        "HEAD /api/invoices": 1,
    }
    assert billomat.request_counts("someone-else") == {}
    billomat.reset_counts()
    assert billomat.request_counts() == {}


def test_timestamps_match_the_iso_berlin_pattern_in_xml_too(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    doc = billomat.add_document(BILLOMAT_ID, "invoices")
    root = parse_xml(billomat_http.get(f"{bm_url}/invoices/{doc}").content)
    created = root.findtext("created") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", created)
