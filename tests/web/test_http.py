"""The console over HTTP: the login wall, CSRF, throttled logins, secrets kept out of every
answer and log line, security headers, history written with the acting user.
"""

from __future__ import annotations

import logging
import re

import pytest
import requests
from sqlalchemy import select

from shared.db import AccountEvent, LoginThrottle, SyncAccount
from simulators import Simulators
from tests.e2e.conftest import GMI_KEY
from tests.helpers import snapshot
from tests.web.conftest import PASSWORD, USER, RunningConsole, csrf_of

PAGES = [
    "/",
    "/?fragment=1",
    "/accounts/new",
    "/accounts/new?direction=export",
    "/accounts/new?direction=import",
    "/accounts/1",
    "/accounts/1/edit",
    "/accounts/1/remove",
    "/documents",
    "/documents?state=parked",
    "/documents/1",
    "/failed",
]
POSTS = [
    "/accounts/new",
    "/accounts/1/edit",
    "/accounts/1/pause",
    "/accounts/1/resume",
    "/accounts/1/remove",
    "/failed/preview",
    "/failed/replay",
    "/logout",
]


def get(session: requests.Session | None, url: str) -> requests.Response:
    return (session or requests).get(url, allow_redirects=False, timeout=15)


def test_every_page_redirects_to_login_when_logged_out_but_health_answers(
    web: RunningConsole,
) -> None:
    web.pipeline.add_export()
    for path in PAGES:
        response = get(None, web.url(path))
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
    for path in POSTS:
        response = requests.post(
            web.url(path), data={"csrf": "x"}, allow_redirects=False, timeout=15
        )
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login"), path
    assert get(None, web.url("/healthz")).text == "ok\n"
    assert get(None, web.url("/readyz")).json() == {"database": True}
    assert "# HELP" in get(None, web.url("/metrics")).text
    assert get(None, web.url("/static/console.css")).status_code == 200


def test_logout_ends_the_session_on_the_server(web: RunningConsole) -> None:
    session = web.login()
    cookie = session.cookies.get("belegsync_session")
    assert get(session, web.url("/")).status_code == 200
    session.post(web.url("/logout"), data={"csrf": web.csrf(session)}, timeout=15)
    stolen = requests.Session()
    stolen.cookies.set("belegsync_session", cookie)
    assert get(stolen, web.url("/")).status_code == 303


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_a_form_without_its_csrf_token_gets_403_and_changes_nothing(
    web: RunningConsole, sims: Simulators, token: str | None
) -> None:
    account_id = web.pipeline.add_export()
    uid = sims.gmi.seed_document(GMI_KEY)
    sims.billomat.fail_next(1, status=400, methods=["POST"], path_contains="inbox-documents")
    web.pipeline.produce_once()
    web.pipeline.consume(idle_exit=1.5)
    assert web.pipeline.states() == {str(uid): "parked"}
    session = web.login()
    before = snapshot(web.pipeline.settings.database_url)
    forms = {
        "/accounts/new": {"direction": "export", "name": "x", "billomat_id": "acme",
                          "gmi_api_key": "k1", "billomat_api_key": "k2", "interval": "15m"},
        f"/accounts/{account_id}/edit": {"name": "renamed", "interval": "1h"},
        f"/accounts/{account_id}/pause": {},
        f"/accounts/{account_id}/remove": {"confirm_name": "acme-export"},
        "/failed/replay": {"everything": "1"},
        "/logout": {},
    }  # fmt: skip
    for path, data in forms.items():
        if token is not None:
            data = {**data, "csrf": token}
        response = session.post(web.url(path), data=data, allow_redirects=False, timeout=15)
        assert response.status_code == 403, path
        assert "security token" in response.text
    assert snapshot(web.pipeline.settings.database_url) == before
    assert get(session, web.url("/")).status_code == 200  # still logged in: logout was refused
    # The login form has its own token.
    response = requests.post(
        web.url("/login"), data={"name": USER, "password": PASSWORD},
        allow_redirects=False, timeout=15,
    )  # fmt: skip
    assert response.status_code == 403
    assert "belegsync_session" not in response.cookies


