"""`status`: a known backlog under a known quota gets the right ETA, per account and window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.status import overview
from shared import ledger
from shared.accounts import AccountChanges, AccountService
from shared.crypto import SecretBox
from shared.db import ApiQuota, Database, SyncAccount
from shared.domain import Direction, DocState
from shared.ledger import Detected
from shared.quota_plan import QuotaLimits, WindowSpec
from tests.conftest import TEST_SECRET_KEY, make_settings
from tests.helpers import Cli

GMI_SCOPE = "0123456789abcdef"


def add_export(db: Database, name: str, documents: int) -> None:
    box = SecretBox(TEST_SECRET_KEY)
    accounts = AccountService(db, lambda: box)
    changes = AccountChanges(gmi_api_key=f"gmi-{name}", billomat_id="acme", billomat_api_key="bm-k")
    changes.require_approval = changes.archive_after_transfer = False
    created = accounts.add(Direction.EXPORT, name, changes)
    with db.session() as session:
        account = session.get(SyncAccount, created.id)
        assert account is not None
        account.gmi_scope = GMI_SCOPE  # as the producer's first poll records it
        for n in range(documents):
            ledger.insert_detected(
                session, account, Detected("documents", str(n), None, None, None),
                DocState.PENDING, "detected in GMI",
            )  # fmt: skip


def known_billomat_window(db: Database, now: datetime) -> None:
    """10 calls left of 30, the window ends in 5 s, windows last 10 s."""
    with db.session() as session:
        session.add(
            ApiQuota(
                api="billomat", scope="acme", remaining=10, reset_at=now + timedelta(seconds=5),
                window_limit=30, window_seconds=10.0, updated_at=now,
            )
        )  # fmt: skip


def by_account(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {row["account"]: row for row in rows}


def test_eta_of_a_known_backlog_under_a_known_quota(db: Database) -> None:
    now = datetime.now(UTC)
    add_export(db, "big", 100)
    known_billomat_window(db, now)
    # GMI's minute is no limit here (1,000 calls); Billomat's window decides
    limits = QuotaLimits(billomat_window_seconds=10, gmi_minute=WindowSpec(1000, 60.0))

    [row] = overview(db, now=now, limits=limits)
    # 10 calls now, then 30 per window: 90 more need 3 windows, the last starts 5 + 2 * 10 s on
    assert (row["backlog"], row["eta_seconds"]) == (100, 25)
    assert row["backlog_text"] == "100 waiting, done in ~25 s at the current quota"
    billomat = next(w for w in row["quota"] if w["api"] == "billomat")
    assert (billomat["limit"], billomat["used"], billomat["left"]) == (30, 20, 10)
    windows = {w["window"]: w for w in row["quota"] if w["api"] == "gmi"}
    assert set(windows) == {"minute", "day"}  # an export account uploads nothing to GMI
    assert (windows["day"]["limit"], windows["day"]["left"]) == (2500, 2500)
    assert "scope" in billomat
    assert all(w["scope"] is None for w in windows.values())

    add_export(db, "small", 5)  # same Billomat account: the two take turns
    rows = by_account(overview(db, now=now, limits=limits))
    assert rows["big"]["eta_seconds"] == 35  # 105 calls: 10 now, then 4 windows
    assert rows["small"]["eta_seconds"] == 0  # its 5 and 5 of the big one's fit in the 10 left
    assert rows["small"]["backlog_text"] == "5 waiting, all within the current quota window"


def test_eta_is_unknown_until_the_windows_are_known(db: Database) -> None:
    add_export(db, "fresh", 3)
    [row] = overview(db)
    assert (row["backlog"], row["eta_seconds"]) == (3, None)  # no Billomat answer seen yet
    assert row["backlog_text"].startswith("3 waiting, no estimate yet")


@pytest.mark.usefixtures("db")
def test_status_json_and_table_carry_backlog_and_eta(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        database_url, tmp_path, billomat_window_seconds=10, gmi_calls_per_minute=1000
    )
    db = Database(database_url)
    try:
        add_export(db, "big", 100)
        known_billomat_window(db, datetime.now(UTC))
    finally:
        db.dispose()
    run = Cli(settings, capsys)
    result = run("status", "--json")
    assert result.code == 0
    [row] = result.json()
    assert row["backlog"] == 100
    assert row["eta_seconds"] in (24, 25)  # a second may pass between the two reads
    assert GMI_SCOPE not in result.out  # a key's fingerprint is no business of the operator
    table = run("status")
    assert table.code == 0
    assert "big: 100 waiting, done in ~2" in table.out
    assert "quota windows" in table.out
