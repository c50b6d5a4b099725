"""BillomatClient on the wire: headers, query encoding and quirks, against the recorded fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.billomat import BillomatClient
from shared.errors import ConfigurationError, PermanentError, RateLimitedError, TransientError

from .fakes import HTML_502, FakeBillomat, Reply, json_reply

BID = "acme-gmbh"
KEY = "0123abcd4567ef890123abcd4567ef89"


@pytest.fixture
def client(fake_billomat: FakeBillomat) -> BillomatClient:
    fake_billomat.add_tenant(BID, KEY)
    return BillomatClient(BID, KEY, url_template=fake_billomat.url_template)


def test_requests_ask_for_json_and_carry_the_key_only_in_a_header(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    client.inbox_page()
    client.create_inbox_document(content=b"%PDF-1")
    get, post = fake_billomat.seen
    assert get.path == f"/{BID}/api/inbox-documents"
    for seen in (get, post):
        assert seen.header("Accept") == "application/json"
        assert seen.header("X-BillomatApiKey") == KEY
        assert (seen.header("User-Agent") or "").startswith("belegsync/")
        assert KEY not in seen.raw_query
    assert post.header("Content-Type") == "application/json"
    assert post.json() == {"inbox-document": {"base64file": "JVBERi0x"}}


def test_order_by_reaches_the_server_with_a_literal_plus_and_statuses_as_a_comma_list(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    client.documents_page("invoices", statuses=["open", "PAID"], order_by="date DESC,id ASC")
    raw = fake_billomat.seen[-1].raw_query
    assert "order_by=date+DESC,id+ASC" in raw
    assert "status=OPEN,PAID" in raw
    client.inbox_page(order_by="id ASC")
    assert "order_by=id+ASC" in fake_billomat.seen[-1].raw_query


def test_app_credentials_are_sent_together_or_refused(fake_billomat: FakeBillomat) -> None:
    fake_billomat.add_tenant(BID, KEY)
    client = BillomatClient(
        BID, KEY, url_template=fake_billomat.url_template, app_id="42", app_secret="s3cr3t-app"
    )
    client.inbox_page()
    assert fake_billomat.seen[-1].header("X-AppId") == "42"
    assert fake_billomat.seen[-1].header("X-AppSecret") == "s3cr3t-app"
    with pytest.raises(ConfigurationError, match="both"):
        BillomatClient(BID, KEY, app_id="42")


@pytest.mark.parametrize("bad_id", ["Acme", "acme.evil.com", "-acme", "acme/../x", "", "a" * 64])
def test_billomat_id_is_validated_before_it_reaches_a_url(bad_id: str) -> None:
    with pytest.raises(ConfigurationError, match="Billomat ID"):
        BillomatClient(bad_id, KEY)


def test_unknown_kind_is_refused_without_a_call(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    with pytest.raises(ValueError, match="unknown Billomat document kind"):
        client.documents_page("invoice")
    with pytest.raises(ValueError, match="unknown"):
        client.get_pdf("receipts", 1)
    assert fake_billomat.seen == []


def test_list_with_page_past_the_end_has_no_item_key(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    fake_billomat.script(
        json_reply(200, {"invoices": {"@page": "2", "@per_page": "100", "@total": "3"}})
    )
    page = client.documents_page("invoices", page=2, per_page=100)
    assert (page.items, page.total, page.has_more) == ([], 3, False)


def test_inbox_metadata_as_one_object_or_empty_string(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    base = {"id": "17", "filename": "inbox_17.pdf", "mimetype": "application/pdf", "filesize": "9"}
    fake_billomat.script(
        json_reply(
            200, {"inbox-document": {**base, "metadata": {"data": {"key": "A", "value": "1"}}}}
        ),
        json_reply(200, {"inbox-document": {**base, "metadata": ""}}),
    )
    assert client.get_inbox_document(17).metadata == {"A": "1"}
    assert client.get_inbox_document(17).metadata == {}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (json_reply(400, {"errors": {"error": "base64file is missing"}}), "base64file is missing"),
        (
            json_reply(400, {"errors": {"error": ["first problem", "second problem"]}}),
            "first problem; second problem",
        ),
        (
            Reply(
                400,
                '<?xml version="1.0"?><errors><error>Invalid date</error></errors>',
                "application/xml",
            ),
            "Invalid date",
        ),
        (Reply(400, "Field filename is too long", "text/plain"), "Field filename is too long"),
    ],
)
def test_error_reasons_are_read_from_json_xml_and_plain_text(
    fake_billomat: FakeBillomat, client: BillomatClient, reply: Reply, expected: str
) -> None:
    fake_billomat.script(reply)
    with pytest.raises(PermanentError) as info:
        client.create_inbox_document(content=b"%PDF-1")
    assert expected in str(info.value)
    assert info.value.status == 400


def test_html_gateway_page_becomes_a_short_reason(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    fake_billomat.script(Reply(502, HTML_502, "text/html"))
    with pytest.raises(TransientError) as info:
        client.inbox_page()
    assert (
        str(info.value)
        == "billomat HTTP 502: server error: HTTP 502 with an HTML body (GET /inbox-documents)"
    )


def test_rate_limit_reset_falls_back_to_the_try_again_text_then_sixty_seconds(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    text = "Maximum number of requests (300 per 15 minutes) reached. Try again in 246 seconds."
    fake_billomat.script(json_reply(429, {"errors": {"error": text}}), Reply(429, b"", None))

    with pytest.raises(RateLimitedError) as first:
        client.inbox_page()
    with pytest.raises(RateLimitedError) as second:
        client.inbox_page()

    assert 240 < first.value.seconds_left() <= 246
    assert 55 < second.value.seconds_left() <= 60
    assert "Try again in 246 seconds" in str(first.value)


def test_rate_limit_reset_header_wins(fake_billomat: FakeBillomat, client: BillomatClient) -> None:
    reset = int((datetime.now(UTC) + timedelta(seconds=500)).timestamp())
    fake_billomat.script(
        Reply(
            429,
            {"errors": {"error": "Try again in 5 seconds."}},
            headers={"X-Rate-Limit-Reset": str(reset), "X-Rate-Limit-Remaining": "0"},
        )
    )
    with pytest.raises(RateLimitedError) as info:
        client.inbox_page()
    assert info.value.reset_at == datetime.fromtimestamp(reset, UTC)
    assert client.quota is not None
    assert client.quota.remaining == 0


def test_server_error_on_an_inbox_upload_is_ambiguous_but_not_on_a_read(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    fake_billomat.script(json_reply(500, {"errors": {"error": "Internal"}}))
    fake_billomat.script(json_reply(500, {"errors": {"error": "Internal"}}))
    with pytest.raises(TransientError) as write:
        client.create_inbox_document(content=b"%PDF-1")
    with pytest.raises(TransientError) as read:
        client.inbox_page()
    assert write.value.ambiguous
    assert not read.value.ambiguous


def test_pdf_sent_as_raw_bytes_is_accepted(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    fake_billomat.script(Reply(200, b"%PDF-1.7 raw", "application/pdf"))
    pdf = client.get_pdf("credit-notes", 7)
    assert (pdf.content, pdf.filename, pdf.mimetype) == (
        b"%PDF-1.7 raw",
        "credit-note-7.pdf",
        "application/pdf",
    )


def test_redirect_means_a_wrong_base_url(
    fake_billomat: FakeBillomat, client: BillomatClient
) -> None:
    fake_billomat.script(Reply(301, b"", None, headers={"Location": "https://www.billomat.com/"}))
    with pytest.raises(ConfigurationError, match="redirect"):
        client.inbox_page()
