"""The clients where the APIs are undocumented: an ambiguous 403 is confirmed before anyone
pauses, a firewall page says nothing about the key, a 413 names the size, a refused sort falls
back once and is remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.billomat import DOCUMENTS, INBOX, BillomatClient
from shared.errors import ConfigurationError, PermanentError, RateLimitedError, TransientError
from shared.gmi import GmiClient
from shared.http import lookup_rule
from simulators import BillomatSimulator, make_pdf

from .conftest import RecordingHooks
from .fakes import HTML_502, FakeBillomat, FakeGmi, Reply, json_reply

GMI_KEY = "ABCD-1234-EFGH-5678-IJKL-9012-MNOP-3456"
BID = "acme-gmbh"
BM_KEY = "0123abcd4567ef890123abcd4567ef89"


@pytest.fixture
def gmi(fake_gmi: FakeGmi, hooks: RecordingHooks) -> GmiClient:
    fake_gmi.add_account(GMI_KEY)
    return GmiClient(GMI_KEY, base_url=fake_gmi.base_url, hooks=hooks)


@pytest.fixture
def billomat(fake_billomat: FakeBillomat) -> BillomatClient:
    fake_billomat.add_tenant(BID, BM_KEY)
    return BillomatClient(BID, BM_KEY, url_template=fake_billomat.url_template)


def _paths(fake: FakeGmi | FakeBillomat) -> list[str]:
    return [f"{s.method} {s.path.rsplit('/', 1)[-1]}" for s in fake.seen]


# --- GMI: the 403 family ---------------------------------------------------------------------


def test_403_with_an_empty_body_confirmed_by_an_equally_vague_status_call_waits_not_pauses(
    fake_gmi: FakeGmi, gmi: GmiClient, hooks: RecordingHooks
) -> None:
    fake_gmi.script(json_reply(403, {}), json_reply(403, {}))
    with pytest.raises(RateLimitedError) as info:
        gmi.account()
    assert _paths(fake_gmi) == ["GET account", "GET apiStatus"]
    assert "without a reason" in str(info.value)
    assert 0 < info.value.seconds_left() <= 60  # the next minute: the shortest GMI window
    assert hooks.rate_limited == ["gmi"]


def test_403_with_an_empty_body_while_the_status_call_works_is_a_limit(
    fake_gmi: FakeGmi, gmi: GmiClient
) -> None:
    fake_gmi.script(json_reply(403, {}), json_reply(200, {"success": True}))
    with pytest.raises(RateLimitedError, match="answers GET /apiStatus"):
        gmi.account()


def test_403_with_an_empty_body_is_a_rejected_key_when_the_status_call_says_so(
    fake_gmi: FakeGmi, gmi: GmiClient
) -> None:
    fake_gmi.script(
        json_reply(403, {}), json_reply(403, {"code": 403, "detail": "API Key does not exist"})
    )
    with pytest.raises(ConfigurationError, match="API key does not exist"):
        gmi.account()


def test_an_html_403_and_an_unanswered_status_call_wait_as_well(
    fake_gmi: FakeGmi, gmi: GmiClient
) -> None:
    fake_gmi.script(Reply(403, HTML_502, "text/html"), Reply(drop=True))
    with pytest.raises(RateLimitedError):
        gmi.account()


@pytest.mark.parametrize(
    ("body", "hour"),
    [({"detail": "Daily limit exceeded"}, 0), ({"detail": "Minute limit exceeded"}, None)],
)
def test_a_403_whose_text_names_a_limit_is_a_limit_without_a_second_call(
    fake_gmi: FakeGmi, gmi: GmiClient, body: dict[str, str], hour: int | None
) -> None:
    fake_gmi.script(json_reply(403, body))
    with pytest.raises(RateLimitedError) as info:
        gmi.account()
    assert _paths(fake_gmi) == ["GET account"]
    local = info.value.reset_at.astimezone(ZoneInfo("Europe/Berlin"))
    if hour is not None:
        assert (local.hour, local.minute) == (hour, 0)  # the day ends at midnight in Berlin
    else:
        assert info.value.reset_at - datetime.now(UTC) <= timedelta(seconds=60)


def test_a_403_whose_text_names_a_missing_key_pauses_without_a_second_call(
    fake_gmi: FakeGmi, gmi: GmiClient
) -> None:
    fake_gmi.script(json_reply(403, {"detail": "API Key does not exist"}))
    with pytest.raises(ConfigurationError):
        gmi.account()
    assert _paths(fake_gmi) == ["GET account"]


def test_the_sub_code_wins_over_the_text() -> None:
    rule = lookup_rule("gmi", 403, 403, "Daily limit exceeded")
    assert rule.error is ConfigurationError
    assert lookup_rule("gmi", 403, 429, "API Key does not exist").error is RateLimitedError
    assert lookup_rule("gmi", 403, None, "").confirm


@pytest.mark.parametrize("variant", ["gmi-limit-empty-403", "gmi-limit-detail-403", "documented"])
def test_a_real_limit_in_every_variant_is_waited_out_and_a_wrong_key_pauses(variant: str) -> None:
    from simulators import Simulators

    with Simulators(variants=[variant]) as sims:
        sims.gmi.add_account(GMI_KEY)
        sims.gmi.set_limits(GMI_KEY, per_minute=2, minute_seconds=10**6)  # no turn of the minute
        client = GmiClient(GMI_KEY, base_url=sims.gmi_base_url)
        client.account()
        client.account()
        with pytest.raises(RateLimitedError):
            client.account()
        with pytest.raises(ConfigurationError, match="does not exist"):
            GmiClient("WRONG-KEY-0000", base_url=sims.gmi_base_url).account()


# --- Billomat: 403 and 413 ------------------------------------------------------------------


def test_a_firewall_403_without_rate_headers_is_transient_and_asks_nothing_more(
    fake_billomat: FakeBillomat, billomat: BillomatClient
) -> None:
    fake_billomat.script(Reply(403, b"<html><h1>403 Forbidden</h1></html>", "text/html"))
    with pytest.raises(TransientError, match="in front of the API"):
        billomat.inbox_page()
    assert len(fake_billomat.seen) == 1


def test_a_403_from_the_api_while_the_key_works_is_a_missing_permission(
    fake_billomat: FakeBillomat, billomat: BillomatClient
) -> None:
    headers = {"X-Rate-Limit-Remaining": "250", "X-Rate-Limit-Reset": "2000000000"}
    fake_billomat.script(
        json_reply(403, {"errors": {"error": "Forbidden"}}, **headers),
        json_reply(200, {"client": {"id": "1"}}, **headers),
    )
    with pytest.raises(ConfigurationError, match="lacks a permission"):
        billomat.create_inbox_document(content=make_pdf("x", []))
    assert [s.path.rsplit("/", 1)[-1] for s in fake_billomat.seen] == [
        "inbox-documents",
        "myself",
    ]


def test_a_403_from_the_api_and_a_401_to_the_check_is_a_rejected_key(
    fake_billomat: FakeBillomat, billomat: BillomatClient
) -> None:
    headers = {"X-Rate-Limit-Remaining": "250", "X-Rate-Limit-Reset": "2000000000"}
    fake_billomat.script(
        json_reply(403, {"errors": {"error": "Forbidden"}}, **headers),
        json_reply(401, {"errors": {"error": "Unauthorized"}}, **headers),
    )
    with pytest.raises(ConfigurationError, match="API key rejected"):
        billomat.inbox_page()


def test_a_413_says_how_large_the_refused_upload_was() -> None:
    with BillomatSimulator() as sim:
        sim.add_tenant(BID, BM_KEY)
        sim.set_options(max_upload_bytes=50_000)
        client = BillomatClient(BID, BM_KEY, url_template=sim.url_template)
        big = make_pdf("Big", ["x" * 80] * 900)
        with pytest.raises(PermanentError) as info:
            client.create_inbox_document(content=big, filename="big.pdf")
    assert info.value.status == 413
    assert "too large" in str(info.value)
    assert "MB" in str(info.value)
    assert "did not say its limit" in str(info.value)


# --- Billomat: order_by=id ------------------------------------------------------------------


def test_a_refused_sort_falls_back_once_and_is_remembered() -> None:
    learnt: list[tuple[str, str]] = []
    with BillomatSimulator() as sim:
        sim.add_tenant(BID, BM_KEY)
        sim.set_options(sort_by_id=False)
        for day in ("2026-10-02", "2026-10-01"):
            sim.add_document(BID, "invoices", date=day)
        client = BillomatClient(
            BID,
            BM_KEY,
            url_template=sim.url_template,
            on_sort_learnt=lambda family, field: learnt.append((family, field)),
        )
        first = client.documents_page("invoices", order_by="id ASC")
        second = client.documents_page("invoices", order_by="id ASC")
        inbox = client.inbox_page(order_by="id DESC")
        counts = sim.request_counts(BID)
    assert [d.number for d in first.items] == [d.number for d in second.items]
    assert len(first.items) == 2
    assert inbox.items == []
    assert learnt == [(DOCUMENTS, "created"), (INBOX, "created")]
    # two refusals (one per family), then every call in the learnt order
    assert counts == {"GET /api/invoices": 3, "GET /api/inbox-documents": 2}
    assert client.sort_field(DOCUMENTS) == "created"


def test_a_learnt_sort_is_used_from_the_first_call_and_other_400s_are_not_retried() -> None:
    with BillomatSimulator() as sim:
        sim.add_tenant(BID, BM_KEY)
        sim.set_options(sort_by_id=False)
        client = BillomatClient(
            BID, BM_KEY, url_template=sim.url_template, sort_fields={DOCUMENTS: "date"}
        )
        client.documents_page("invoices", order_by="id ASC")
        assert sim.request_counts(BID) == {"GET /api/invoices": 1}
        sim.fail_next(1, status=400, path_contains="/invoices")
        with pytest.raises(PermanentError):
            client.documents_page("invoices", order_by="id ASC")
        assert sim.request_counts(BID) == {"GET /api/invoices": 2}


def test_when_the_api_refuses_every_sort_lists_come_unsorted() -> None:
    with BillomatSimulator() as sim:
        sim.add_tenant(BID, BM_KEY)
        client = BillomatClient(BID, BM_KEY, url_template=sim.url_template)
        sim.fail_next(3, status=400, path_contains="/credit-notes")
        page = client.documents_page("credit-notes", order_by="id ASC")
    assert page.items == []
    assert client.sort_field(DOCUMENTS) == ""
