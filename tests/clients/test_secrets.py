"""No API key in any exception text, repr, chained cause or log line, for every error class."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

import pytest

from shared.billomat import BillomatClient
from shared.errors import (
    ApiError,
    ConfigurationError,
    DuplicateDocumentError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from shared.gmi import GmiClient, GmiUpload

from .fakes import FakeBillomat, FakeGmi, Reply, json_reply

GMI_KEY = "SECR-ETGM-IKEY-0000-1111-2222-3333-4444"
BM_KEY = "secretbillomatkey0123456789abcdef"
APP_SECRET = "secret-app-secret-value"
SECRETS = (GMI_KEY, BM_KEY, APP_SECRET)


def chain(e: BaseException | None) -> Iterator[BaseException]:
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def assert_clean(error: BaseException) -> None:
    for link in chain(error):
        for text in (str(link), repr(link), *map(str, link.args)):
            for secret in SECRETS:
                assert secret not in text, f"{type(link).__name__} leaks a key: {text}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GmiCase = Callable[[FakeGmi, GmiClient], object]


def _gmi_cases() -> list[tuple[str, type[ApiError], GmiCase]]:
    upload = GmiUpload("a.pdf", b"%PDF-secret", "MISC")

    def duplicate(fake: FakeGmi, c: GmiClient) -> object:
        c.upload_document(upload)
        return c.upload_document(upload)

    def echoing_config(fake: FakeGmi, c: GmiClient) -> object:
        fake.script(json_reply(403, {"code": 403, "detail": f"API Key {GMI_KEY} does not exist"}))
        return c.account()

    def rate_limited(fake: FakeGmi, c: GmiClient) -> object:
        fake.script(json_reply(403, {"code": 429, "detail": f"Limit for {GMI_KEY} exceeded"}))
        return c.account()

    def not_found(fake: FakeGmi, c: GmiClient) -> object:
        return c.get_document(123)

    def permanent(fake: FakeGmi, c: GmiClient) -> object:
        fake.script(
            json_reply(422, {"success": False, "errors": [{"code": 146, "detail": GMI_KEY}]})
        )
        return c.upload_document(upload)

    def dropped(fake: FakeGmi, c: GmiClient) -> object:
        fake.script(Reply(drop=True))
        return c.upload_document(upload)

    def html(fake: FakeGmi, c: GmiClient) -> object:
        fake.script(Reply(502, f"<html><body>{GMI_KEY}</body></html>", "text/html"))
        return c.account()

    def refused(fake: FakeGmi, c: GmiClient) -> object:
        return GmiClient(GMI_KEY, base_url=f"http://127.0.0.1:{closed_port()}").account()

    return [
        ("configuration", ConfigurationError, echoing_config),
        ("rate-limited", RateLimitedError, rate_limited),
        ("not-found", NotFoundError, not_found),
        ("duplicate", DuplicateDocumentError, duplicate),
        ("permanent", PermanentError, permanent),
        ("ambiguous", TransientError, dropped),
        ("html", TransientError, html),
        ("refused", TransientError, refused),
    ]


@pytest.mark.parametrize(
    ("name", "expected", "case"), _gmi_cases(), ids=[c[0] for c in _gmi_cases()]
)
def test_gmi_failures_never_show_the_api_key(
    fake_gmi: FakeGmi,
    caplog: pytest.LogCaptureFixture,
    name: str,
    expected: type[ApiError],
    case: GmiCase,
) -> None:
    fake_gmi.add_account(GMI_KEY)
    client = GmiClient(GMI_KEY, base_url=fake_gmi.base_url)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(expected) as info:
        case(fake_gmi, client)

    assert_clean(info.value)
    assert GMI_KEY not in repr(client)
    assert all(GMI_KEY not in r.getMessage() for r in caplog.records)


BmCase = Callable[[FakeBillomat, BillomatClient], object]


def _billomat_cases() -> list[tuple[str, type[ApiError], BmCase]]:
    def bad_key(fake: FakeBillomat, c: BillomatClient) -> object:
        fake.script(json_reply(401, {"errors": {"error": f"Key {BM_KEY} is invalid"}}))
        return c.inbox_page()

    def rate_limited(fake: FakeBillomat, c: BillomatClient) -> object:
        fake.script(json_reply(429, {"errors": {"error": f"{BM_KEY}: Try again in 9 seconds."}}))
        return c.inbox_page()

    def not_found(fake: FakeBillomat, c: BillomatClient) -> object:
        return c.get_document("invoices", 5)

    def permanent(fake: FakeBillomat, c: BillomatClient) -> object:
        fake.script(Reply(400, f"bad request from {BM_KEY} / {APP_SECRET}", "text/plain"))
        return c.create_inbox_document(content=b"%PDF")

    def dropped(fake: FakeBillomat, c: BillomatClient) -> object:
        fake.drop_after_next_write(1)
        return c.create_inbox_document(content=b"%PDF")

    return [
        ("configuration", ConfigurationError, bad_key),
        ("rate-limited", RateLimitedError, rate_limited),
        ("not-found", NotFoundError, not_found),
        ("permanent", PermanentError, permanent),
        ("ambiguous", TransientError, dropped),
    ]


@pytest.mark.parametrize(
    ("name", "expected", "case"), _billomat_cases(), ids=[c[0] for c in _billomat_cases()]
)
def test_billomat_failures_never_show_the_api_key_or_app_secret(
    fake_billomat: FakeBillomat,
    caplog: pytest.LogCaptureFixture,
    name: str,
    expected: type[ApiError],
    case: BmCase,
) -> None:
    fake_billomat.add_tenant("acme", BM_KEY)
    client = BillomatClient(
        "acme",
        BM_KEY,
        url_template=fake_billomat.url_template,
        app_id="7",
        app_secret=APP_SECRET,
    )
    caplog.set_level(logging.DEBUG)

    with pytest.raises(expected) as info:
        case(fake_billomat, client)

    assert_clean(info.value)
    assert BM_KEY not in repr(client)
    assert all(BM_KEY not in r.getMessage() for r in caplog.records)


def test_server_echoing_the_key_is_redacted_not_dropped(fake_gmi: FakeGmi) -> None:
    fake_gmi.add_account(GMI_KEY)
    fake_gmi.script(json_reply(403, {"code": 407, "detail": f"API Key {GMI_KEY} is blocked"}))
    with pytest.raises(ConfigurationError) as info:
        GmiClient(GMI_KEY, base_url=fake_gmi.base_url).account()
    assert "API Key *** is blocked" in str(info.value)


@pytest.mark.parametrize("bad", ["", " leading", "trailing ", "new\nline", "tab\tin"])
def test_unusable_keys_are_refused_up_front_without_quoting_them(bad: str) -> None:
    with pytest.raises(ConfigurationError) as gmi:
        GmiClient(bad)
    with pytest.raises(ConfigurationError) as billomat:
        BillomatClient("acme", bad)
    for error in (gmi.value, billomat.value):
        if bad:
            assert bad not in str(error)
        assert "X-" in str(error)  # names the header, not the value
