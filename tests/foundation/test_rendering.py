"""`status`, `documents` and `accounts list` fit an 80-column terminal — exactly when accounts
need attention — with no header word split; wider terminals show more."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from shared import ledger
from shared.accounts import AccountChanges, AccountService
from shared.crypto import SecretBox
from shared.db import Database, PollState, SyncAccount
from shared.domain import Direction, DocState
from shared.settings import Settings
from tests.conftest import TEST_SECRET_KEY, make_settings
from tests.helpers import Cli

LONG_NAME = "kanzlei-mueller-und-partner-steuerberatung-buchhaltung-export-1"  # 63 characters
LONG_REASON = (
    "paused: billomat HTTP 401: API key rejected: Unauthorized — the key was revoked in "
    "Billomat (Settings → Employees → API access); enter a new one with `belegsync accounts "
    "update NAME --billomat-api-key -` and resume the account (/api/inbox-documents)"
)
LONG_ERROR = (
    "attempt 3 failed: gmi HTTP 422 code 100: unexpected server error: An unexpected error "
    "occurred while processing the request, please try again later (/documents/{uid})"
)
HEADERS = {
    "status": {"account", "dir", "state", "last poll", "next poll", "synced", "pending",
               "waiting", "retrying", "parked", "skipped", "found"},
    "documents": {"account", "dir", "kind", "source", "number", "state", "target", "tries",
                  "last error"},
    "accounts": {"name", "dir", "state", "billomat", "every", "note"},
}  # fmt: skip


@pytest.fixture
def settings(sqlite_database_url: str, tmp_path: Path) -> Settings:
    return make_settings(sqlite_database_url, tmp_path)


@pytest.fixture
def cli(settings: Settings, capsys: pytest.CaptureFixture[str]) -> Cli:
    db = Database(settings.database_url)
    try:
        populate(db)
    finally:
        db.dispose()
    return Cli(settings, capsys)


def populate(db: Database) -> None:
    """Three accounts: one fine, one paused with a long reason, one whose polls fail."""
    box = SecretBox(TEST_SECRET_KEY)
    service = AccountService(db, lambda: box)
    keys = {"gmi_api_key": "gmi-key-0001", "billomat_api_key": "bm-key-0002"}
    service.add(Direction.EXPORT, "acme-export", AccountChanges(billomat_id="acme", **keys))
    service.add(
        Direction.EXPORT,
        LONG_NAME,
        AccountChanges(
            billomat_id="kanzlei-mueller-und-partner-steuerberatung",
            note="Mandanten März–Dezember, Belege für die Finanzbuchhaltung " * 3,
            **keys,
        ),
    )
    service.add(Direction.IMPORT, "failing-import", AccountChanges(billomat_id="acme", **keys))
    now = datetime.now(UTC)
    with db.session() as session:
        accounts = {a.name: a for a in session.scalars(select(SyncAccount))}
        paused = accounts[LONG_NAME]
        paused.enabled = False
        paused.attention_reason = LONG_REASON
        for account in accounts.values():
            state = session.get(PollState, account.id)
            assert state is not None
            state.last_finished_at = now
            state.last_result = "ok"
            state.next_due_at = now
        failing = session.get(PollState, accounts["failing-import"].id)
        assert failing is not None
        failing.last_result = "error"
        failing.last_error = "gmi: unexpected response to /documents: " + "<html>" * 40
        for n, account in enumerate(accounts.values()):
            for k in range(3):
                doc, _ = ledger.insert_detected(
                    session,
                    account,
                    ledger.Detected(
                        "documents", str(28700 + 10 * n + k), "INCOMING_INVOICE",
                        f"RE-2026-{k:04d}-Sammelrechnung-Hosting-und-Domains", date(2026, 11, 2),
                    ),
                    DocState.PENDING,
                    "detected",
                )  # fmt: skip
                if k == 0:
                    doc.target_id = "1000123"
                    ledger.set_state(session, doc, DocState.SYNCED, "uploaded")
                else:
                    doc.attempts = k
                    doc.last_error = LONG_ERROR
                    ledger.set_state(session, doc, DocState.PARKED, LONG_ERROR)


def header_cells(line: str) -> list[str]:
    return [cell for cell in re.split(r"\s{2,}", line.strip()) if cell]


def check_fits(out: str, width: int, headers: set[str]) -> list[str]:
    lines = out.splitlines()
    too_long = [line for line in lines if len(line) > width]
    assert too_long == [], "\n".join(too_long)
    header = lines[1]  # below the title
    cells = header_cells(header)
    assert cells, out
    # Each header cell is a whole header: nothing cut, nothing folded onto another line.
    assert set(cells) <= headers, cells
    assert cells[0] in {"account", "name"}
    return cells


@pytest.mark.parametrize(
    ("command", "kind"),
    [(("status",), "status"), (("documents",), "documents"), (("accounts", "list"), "accounts")],
)
def test_tables_fit_80_columns_and_wider_terminals_show_more(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...], kind: str
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    narrow = cli(*command)
    assert narrow.code == 0, narrow.err
    narrow_cells = check_fits(narrow.out, 80, HEADERS[kind])

    monkeypatch.setenv("COLUMNS", "200")
    wide = cli(*command)
    wide_cells = check_fits(wide.out, 200, HEADERS[kind])
    assert set(narrow_cells) <= set(wide_cells)
    if kind != "accounts":  # every column of `accounts list` fits in 80 already
        assert set(narrow_cells) < set(wide_cells)
    if kind != "documents":  # (there, three free-text columns share what is left)
        assert LONG_NAME in wide.out.split("\n\n")[0]  # the table shows the whole name


def test_status_at_80_columns_names_each_account_that_needs_attention(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = cli("status").out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    details = " ".join(" ".join(lines[lines.index("") + 1 :]).split())
    assert f"! {LONG_NAME}: paused: billomat HTTP 401" in details
    assert "! failing-import: last poll failed: gmi: unexpected response" in details
    # the whole reason is there, wrapped, not cut
    assert details.count("resume the account (/api/inbox-documents)") == 1
    assert "acme-export" not in details
    rows = lines[2 : lines.index("")]
    [paused_row] = [line for line in rows if line.startswith(LONG_NAME[:8])]
    assert "attention" in header_cells(paused_row)
    [failing_row] = [line for line in rows if line.startswith("failing-import")]
    assert "failing" in header_cells(failing_row)


def test_accounts_list_at_80_columns_puts_the_reason_below(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = cli("accounts", "list").out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert f"! {LONG_NAME}: paused: billomat HTTP 401" in " ".join(out.split())


def test_empty_states_say_what_to_do(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = Cli(settings, capsys)
    for command in (("status",), ("accounts", "list"), ("documents",)):
        result = empty(*command)
        assert result.code == 0
        assert result.out.startswith("no sync accounts yet: add one with `belegsync accounts add")
    once = empty("produce", "--once")
    assert once.code == 0
    assert once.out.startswith("no enabled sync accounts to poll: add one with")
