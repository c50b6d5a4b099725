"""GmiClient against every GMI implementation: the simulator and the recorded-response fake."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from shared.errors import (
    ConfigurationError,
    DuplicateDocumentError,
    NotFoundError,
    RateLimitedError,
    TransientError,
)
from shared.gmi import GmiClient, GmiUpload

from .conftest import Backend

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def unique_pdf(tag: str) -> bytes:
    return PDF + f"% {tag} {datetime.now(UTC).isoformat()}\n".encode()


def test_documents_are_fetched_lazily_one_page_request_at_a_time(backend: Backend) -> None:
    key, client = backend.new_gmi()
    uids = [backend.gmi.seed_document(key, document_number=f"P-{i}") for i in range(5)]

    documents = client.iter_documents(per_page=2)
    assert backend.gmi.request_counts(key).get("GET /documents", 0) == 0  # nothing until asked
    first = next(documents)
    assert backend.gmi.request_counts(key)["GET /documents"] == 1
    second, third = next(documents), next(documents)
    assert backend.gmi.request_counts(key)["GET /documents"] == 2
    rest = list(documents)

    # The order of the list is not documented; every document comes exactly once.
    assert sorted(d.uid for d in [first, second, third, *rest]) == sorted(uids)
    assert backend.gmi.request_counts(key)["GET /documents"] == 3


def test_filters_narrow_the_list_by_tag_type_and_uid(backend: Backend) -> None:
    key, client = backend.new_gmi()
    tagged = backend.gmi.seed_document(key, tags=("export",), content=unique_pdf("t"))
    sales = backend.gmi.seed_document(key, document_type="SALES_INVOICE", content=unique_pdf("s"))
    later = backend.gmi.seed_document(key, content=unique_pdf("l"))

    assert [d.uid for d in client.iter_documents(tags=["export"])] == [tagged]
    assert [d.uid for d in client.iter_documents(document_type="SALES_INVOICE")] == [sales]
    assert sorted(d.uid for d in client.iter_documents(uid_start=sales)) == [later]


def test_updated_since_never_misses_a_document_changed_after_the_moment(
    backend: Backend,
) -> None:
    key, client = backend.new_gmi()
    changed = backend.gmi.seed_document(key, content=unique_pdf("c"))
    moment = datetime.now(UTC) - timedelta(seconds=1)  # the filter has whole seconds
    backend.gmi.set_tags(key, changed, ["touched"])
    new = backend.gmi.seed_document(key, content=unique_pdf("n"))

    found = {d.uid for d in client.iter_documents(updated_since=moment)}

    assert {changed, new} <= found


def test_records_keyed_by_uid_are_read_like_a_list(backend: Backend) -> None:
    key, client = backend.new_gmi()
    uids = [backend.gmi.seed_document(key, content=unique_pdf(str(i))) for i in range(3)]
    backend.gmi.set_options(records_as_object=True)
    try:
        found = sorted(d.uid for d in client.iter_documents(per_page=2))
    finally:
        backend.gmi.set_options(records_as_object=False)
    assert found == sorted(uids)


def test_single_document_comes_with_its_metadata_and_file_bytes(backend: Backend) -> None:
    key, client = backend.new_gmi()
    content = unique_pdf("single")
    uid = backend.gmi.seed_document(
        key,
        document_type="INCOMING_INVOICE",
        document_number="LR-4711",
        document_date="2026-11-02",
        tags=("Hosting",),
        net_amount="100.00",
        gross_amount="119.00",
        content=content,
        filename="lr-4711.pdf",
    )

    doc = client.get_document(uid)

    assert doc.uid == uid
    assert doc.document_number == "LR-4711"
    assert doc.document_type == "INCOMING_INVOICE"
    assert doc.document_date == date(2026, 11, 2)
    assert doc.net_amount == Decimal("100")
    assert doc.gross_amount == Decimal("119")
    assert doc.tags == ("Hosting",)
    assert doc.filename == "lr-4711.pdf"
    assert doc.content == content
    assert client.get_document(uid, include_file=False).content is None


def test_approval_workflow_state_is_reported_and_follows_approval(backend: Backend) -> None:
    key, client = backend.new_gmi()
    uid = backend.gmi.seed_document(key, approval=False)

    before = client.get_document(uid, include_file=False)
    backend.gmi.approve(key, uid)
    after = client.get_document(uid, include_file=False)

    assert before.workflow is not None
    assert not before.workflow.is_completed
    assert after.workflow is not None
    assert after.workflow.is_completed


def test_unknown_document_is_not_found_with_code_106(backend: Backend) -> None:
    _, client = backend.new_gmi()
    with pytest.raises(NotFoundError) as info:
        client.get_document(999_999_999)
    assert (info.value.status, info.value.code) == (422, 106)


def test_uploaded_document_lands_with_its_metadata(backend: Backend) -> None:
    key, client = backend.new_gmi()
    content = unique_pdf("upload")

    uid = client.upload_document(
        GmiUpload(
            file_name="Rechnung RE-1.pdf",
            content=content,
            document_type="SALES_INVOICE",
            document_number="RE-1",
            document_date=date(2026, 11, 2),
            net_amount=Decimal("100.00"),
            gross_amount=Decimal("119.00"),
            currency="EUR",
            tags=("billomat",),
        )
    )

    landed = {d["sha256"]: d for d in backend.gmi.documents(key)}
    assert hashlib.sha256(content).hexdigest() in landed
    doc = client.get_document(uid)
    assert doc.content == content
    assert doc.document_number == "RE-1"
    assert doc.gross_amount == Decimal("119")
    assert "billomat" in doc.tags


def test_uploading_identical_content_again_raises_duplicate_127(backend: Backend) -> None:
    _, client = backend.new_gmi()
    upload = GmiUpload("a.pdf", unique_pdf("dup"), "SALES_INVOICE", document_number="D-1")
    client.upload_document(upload)

    with pytest.raises(DuplicateDocumentError) as info:
        client.upload_document(upload)
    assert (info.value.status, info.value.code) == (422, 127)


def test_duplicate_in_the_newer_errors_array_shape_is_detected_too(backend: Backend) -> None:
    _, client = backend.new_gmi()
    upload = GmiUpload("a.pdf", unique_pdf("dup2"), "SALES_INVOICE")
    client.upload_document(upload)
    backend.gmi.set_options(error_shape="errors")
    try:
        with pytest.raises(DuplicateDocumentError) as info:
            client.upload_document(upload)
    finally:
        backend.gmi.set_options(error_shape="spec")
    assert (info.value.status, info.value.code) == (422, 127)


def test_document_exists_checks_by_file_content(backend: Backend) -> None:
    key, client = backend.new_gmi()
    content = unique_pdf("exists")
    assert client.document_exists(content) is False
    backend.gmi.seed_document(key, content=content)
    assert client.document_exists(content) is True


def test_find_by_number_matches_exactly_and_includes_archived(backend: Backend) -> None:
    key, client = backend.new_gmi()
    wanted = backend.gmi.seed_document(key, document_number="INV-1", content=unique_pdf("1"))
    archived = backend.gmi.seed_document(
        key, document_number="INV-1", is_archived=True, content=unique_pdf("2")
    )
    backend.gmi.seed_document(key, document_number="INV-10", content=unique_pdf("3"))
    backend.gmi.seed_document(key, document_number="XINV-1", content=unique_pdf("4"))

    found = client.find_documents_by_number("INV-1")

    assert sorted(d.uid for d in found) == sorted([wanted, archived])


def test_update_archives_the_document_and_replaces_its_tags(backend: Backend) -> None:
    key, client = backend.new_gmi()
    uid = backend.gmi.seed_document(key, tags=("old",))

    client.update_document(uid, is_archived=True, tags=["exported", "billomat"])

    doc = client.get_document(uid, include_file=False)
    assert doc.is_archived
    assert set(doc.tags) == {"exported", "billomat"}
    assert uid not in [d.uid for d in client.iter_documents()]  # archivedFilter=0 by default
    assert uid in [d.uid for d in client.iter_documents(archived=1)]


def test_updating_an_unknown_document_is_not_found(backend: Backend) -> None:
    _, client = backend.new_gmi()
    with pytest.raises(NotFoundError):
        client.update_document(999_999_999, is_archived=True)


def test_created_company_is_listed(backend: Backend) -> None:
    _, client = backend.new_gmi()
    germany = next(c for c in client.countries() if c.get("countryCode") == "DE")

    uid = client.create_company("Billomat Import GmbH", int(germany["countryUid"]))

    companies = {c.uid: c for c in client.list_companies()}
    assert companies[uid].name == "Billomat Import GmbH"
    assert companies[uid].company_type == "CUSTOM_COMPANY"


def test_account_info_is_returned(backend: Backend) -> None:
    _, client = backend.new_gmi()
    assert client.account()["name"] == "Contract GmbH"


def test_unknown_api_key_is_a_configuration_error(backend: Backend) -> None:
    client = GmiClient("XXXX-DOES-NOT-EXIST", base_url=backend.gmi_base_url)
    with pytest.raises(ConfigurationError) as info:
        client.list_documents_page()
    assert info.value.status == 403
    assert info.value.code == 403


@pytest.mark.parametrize("flag", ["blocked", "cancelled", "read_only"])
def test_blocked_cancelled_or_read_only_keys_are_configuration_errors(
    backend: Backend, flag: str
) -> None:
    key = f"GMI-{flag.upper()}-{datetime.now(UTC).timestamp()}"
    backend.gmi.add_account(key, **{flag: True})
    client = GmiClient(key, base_url=backend.gmi_base_url)
    with pytest.raises(ConfigurationError) as info:
        client.upload_document(GmiUpload("a.pdf", unique_pdf(flag), "MISC"))
    assert info.value.status == 403
    assert info.value.code in (407, 430, 431)


def test_per_minute_limit_is_rate_limited_until_the_next_minute(backend: Backend) -> None:
    key, client = backend.new_gmi()
    backend.gmi.set_limits(key, per_minute=2)
    client.account()
    client.account()

    with pytest.raises(RateLimitedError) as info:
        client.account()

    assert info.value.code == 429
    now = datetime.now(UTC)
    assert now < info.value.reset_at <= now + timedelta(seconds=61)


def test_limit_answered_with_a_real_http_429_is_rate_limited_too(backend: Backend) -> None:
    key, client = backend.new_gmi()
    backend.gmi.set_limits(key, per_minute=1, rate_limit_status=429)
    client.account()
    with pytest.raises(RateLimitedError) as info:
        client.account()
    assert info.value.status == 429


def test_daily_limit_is_rate_limited_until_midnight_in_berlin(backend: Backend) -> None:
    key, client = backend.new_gmi()
    backend.gmi.set_limits(key, per_day=1)
    client.account()
    with pytest.raises(RateLimitedError) as info:
        client.account()
    local = info.value.reset_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
    assert timedelta(0) < info.value.reset_at - datetime.now(UTC) <= timedelta(days=1)


def test_hourly_upload_limit_is_rate_limited_until_the_next_full_hour(backend: Backend) -> None:
    key, client = backend.new_gmi()
    backend.gmi.set_limits(key, uploads_per_hour=1)
    client.upload_document(GmiUpload("a.pdf", unique_pdf("h1"), "MISC"))

    with pytest.raises(RateLimitedError) as info:
        client.upload_document(GmiUpload("b.pdf", unique_pdf("h2"), "MISC"))

    assert (info.value.status, info.value.code) == (422, 105)
    reset = info.value.reset_at
    assert (reset.minute, reset.second, reset.microsecond) == (0, 0, 0)
    assert timedelta(0) < reset - datetime.now(UTC) <= timedelta(hours=1)


def test_503_is_transient_and_not_ambiguous(backend: Backend) -> None:
    _, client = backend.new_gmi()
    backend.gmi.fail_next(1, status=503)
    with pytest.raises(TransientError) as info:
        client.list_documents_page()
    assert info.value.status == 503
    assert not info.value.ambiguous
    client.list_documents_page()  # the next call goes through


def test_html_502_from_a_gateway_is_transient_with_a_short_reason(backend: Backend) -> None:
    _, client = backend.new_gmi()
    backend.gmi.fail_next(1, status=502, html=True)
    with pytest.raises(TransientError) as info:
        client.list_documents_page()
    assert info.value.status == 502
    assert "HTML body" in str(info.value)
    assert len(str(info.value)) < 200


def test_dropped_answer_after_an_upload_is_ambiguous_and_the_upload_landed(
    backend: Backend,
) -> None:
    _, client = backend.new_gmi()
    content = unique_pdf("dropped")
    backend.gmi.drop_after_next_write(1)

    with pytest.raises(TransientError) as info:
        client.upload_document(GmiUpload("a.pdf", content, "MISC", document_number="DROP-1"))

    assert info.value.ambiguous
    assert info.value.status is None
    # The caller can find out that its write landed before trying again.
    assert client.document_exists(content)
    assert [d.document_number for d in client.find_documents_by_number("DROP-1")] == ["DROP-1"]
