"""Parsers on bodies shaped exactly as in the API docs: every quirk, no network."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from shared.billomat import BillomatClient
from shared.billomat_parsing import (
    normalise_order_by,
    parse_inbox_document,
    parse_list,
    parse_metadata,
)
from shared.gmi_parsing import (
    format_since,
    parse_document_page,
    parse_single_document,
    records_of,
)
from shared.readers import ResponseShapeError, read_date, read_datetime

# billomat.md §6.3, the invoice example (abridged)
INVOICE = {
    "id": "1322705",
    "created": "2024-03-04T16:12:59+01:00",
    "updated": "2024-03-20T09:21:08+01:00",
    "client_id": "485054",
    "contact_id": "",
    "invoice_number": "RE17",
    "number": "17",
    "title": "Rechnung RE17",
    "date": "2024-03-04",
    "supply_date": "",
    "status": "PAID",
    "total_net": "3885",
    "total_gross": "4615.5",
    "currency_code": "EUR",
    "discount_amount": None,
    "taxes": {"tax": [{"name": "ust", "rate": "19", "amount": "722"}]},
}


def test_billomat_document_fields_are_read_from_strings_with_berlin_offsets() -> None:
    doc = BillomatClient.parse_document("invoices", INVOICE)
    assert doc.id == 1322705
    assert doc.number == "RE17"
    assert doc.status == "PAID"
    assert doc.date == date(2024, 3, 4)
    assert doc.created == datetime(2024, 3, 4, 15, 12, 59, tzinfo=UTC)
    assert doc.updated == datetime(2024, 3, 20, 8, 21, 8, tzinfo=UTC)
    assert doc.client_id == 485054
    assert doc.total_net == Decimal("3885")
    assert doc.total_gross == Decimal("4615.5")
    assert doc.currency_code == "EUR"


def test_webhook_body_wrapped_in_its_singular_key_is_parsed_too() -> None:
    assert BillomatClient.parse_document("invoices", {"invoice": INVOICE}).id == 1322705
    credit = {"credit_note": {"id": "9", "credit_note_number": "GS9", "status": "OPEN"}}
    assert BillomatClient.parse_document("credit-notes", credit).number == "GS9"


def test_draft_with_empty_number_and_empty_amounts_has_none_values() -> None:
    draft = {**INVOICE, "invoice_number": "", "status": "DRAFT", "total_net": "", "date": ""}
    doc = BillomatClient.parse_document("invoices", draft)
    assert doc.number == ""
    assert doc.total_net is None
    assert doc.date is None


def test_incomings_use_their_number_and_supplier() -> None:
    rec = {"id": "626880", "number": "LR-4711", "supplier_id": "50013", "status": "OPEN"}
    doc = BillomatClient.parse_document("incomings", rec)
    assert (doc.number, doc.client_id) == ("LR-4711", 50013)


def test_unknown_kind_and_missing_id_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unknown Billomat document kind"):
        BillomatClient.parse_document("invoice", INVOICE)
    with pytest.raises(ValueError, match="id"):
        BillomatClient.parse_document("invoices", {"invoice_number": "RE1"})


def test_list_with_one_item_as_object_with_none_missing_and_with_many_as_list() -> None:
    one = {
        "incomings": {"incoming": {"id": "626880"}, "@page": "1", "@per_page": "100", "@total": "1"}
    }
    none = {"invoice-comments": {"@page": "1", "@per_page": "100", "@total": "0"}}
    many = {
        "invoices": {
            "invoice": [{"id": "1"}, {"id": "2"}],
            "@page": "2",
            "@per_page": "2",
            "@total": "5",
        }
    }
    assert parse_list(one, "incomings", "incoming") == ([{"id": "626880"}], 1, 100, 1)
    assert parse_list(none, "invoice-comments", "invoice-comment") == ([], 1, 100, 0)
    assert parse_list(many, "invoices", "invoice") == ([{"id": "1"}, {"id": "2"}], 2, 2, 5)
    assert parse_list({"invoices": ""}, "invoices", "invoice")[0] == []
    with pytest.raises(ResponseShapeError):
        parse_list({"errors": {}}, "invoices", "invoice")


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {
                "data": [
                    {"key": "TOTAL_NET", "value": "25.5"},
                    {"key": "CURRENCY_CODE", "value": "EUR"},
                ]
            },
            {"TOTAL_NET": "25.5", "CURRENCY_CODE": "EUR"},
        ),
        ({"data": {"key": "INVOICE_NUMBER", "value": "LR-4711"}}, {"INVOICE_NUMBER": "LR-4711"}),
        ("", {}),
        (None, {}),
        ({"data": ""}, {}),
    ],
)
def test_inbox_metadata_as_list_single_object_or_empty(
    metadata: object, expected: dict[str, str]
) -> None:
    assert parse_metadata(metadata) == expected


def test_inbox_document_example_from_the_docs_is_read() -> None:
    rec = {
        "id": "286962",
        "created": "2018-01-19T09:58:17+01:00",
        "updated": "2018-01-19T09:58:23+01:00",
        "user_id": "58027",
        "filename": "inbox_286962.pdf",
        "mimetype": "image/png",
        "document_type": "",
        "filesize": "933436",
        "page_count": "1",
        "metadata": {"data": [{"key": "TOTAL_GROSS", "value": "21.84"}]},
        "customfield": "",
        "base64file": "JVBERi0xLjQK",
    }
    doc = parse_inbox_document(rec)
    assert doc.id == 286962
    assert doc.filesize == 933436
    assert doc.created == datetime(2018, 1, 19, 8, 58, 17, tzinfo=UTC)
    assert doc.metadata == {"TOTAL_GROSS": "21.84"}
    assert doc.content == b"%PDF-1.4\n"


def test_sentinel_and_empty_dates_are_none() -> None:
    assert read_datetime("0001-01-01T00:00:00+01:00") is None
    assert read_datetime("") is None
    assert read_datetime(None) is None
    assert read_date("0000-00-00") is None
    assert read_datetime("2020-08-06T09:25:37+02:00") == datetime(2020, 8, 6, 7, 25, 37, tzinfo=UTC)


def test_order_by_is_normalised_and_validated() -> None:
    assert normalise_order_by("id ASC") == "id ASC"
    assert normalise_order_by("date+DESC, invoice_number+ASC") == "date DESC,invoice_number ASC"
    with pytest.raises(ValueError, match="order_by"):
        normalise_order_by("id; DROP")


# getmyinvoices.md §5.2 / §5.3
GMI_RECORD = {
    "documentUid": 28715,
    "createdAt": "2017-08-17",
    "companyUid": 307,
    "companyName": "1&1.de",
    "documentType": "INCOMING_INVOICE",
    "documentNumber": "receipt-1708171523",
    "documentDate": "2017-08-17",
    "documentDueDate": "0000-00-00",
    "netAmount": 25.0,
    "grossAmount": 30.0,
    "currency": "EUR",
    "isArchived": True,
    "isLocked": False,
    "tags": ["Hosting", "Marketing"],
    "note": "",
    "filename": "receipt-1708171523.pdf",
}


def test_gmi_records_as_list_as_object_keyed_by_uid_or_one_bare_object() -> None:
    other = {**GMI_RECORD, "documentUid": 28716}
    assert records_of([GMI_RECORD, other]) == [GMI_RECORD, other]
    assert records_of({"28715": GMI_RECORD, "28716": other}) == [GMI_RECORD, other]
    assert records_of(GMI_RECORD) == [GMI_RECORD]
    assert records_of(None) == []
    assert records_of([]) == []


def test_gmi_numbers_as_strings_and_booleans_as_strings_are_read() -> None:
    stringly = {
        **GMI_RECORD,
        "documentUid": "28715",
        "netAmount": "25.00",
        "isArchived": "1",
        "companyUid": "307",
        "tags": "Hosting,Marketing",
    }
    page = parse_document_page({"totalCount": "1", "records": [stringly]}, 1, 500)
    doc = page.records[0]
    assert doc.uid == 28715
    assert doc.net_amount == Decimal("25.00")
    assert doc.is_archived is True
    assert doc.company_uid == 307
    assert doc.tags == ("Hosting", "Marketing")
    assert page.total_count == 1
    assert page.max_pages is None
    assert not page.has_more


def test_gmi_float_amounts_do_not_carry_binary_noise() -> None:
    page = parse_document_page({"records": [{**GMI_RECORD, "netAmount": 0.1}]}, 1, 500)
    assert page.records[0].net_amount == Decimal("0.1")


def test_gmi_single_document_reads_meta_data_file_and_workflow() -> None:
    body = {
        "meta_data": {
            **GMI_RECORD,
            "workflowDetails": {
                "currentWorkflow": {"name": "Standard Workflow", "id": 1},
                "currentWorkflowStep": {"name": "Step 1", "id": 3},
                "isCompleted": False,
            },
        },
        "fileContent": "JVBERi0xLjQK",
    }
    doc = parse_single_document(body, 28715)
    assert doc.content == b"%PDF-1.4\n"
    assert doc.workflow is not None
    assert (doc.workflow.name, doc.workflow.step, doc.workflow.is_completed) == (
        "Standard Workflow",
        "Step 1",
        False,
    )
    assert (
        parse_single_document({"meta_data": {**GMI_RECORD, "workflowDetails": []}}, 1).workflow
        is None
    )


def test_gmi_page_has_more_follows_max_pages_or_total_count() -> None:
    recs = [GMI_RECORD]
    assert parse_document_page({"totalCount": 3, "maxPages": 3, "records": recs}, 2, 1).has_more
    assert not parse_document_page({"totalCount": 3, "maxPages": 3, "records": recs}, 3, 1).has_more
    assert parse_document_page({"totalCount": 3, "records": recs}, 2, 1).has_more
    assert not parse_document_page({"totalCount": 3, "records": []}, 2, 1).has_more


def test_updated_since_goes_out_in_utc_and_must_be_aware() -> None:
    from zoneinfo import ZoneInfo

    berlin = datetime(2026, 7, 1, 12, 0, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert format_since(berlin) == "2026-07-01 10:00:00"
    with pytest.raises(ValueError, match="aware"):
        format_since(datetime(2026, 7, 1, 12, 0, 0))
