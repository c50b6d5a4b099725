"""GmiClient on the wire: headers, query encoding and every quirk the simulator may not produce.

These run against the recorded-response fake, replaying bodies shaped as in getmyinvoices.md.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.errors import (
    ConfigurationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from shared.gmi import GmiClient, GmiUpload

from .conftest import RecordingHooks
from .fakes import FakeGmi, Reply, json_reply

KEY = "ABCD-1234-EFGH-5678-IJKL-9012-MNOP-3456"


@pytest.fixture
def client(fake_gmi: FakeGmi, hooks: RecordingHooks) -> GmiClient:
    fake_gmi.add_account(KEY)
    return GmiClient(KEY, base_url=fake_gmi.base_url, hooks=hooks)


def test_every_call_sends_key_accept_user_agent_and_application(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    client.list_documents_page()
    client.upload_document(GmiUpload("a.pdf", b"%PDF-1", "MISC"))

    get, post = fake_gmi.seen
    for seen in (get, post):
        assert seen.header("X-API-KEY") == KEY
        assert seen.header("Accept") == "application/json"
        assert (seen.header("User-Agent") or "").startswith("belegsync/")
        assert seen.header("x-application") == "belegsync"
    assert post.header("Content-Type") == "application/json"
    assert get.header("Content-Type") is None
    assert KEY not in get.raw_query + post.raw_query  # the key only ever travels in a header


def test_list_filters_use_php_array_syntax_and_utc_since(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    since = datetime(2026, 7, 1, 12, 30, 5, tzinfo=ZoneInfo("Europe/Berlin"))
    client.list_documents_page(
        page=2,
        per_page=50,
        updated_since=since,
        document_type="SALES_INVOICE",
        tags=["a b", "c"],
        start_date=date(2026, 1, 1),
        end_date=date(2026, 12, 31),
        archived=1,
        company=307,
        document_number="RE-1",
        uid_start=28715,
    )
    seen = fake_gmi.seen[-1]

    assert seen.q_all("tagFilter[]") == ["a b", "c"]  # PHP array syntax
    assert "updatedOrNewSinceFilter=2026-07-01+10:30:05" in seen.raw_query
    assert seen.q("updatedOrNewSinceFilter") == "2026-07-01 10:30:05"
    assert seen.q("pageNumber") == "2"
    assert seen.q("perPage") == "50"
    assert seen.q("startDateFilter") == "2026-01-01"
    assert seen.q("endDateFilter") == "2026-12-31"
    assert seen.q("archivedFilter") == "1"
    assert seen.q("companyFilter") == "307"
    assert seen.q("documentNumberFilter") == "RE-1"
    assert seen.q("documentUidStartFilter") == "28715"
    assert seen.q("documentTypeFilter") == "SALES_INVOICE"


def test_invalid_filters_are_refused_before_any_call(fake_gmi: FakeGmi, client: GmiClient) -> None:
    with pytest.raises(ValueError, match="aware"):
        client.list_documents_page(updated_since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="per_page"):
        client.list_documents_page(per_page=501)
    with pytest.raises(ValueError, match="document type"):
        client.upload_document(GmiUpload("a.pdf", b"x", "INVOICE"))
    assert fake_gmi.seen == []


def test_records_as_one_bare_object_and_numbers_as_strings(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    record = {
        "documentUid": "28715",
        "createdAt": "2017-08-17",
        "companyUid": "307",
        "companyName": "1&1.de",
        "documentType": "INCOMING_INVOICE",
        "documentNumber": "receipt-1",
        "documentDate": "2017-08-17",
        "netAmount": "25.50",
        "grossAmount": "30.35",
        "currency": "EUR",
        "isArchived": "0",
        "isLocked": "1",
        "tags": ["Hosting"],
        "note": "",
        "filename": "receipt-1.pdf",
    }
    fake_gmi.script(json_reply(200, {"totalCount": "1", "maxPages": "1", "records": record}))

    page = client.list_documents_page()

    (doc,) = page.records
    assert doc.uid == 28715
    assert str(doc.net_amount) == "25.50"
    assert (doc.is_archived, doc.is_locked) == (False, True)
    assert (page.total_count, page.max_pages, page.has_more) == (1, 1, False)


def test_paging_without_max_pages_stops_at_total_count(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    rec = {"documentUid": 1, "documentNumber": "x"}
    fake_gmi.script(
        json_reply(200, {"totalCount": 3, "records": [rec, {**rec, "documentUid": 2}]}),
        json_reply(200, {"totalCount": 3, "records": [{**rec, "documentUid": 3}]}),
    )
    assert [d.uid for d in client.iter_documents(per_page=2)] == [1, 2, 3]
    assert len(fake_gmi.seen) == 2


def test_success_false_inside_a_200_is_an_error_classified_by_its_code(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    fake_gmi.script(
        json_reply(200, {"success": False, "detail": "Invalid Document.", "error_code": 135}),
        json_reply(200, {"success": False, "errors": [{"code": 146, "detail": "Bad type."}]}),
    )
    with pytest.raises(NotFoundError) as info:
        client.update_document(1, note="x")
    assert (info.value.status, info.value.code) == (200, 135)
    with pytest.raises(PermanentError, match="Bad type") as info2:
        client.update_document(1, note="x")
    assert info2.value.code == 146


def test_validation_failure_is_permanent_with_the_api_reason(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    fake_gmi.script(
        json_reply(422, {"success": False, "detail": "Invalid Date Format.", "error_code": 104})
    )
    with pytest.raises(PermanentError) as info:
        client.list_documents_page()
    assert type(info.value) is PermanentError
    assert "Invalid Date Format." in str(info.value)
    assert info.value.code == 104


def test_unexpected_error_100_on_upload_is_transient_and_ambiguous(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    fake_gmi.script(
        json_reply(
            422, {"success": False, "detail": "An unexpected error occurred.", "error_code": 100}
        )
    )
    with pytest.raises(TransientError) as info:
        client.upload_document(GmiUpload("a.pdf", b"%PDF-x", "MISC"))
    assert info.value.ambiguous
    assert info.value.code == 100


def test_content_type_rejection_415_is_permanent(fake_gmi: FakeGmi, client: GmiClient) -> None:
    fake_gmi.script(json_reply(415, {"code": 415, "detail": "Request content-type is not valid."}))
    with pytest.raises(PermanentError, match="content-type"):
        client.update_document(1, is_archived=True)


def test_daily_limit_waits_until_midnight_in_berlin(
    fake_gmi: FakeGmi, client: GmiClient, hooks: RecordingHooks
) -> None:
    fake_gmi.script(json_reply(403, {"code": 429, "detail": "Daily API call limit exceeded."}))
    with pytest.raises(RateLimitedError) as info:
        client.account()
    local = info.value.reset_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
    assert timedelta(0) < info.value.reset_at - datetime.now(UTC) <= timedelta(days=1)
    assert hooks.rate_limited == ["gmi"]


def test_rate_limit_without_any_hint_waits_sixty_seconds(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    fake_gmi.script(Reply(429, b"", None))
    with pytest.raises(RateLimitedError) as info:
        client.account()
    left = info.value.seconds_left()
    assert 55 < left <= 60


def test_html_body_on_a_200_is_transient_and_short(fake_gmi: FakeGmi, client: GmiClient) -> None:
    fake_gmi.script(Reply(200, b"<!DOCTYPE html><html>" + b"x" * 5000, "text/html"))
    with pytest.raises(TransientError) as info:
        client.account()
    assert "HTML body" in str(info.value)
    assert len(str(info.value)) < 200


def test_upload_answer_without_uid_is_transient_and_ambiguous(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    fake_gmi.script(json_reply(200, {"success": True}))
    with pytest.raises(TransientError) as info:
        client.upload_document(GmiUpload("a.pdf", b"%PDF-x", "MISC"))
    assert info.value.ambiguous


def test_bare_json_body_of_403_without_code_is_confirmed_before_it_counts_as_a_bad_key(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    fake_gmi.script(json_reply(403, {}), json_reply(403, {"code": 403, "detail": "nope"}))
    with pytest.raises(ConfigurationError):
        client.account()
    assert [s.path for s in fake_gmi.seen][-1].endswith("/apiStatus")


def test_hooks_see_low_cardinality_endpoints(
    fake_gmi: FakeGmi, client: GmiClient, hooks: RecordingHooks
) -> None:
    uid = fake_gmi.seed_document(KEY)
    client.get_document(uid)
    client.update_document(uid, tags=["x"])
    assert [e for _, e, _ in hooks.responses] == ["GET /documents/{uid}", "PUT /documents/{uid}"]
    assert {a for a, _, _ in hooks.responses} == {"gmi"}
