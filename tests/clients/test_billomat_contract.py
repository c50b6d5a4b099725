"""BillomatClient against every Billomat implementation: the simulator and the fake."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from shared.billomat import BillomatClient
from shared.errors import ConfigurationError, NotFoundError, RateLimitedError, TransientError
from shared.http import Quota

from .conftest import Backend, RecordingHooks

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def unique_pdf(tag: str) -> bytes:
    return PDF + f"% {tag} {datetime.now(UTC).isoformat()}\n".encode()


def test_uploaded_inbox_document_lands_with_bytes_type_and_metadata(backend: Backend) -> None:
    billomat_id, _, client = backend.new_billomat()
    content = unique_pdf("inbox")

    created = client.create_inbox_document(
        content=content,
        filename="supplier-invoice.pdf",
        document_type="INVOICE",
        metadata={"INVOICE_NUMBER": "LR-4711", "TOTAL_GROSS": "119.00"},
    )

    (landed,) = backend.billomat.inbox(billomat_id)
    assert landed["sha256"] == hashlib.sha256(content).hexdigest()
    assert landed["metadata"] == {"INVOICE_NUMBER": "LR-4711", "TOTAL_GROSS": "119.00"}
    assert created.id > 0
    assert created.filesize == len(content)
    assert created.document_type == "INVOICE"
    assert created.metadata == {"INVOICE_NUMBER": "LR-4711", "TOTAL_GROSS": "119.00"}
    assert client.get_inbox_document(created.id).content == content


def test_inbox_list_when_empty_with_one_item_and_with_several(backend: Backend) -> None:
    _, _, client = backend.new_billomat()
    empty = client.inbox_page()
    first = client.create_inbox_document(content=unique_pdf("a"), metadata={"K": "V"})
    one = client.inbox_page()
    client.create_inbox_document(content=unique_pdf("b"))
    two = client.inbox_page()

    assert (empty.items, empty.total, empty.has_more) == ([], 0, False)
    assert [d.id for d in one.items] == [first.id]
    assert one.items[0].metadata == {"K": "V"}
    assert one.items[0].content is None  # lists carry no base64file
    assert len(two.items) == 2
    assert two.total == 2


def test_inbox_is_fetched_lazily_page_by_page(backend: Backend) -> None:
    billomat_id, _, client = backend.new_billomat()
    ids = [client.create_inbox_document(content=unique_pdf(str(i))).id for i in range(3)]
    before = backend.billomat.request_counts(billomat_id).get("GET /api/inbox-documents", 0)

    docs = client.iter_inbox(per_page=2)
    first = next(docs)
    after_first = backend.billomat.request_counts(billomat_id)["GET /api/inbox-documents"]
    rest = list(docs)
    after_all = backend.billomat.request_counts(billomat_id)["GET /api/inbox-documents"]

    assert [first.id, *[d.id for d in rest]] == ids
    assert (after_first - before, after_all - before) == (1, 2)


def test_deleted_inbox_document_is_gone_and_then_not_found(backend: Backend) -> None:
    billomat_id, _, client = backend.new_billomat()
    doc = client.create_inbox_document(content=unique_pdf("del"))

    client.delete_inbox_document(doc.id)

    assert backend.billomat.inbox(billomat_id) == []
    with pytest.raises(NotFoundError) as info:
        client.get_inbox_document(doc.id)
    assert info.value.status == 404


def test_documents_are_read_with_typed_fields_from_string_scalars(backend: Backend) -> None:
    billomat_id, _, client = backend.new_billomat()
    doc_id = backend.billomat.add_document(
        billomat_id,
        "invoices",
        number="RE-2026-1",
        date="2026-11-02",
        total_net="100.00",
        total_gross="119.00",
        title="Rechnung RE-2026-1",
    )

    page = client.documents_page("invoices")  # exactly one item: an object, not a list
    single = client.get_document("invoices", doc_id)

    assert page.items == [single]
    assert single.number == "RE-2026-1"
    assert single.status == "OPEN"
    assert single.date == date(2026, 11, 2)
    assert single.total_net == Decimal("100")
    assert single.total_gross == Decimal("119")
    assert single.currency_code == "EUR"
    assert single.created is not None
    assert single.created.tzinfo is UTC
    assert abs(single.created - datetime.now(UTC)) < timedelta(days=2)


def test_documents_are_paged_lazily_and_filtered_by_status_and_date(backend: Backend) -> None:
    billomat_id, _, client = backend.new_billomat()
    ids = [
        backend.billomat.add_document(billomat_id, "credit-notes", date=f"2026-11-0{d}")
        for d in range(1, 6)
    ]
    backend.billomat.add_document(billomat_id, "credit-notes", status="DRAFT")

    docs = client.iter_documents(
        "credit-notes",
        per_page=2,
        statuses=["OPEN", "PAID"],
        date_from=date(2026, 11, 2),
        date_to=date(2026, 11, 5),
    )
    first = next(docs)
    counts = backend.billomat.request_counts(billomat_id)
    assert counts["GET /api/credit-notes"] == 1
    found = [first.id, *[d.id for d in docs]]

    assert found == ids[1:5]
    assert backend.billomat.request_counts(billomat_id)["GET /api/credit-notes"] == 2


def test_completed_draft_gets_its_number_and_a_pdf(backend: Backend) -> None:
    billomat_id, _, client = backend.new_billomat()
    doc_id = backend.billomat.add_document(
        billomat_id, "invoices", status="DRAFT", content=unique_pdf("draft")
    )
    draft = client.get_document("invoices", doc_id)
    assert (draft.status, draft.number) == ("DRAFT", "")

    backend.billomat.complete(billomat_id, "invoices", doc_id)
    done = client.get_document("invoices", doc_id)
    pdf = client.get_pdf("invoices", doc_id)

    assert done.status != "DRAFT"
    assert done.number
    assert pdf.content.startswith(b"%PDF")
    assert pdf.mimetype == "application/pdf"
    assert pdf.filename.endswith(".pdf")


def test_pdf_bytes_are_returned_unchanged(backend: Backend) -> None:
    billomat_id, _, client = backend.new_billomat()
    content = unique_pdf("pdf")
    doc_id = backend.billomat.add_document(billomat_id, "invoices", content=content)
    assert client.get_pdf("invoices", doc_id).content == content


def test_unknown_document_is_not_found(backend: Backend) -> None:
    _, _, client = backend.new_billomat()
    with pytest.raises(NotFoundError) as info:
        client.get_document("invoices", 987654321)
    assert info.value.status == 404


def test_wrong_api_key_is_a_configuration_error(backend: Backend) -> None:
    billomat_id, _, _ = backend.new_billomat()
    client = BillomatClient(
        billomat_id, "wrong-key-0000", url_template=backend.billomat_url_template
    )
    with pytest.raises(ConfigurationError) as info:
        client.inbox_page()
    assert info.value.status == 401


def test_quota_headers_are_tracked_and_reported(backend: Backend, hooks: RecordingHooks) -> None:
    billomat_id, key, _ = backend.new_billomat(limit=5)
    client = BillomatClient(
        billomat_id, key, url_template=backend.billomat_url_template, hooks=hooks
    )

    client.inbox_page()
    client.inbox_page()

    assert client.quota is not None
    assert client.quota.remaining == 3
    assert client.quota.reset_at > datetime.now(UTC)
    assert [q.remaining for _, q in hooks.quotas] == [4, 3]
    assert all(isinstance(q, Quota) and api == "billomat" for api, q in hooks.quotas)
    assert ("billomat", "GET /inbox-documents", 200) in hooks.responses


def test_exhausted_quota_is_rate_limited_until_the_window_resets(
    backend: Backend, hooks: RecordingHooks
) -> None:
    billomat_id, key, _ = backend.new_billomat(limit=2, window_seconds=900.0)
    client = BillomatClient(
        billomat_id, key, url_template=backend.billomat_url_template, hooks=hooks
    )
    client.inbox_page()
    client.inbox_page()

    with pytest.raises(RateLimitedError) as info:
        client.inbox_page()

    assert info.value.status == 429
    now = datetime.now(UTC)
    assert now < info.value.reset_at <= now + timedelta(seconds=901)
    assert hooks.rate_limited == ["billomat"]


def test_server_error_is_transient(backend: Backend) -> None:
    _, _, client = backend.new_billomat()
    backend.billomat.fail_next(1, status=503)
    with pytest.raises(TransientError) as info:
        client.inbox_page()
    assert info.value.status == 503
    client.inbox_page()


def test_html_502_is_transient_with_a_short_reason(backend: Backend) -> None:
    _, _, client = backend.new_billomat()
    backend.billomat.fail_next(1, status=502, html=True)
    with pytest.raises(TransientError) as info:
        client.documents_page("invoices")
    assert "HTML body" in str(info.value)
    assert len(str(info.value)) < 200


def test_dropped_answer_after_an_inbox_upload_is_ambiguous_and_it_landed(
    backend: Backend,
) -> None:
    billomat_id, _, client = backend.new_billomat()
    content = unique_pdf("drop")
    backend.billomat.drop_after_next_write(1)

    with pytest.raises(TransientError) as info:
        client.create_inbox_document(content=content)

    assert info.value.ambiguous
    landed = [d["sha256"] for d in backend.billomat.inbox(billomat_id)]
    assert landed == [hashlib.sha256(content).hexdigest()]
