"""The console in a real headless Chromium: log in, add an export and an import account
through the wizard (one wrong field first), sync on the simulators, watch the overview and the
documents, replay a parked document, log out.  Screenshots: tests/web/artifacts/.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.db import AccountEvent
from simulators import Simulators
from tests.e2e.conftest import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY
from tests.web.browser import Shots
from tests.web.conftest import PASSWORD, USER, RunningConsole


def problems_of(page: Any) -> list[str]:
    """Console errors and uncaught exceptions (a CSP violation shows up here).

    Not the 400 of a refused form: Chromium logs every 4xx answer as a failed resource.
    """
    seen: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            seen.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: seen.append(str(e)))
    return seen


def test_login_wizard_sync_park_replay_logout_in_chromium(
    web: RunningConsole, sims: Simulators, browser_context: Any, shots: Shots
) -> None:
    origin = web.origin
    page = browser_context.new_page()
    problems = problems_of(page)

    # -- log in ---------------------------------------------------------------------------------
    page.goto(origin + "/")
    assert page.url.startswith(origin + "/login")
    shots(page, "login")
    page.fill("#name", USER)
    page.fill("#password", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(origin + "/")
    assert page.locator("h1").inner_text() == "Synchronisations-Konten"  # German from the browser
    shots(page, "overview-empty")

    # -- add an export account: a wrong interval first ------------------------------------------
    page.click("nav >> text=Synchronisations-Konto hinzufügen")
    shots(page, "wizard-start")
    page.check("input[name=direction][value=export]")
    page.click("button:has-text('Weiter')")
    page.wait_for_selector("[data-step='1']:visible")
    page.fill("#interval", "15 Minuten")
    page.fill("#note", "Buchhaltung")
    page.check("input[name=document_types][value=INCOMING_INVOICE]")
    page.check("input[name=document_types][value=RECEIPT]")
    shots(page, "wizard-export-step-2")
    page.click("button[data-next]")
    page.wait_for_selector("[data-step='2']:visible")
    assert page.locator("[data-step='1']").is_hidden()
    page.fill("#name", "acme-export")
    page.fill("#billomat_id", BILLOMAT_ID)
    page.fill("#billomat_api_key", BILLOMAT_KEY)
    page.fill("#gmi_api_key", GMI_KEY)
    page.fill("#date_from", "2026-01-01")
    shots(page, "wizard-export-step-3")
    page.click("button[data-submit]")

    # Refused: the error sits next to the interval, that step is open again, keys are gone.
    error = page.locator("#interval-error")
    error.wait_for()
    assert "15 Minuten" in error.inner_text()
    assert page.locator("[data-step='1']").is_visible()
    assert page.locator("#interval").get_attribute("aria-invalid") == "true"
    assert page.input_value("#name") == "acme-export"
    assert page.input_value("#gmi_api_key") == ""
    assert page.input_value("#billomat_api_key") == ""
    assert GMI_KEY not in page.content()
    assert page.is_checked("input[name=document_types][value=RECEIPT]")
    shots(page, "wizard-export-error")
    assert web.pipeline.accounts.list() == []

    page.fill("#interval", "30m")
    page.click("button[data-next]")
    page.fill("#billomat_api_key", BILLOMAT_KEY)
    page.fill("#gmi_api_key", GMI_KEY)
    page.click("button[data-submit]")
    page.wait_for_selector("text=Integration abgeschlossen")
    assert "***" + GMI_KEY[-4:] in page.content()
    assert GMI_KEY not in page.content()
    shots(page, "account-export")

    # -- add an import account ------------------------------------------------------------------
    page.goto(origin + "/accounts/new")
    page.check("input[name=direction][value=import]")
    page.click("button:has-text('Weiter')")
    page.fill("#name", "acme-import")
    page.fill("#billomat_id", BILLOMAT_ID)
    page.fill("#billomat_api_key", BILLOMAT_KEY)
    page.fill("#gmi_api_key", GMI_KEY)
    page.select_option("#default_document_type", "MISC")
    page.fill("#default_tags", "billomat, import")
    page.fill("#default_company", "Billomat Import")
    page.fill("#interval", "1h")
    shots(page, "wizard-import")
    page.click("button[data-submit]")
    page.wait_for_selector("text=Integration abgeschlossen")
    shots(page, "account-import")

    accounts = {a.name: a for a in web.pipeline.accounts.list()}
    assert sorted(accounts) == ["acme-export", "acme-import"]
    assert accounts["acme-export"].interval_seconds == 1800
    assert accounts["acme-export"].document_types == ["INCOMING_INVOICE", "RECEIPT"]
    assert accounts["acme-import"].default_tags == ["billomat", "import"]

    # -- sync on the simulators while the overview watches ---------------------------------------
    page.goto(origin + "/")
    uids = [
        sims.gmi.seed_document(GMI_KEY, document_number=f"ER-{n}", document_type="RECEIPT")
        for n in range(1, 4)
    ]
    invoices = [sims.billomat.add_document(BILLOMAT_ID, "invoices") for _ in range(2)]
    # The first upload to the Billomat inbox is refused for good: that document is parked.
    sims.billomat.fail_next(1, status=400, methods=["POST"], path_contains="inbox-documents")
    web.pipeline.produce_once()
    web.pipeline.consume(idle_exit=1.5)
    states = web.pipeline.states()
    assert sorted(states.values()) == ["parked", "synced", "synced", "synced", "synced"]
    # The page refreshes itself (no reload here): the counts arrive within a refresh period.
    page.wait_for_selector("#overview[data-refreshed]", timeout=30_000)
    export_row = page.locator("tr", has=page.locator("a:text-is('acme-export')"))
    assert export_row.locator("[data-state=synced]").inner_text() == "2 synchronisiert"
    assert export_row.locator("[data-state=parked]").inner_text() == "1 geparkt"
    assert "braucht Aufmerksamkeit" in export_row.inner_text()
    import_row = page.locator("tr", has=page.locator("a:text-is('acme-import')"))
    assert import_row.locator("[data-state=synced]").inner_text() == "2 synchronisiert"
    shots(page, "overview-after-sync")

    # -- the documents pages ----------------------------------------------------------------------
    page.click("nav >> text=Dokumente")
    assert page.locator("table.documents tbody tr").count() == 5
    shots(page, "documents")
    page.select_option("select[name=state]", "parked")
    page.click("button:has-text('Filtern')")
    rows = page.locator("table.documents tbody tr")
    assert rows.count() == 1
    parked_uid = next(uid for uid in uids if states[str(uid)] == "parked")
    assert str(parked_uid) in rows.inner_text()
    shots(page, "documents-parked")
    rows.locator("a").first.click()
    page.wait_for_selector("ol.timeline")
    assert "geparkt" in page.locator("h1").inner_text()
    shots(page, "document-parked")

    # -- replay it: preview first, then for real ---------------------------------------------------
    page.click("nav >> text=Fehlgeschlagen / geparkt")
    shots(page, "failed")
    page.check(f"input[name=doc][aria-label='{parked_uid}']")
    page.click("button:has-text('Erneute Verarbeitung der Auswahl')")
    page.wait_for_selector("text=Vorschau der erneuten Verarbeitung")
    assert "würde verschoben" in page.content()
    shots(page, "replay-preview")
    assert web.pipeline.states()[str(parked_uid)] == "parked"  # the preview changed nothing
    page.click("button:has-text('Jetzt erneut verarbeiten')")
    page.wait_for_selector("text=1 Dokumente erneut verarbeitet")
    shots(page, "replay-done")
    web.pipeline.consume(idle_exit=1.5)
    assert web.pipeline.states()[str(parked_uid)] == "synced"
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 3

    page.goto(origin + "/documents?state=synced&q=" + str(parked_uid))
    page.locator("table.documents tbody tr a").first.click()
    page.wait_for_selector("ol.timeline")
    assert "synchronisiert" in page.locator("h1").inner_text()
    assert USER in page.locator("ol.timeline").inner_text()  # the replay names who did it
    shots(page, "document-synced")

    # The account history names the user too.
    with web.pipeline.db.session() as session:
        actions = {(e.account_name, e.action, e.actor) for e in session.query(AccountEvent)}
    assert ("acme-export", "added", USER) in actions

    # -- English, then log out ---------------------------------------------------------------------
    page.click("header .lang >> text=EN")
    assert page.locator("nav").inner_text().startswith("Overview")
    shots(page, "document-english")
    page.click("header button:has-text('Log out')")
    page.wait_for_url(origin + "/login?bye=1")
    shots(page, "logged-out")
    page.goto(origin + "/documents")
    assert page.url.startswith(origin + "/login")
    assert len(invoices) == 2
    assert problems == []


@pytest.mark.parametrize("browser_context", [{"javascript": False}], indirect=True)
def test_without_javascript_the_wizard_is_one_page_and_saves(
    web: RunningConsole, browser_context: Any, shots: Shots
) -> None:
    page = browser_context.new_page()
    page.goto(web.origin + "/login")
    page.fill("#name", USER)
    page.fill("#password", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.goto(web.origin + "/accounts/new?direction=export")
    # Every step is on the page at once, with the save button.
    assert page.locator("[data-step='1']").is_visible()
    assert page.locator("[data-step='2']").is_visible()
    page.fill("#name", "plain-export")
    page.fill("#billomat_id", BILLOMAT_ID)
    page.fill("#billomat_api_key", BILLOMAT_KEY)
    page.fill("#gmi_api_key", GMI_KEY)
    shots(page, "wizard-without-javascript")
    page.click("button[data-submit]")
    page.wait_for_selector("text=Integration abgeschlossen")
    assert [a.name for a in web.pipeline.accounts.list()] == ["plain-export"]