def test_five_wrong_passwords_slow_the_name_down_even_for_the_right_one(
    web: RunningConsole,
) -> None:
    browser = requests.Session()
    for _ in range(4):
        assert web.try_login(browser, USER, "wrong password!").status_code == 401
    # Four mistakes are not punished yet.
    assert web.try_login(requests.Session(), USER, PASSWORD).status_code == 303
    # The success forgot them; five in a row block the name.
    for _ in range(5):
        assert web.try_login(browser, USER, "wrong password!").status_code == 401
    refused = web.try_login(requests.Session(), USER, PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 25
    assert "belegsync_session" not in refused.cookies
    assert "Too many failed logins" in refused.text
    with web.pipeline.db.session() as session:
        row = session.get(LoginThrottle, f"user:{USER}")
        assert row is not None
        assert row.failures == 5
        assert row.blocked_until is not None
    # Another name from the same address is not blocked (the address allows more).
    assert web.try_login(requests.Session(), "nobody", "whatever-123").status_code == 401


def test_session_cookie_flags_and_security_headers(web: RunningConsole) -> None:
    browser = requests.Session()
    page = browser.get(web.url("/login"), timeout=15)
    response = browser.post(
        web.url("/login"),
        data={"csrf": csrf_of(page.text), "name": USER, "password": PASSWORD},
        allow_redirects=False, timeout=15,
    )  # fmt: skip
    cookie = next(c for c in response.raw.headers.getlist("set-cookie") if "belegsync_session" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; BELEGSYNC_WEB_SECURE_COOKIES adds it
    overview = browser.get(web.url("/"), timeout=15)
    csp = overview.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert overview.headers["x-frame-options"] == "DENY"
    assert overview.headers["cache-control"] == "no-store"


PLANTED = {
    "gmi": "GMI-PLANTED-KEY-5f2c9a71",
    "billomat": "BM-PLANTED-KEY-0d8e4b36",
    "webhook": "HOOK-PLANTED-PW-77aa19",
}


def test_no_answer_and_no_log_line_contains_a_planted_key(
    web: RunningConsole, sims: Simulators, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.accounts import AccountChanges
    from shared.domain import Direction

    caplog.set_level(logging.DEBUG)
    accounts = web.pipeline.accounts
    accounts.add(
        Direction.EXPORT, "planted-export",
        AccountChanges(gmi_api_key=PLANTED["gmi"], billomat_id="acme",
                       billomat_api_key=PLANTED["billomat"], require_approval=False,
                       archive_after_transfer=False),
    )  # fmt: skip
    accounts.add(
        Direction.IMPORT, "planted-import",
        AccountChanges(gmi_api_key=PLANTED["gmi"], billomat_id="acme",
                       billomat_api_key=PLANTED["billomat"], webhook_username="hook",
                       webhook_password=PLANTED["webhook"]),
    )  # fmt: skip
    session = web.login()
    # A refused edit and a refused add echo the form back: without the keys.
    csrf = web.csrf(session)
    answers = [
        session.post(
            web.url("/accounts/1/edit"),
            data={"csrf": csrf, "name": "planted-export", "billomat_id": "acme",
                  "interval": "eleven", "gmi_api_key": PLANTED["gmi"]},
            timeout=15,
        ),
        session.post(
            web.url("/accounts/new"),
            data={"csrf": csrf, "direction": "import", "name": "planted-import",
                  "billomat_id": "acme", "interval": "1h", "gmi_api_key": PLANTED["gmi"],
                  "billomat_api_key": PLANTED["billomat"],
                  "webhook_password": PLANTED["webhook"]},
            timeout=15,
        ),
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [400, 400]
    pages = [p.replace("/1", f"/{n}") for n in (1, 2) for p in PAGES]
    pages += ["/metrics", "/readyz", "/healthz"]
    answers += [session.get(web.url(path), timeout=15) for path in pages]
    for answer in answers:
        for key in PLANTED.values():
            assert key not in answer.text, answer.url
            assert key[-8:] not in answer.text, answer.url  # not even a longer tail
    account_page = session.get(web.url("/accounts/1"), timeout=15).text
    assert "***" + PLANTED["gmi"][-4:] in account_page
    for record in caplog.records:
        for key in PLANTED.values():
            assert key not in record.getMessage()


def test_templates_have_no_inline_script_style_or_handler(web: RunningConsole) -> None:
    web.pipeline.add_export()
    session = web.login()
    for path in PAGES:
        html = session.get(web.url(path), timeout=15).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path


def test_edit_writes_the_account_history_with_the_user_and_an_untouched_save_changes_nothing(
    web: RunningConsole,
) -> None:
    account_id = web.pipeline.add_export(interval_seconds=1800)
    session = web.login()
    form_page = session.get(web.url(f"/accounts/{account_id}/edit"), timeout=15).text
    fields = dict(re.findall(r'name="([a-z_]+)" type="(?:text|date)" value="([^"]*)"', form_page))
    fields["csrf"] = csrf_of(form_page)
    before = snapshot(web.pipeline.settings.database_url)
    untouched = session.post(
        web.url(f"/accounts/{account_id}/edit"), data=fields, allow_redirects=False, timeout=15
    )
    assert untouched.headers["location"].endswith("unchanged=1")
    assert snapshot(web.pipeline.settings.database_url) == before

    changed = session.post(
        web.url(f"/accounts/{account_id}/edit"),
        data={**fields, "interval": "1h", "gmi_api_key": "GMI-NEW-KEY-0099"},
        allow_redirects=False, timeout=15,
    )  # fmt: skip
    assert changed.headers["location"].endswith("saved=1")
    session.post(
        web.url(f"/accounts/{account_id}/pause"), data={"csrf": fields["csrf"]}, timeout=15
    )
    with web.pipeline.db.session() as db_session:
        account = db_session.get(SyncAccount, account_id)
        assert account is not None
        assert (account.interval_seconds, account.enabled) == (3600, False)
        events = db_session.scalars(select(AccountEvent).order_by(AccountEvent.id)).all()
        history = [(e.actor, e.action, e.details) for e in events]
    assert history == [
        (USER, "updated", "interval: 30m → 1h; GMI API key changed"),
        (USER, "paused", ""),
    ]
    assert "GMI-NEW-KEY-0099" not in str(history)
    overview = session.get(web.url("/"), headers={"Accept-Language": "en"}, timeout=15).text
    assert "paused</span>" in overview
    assert f"{USER}, " in overview  # who paused it, and when


def test_remove_needs_the_name_typed_and_is_in_the_history(web: RunningConsole) -> None:
    account_id = web.pipeline.add_export()
    session = web.login()
    csrf = web.csrf(session)
    wrong = session.post(
        web.url(f"/accounts/{account_id}/remove"), data={"csrf": csrf, "confirm_name": "acme"},
        timeout=15,
    )  # fmt: skip
    assert wrong.status_code == 400
    assert [a.name for a in web.pipeline.accounts.list()] == ["acme-export"]
    right = session.post(
        web.url(f"/accounts/{account_id}/remove"),
        data={"csrf": csrf, "confirm_name": "acme-export"}, timeout=15,
    )  # fmt: skip
    assert right.status_code == 200
    assert web.pipeline.accounts.list() == []
    with web.pipeline.db.session() as db_session:
        [event] = db_session.scalars(select(AccountEvent)).all()
        assert (event.account_name, event.action, event.actor) == ("acme-export", "removed", USER)


def test_language_follows_the_browser_and_the_switch(web: RunningConsole) -> None:
    session = web.login()
    german = session.get(web.url("/"), headers={"Accept-Language": "de-DE,de;q=0.9"}, timeout=15)
    assert "Synchronisations-Konten" in german.text
    english = session.get(web.url("/"), headers={"Accept-Language": "en;q=0.8,de;q=0.5"},
                          timeout=15)  # fmt: skip
    assert "Sync accounts" in english.text
    session.get(web.url("/lang/de?next=/"), timeout=15)
    assert (
        "Synchronisations-Konten"
        in session.get(web.url("/"), headers={"Accept-Language": "en"}, timeout=15).text
    )
    # The switch sends nobody elsewhere.
    outside = session.get(web.url("/lang/en?next=//evil.example"), allow_redirects=False,
                          timeout=15)  # fmt: skip
    assert outside.headers["location"] == "/"


def test_an_oversized_body_is_refused_before_anyone_parses_it(web: RunningConsole) -> None:
    response = requests.post(
        web.url("/login"), data={"name": "x" * 2_000_000, "password": "y"}, timeout=30
    )
    assert response.status_code == 413


def test_the_overview_shows_the_quota_windows_that_status_shows(web: RunningConsole) -> None:
    web.pipeline.add_export()
    web.pipeline.sims.gmi.seed_document(GMI_KEY, document_type="INCOMING_INVOICE")
    web.pipeline.produce_once()
    assert web.pipeline.consume() == 1
    [row] = web.pipeline.overview()
    known = [w for w in row["quota"] if w["limit"] is not None]
    assert {w["api"] for w in known} == {"gmi", "billomat"}  # both APIs were called
    session = web.login()
    english = session.get(web.url("/"), headers={"Accept-Language": "en"}, timeout=15).text
    for window in known:
        name = "GMI" if window["api"] == "gmi" else "Billomat"
        # `left` may have moved by the console's own reading; the window and limit may not
        assert re.search(
            rf"{name} · {re.escape(window['window'])}: \d+ of {window['limit']} left", english
        ), window
    german = session.get(web.url("/"), headers={"Accept-Language": "de"}, timeout=15).text
    assert re.search(r"GMI · Minute: \d+ von 100 frei, bis ", german)
    assert f'<td class="num">{row["backlog"]}</td>' in english
