"""Keyset pages of the ledger, the document detail and the parked groups (app/status.py) on
SQLite and PostgreSQL: what the console and the CLI list.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from app.status import document_detail, document_page, group_key, parked_groups, replay_pairs
from shared.db import Database, Document, DocumentEvent, SyncAccount
from shared.errors import UsageError


def seed(db: Database, count: int = 120) -> dict[str, int]:
    now = datetime.now(UTC)
    with db.session() as session:
        ids = {}
        for name, direction in (("alpha", "export"), ("beta", "import")):
            account = SyncAccount(
                name=name, direction=direction, enabled=True, gmi_api_key_enc="x",
                billomat_id="acme", billomat_api_key_enc="x", interval_seconds=900, note="",
                document_types=[], tags=[], require_approval=False,
                archive_after_transfer=False, default_tags=[], document_kinds=[],
            )  # fmt: skip
            session.add(account)
            session.flush()
            ids[name] = account.id
        rows = []
        for n in range(count):
            parked = n % 10 == 0
            rows.append(
                {
                    "account_id": ids["alpha"] if n % 2 == 0 else ids["beta"],
                    "source_system": "gmi" if n % 2 == 0 else "billomat",
                    "source_kind": "documents" if n % 2 == 0 else "invoices",
                    "source_id": str(5000 + n),
                    "document_number": f"RE-{n:04d}",
                    "state": "parked" if parked else "synced",
                    "target_id": None if parked else str(9000 + n),
                    "attempts": 1,
                    "error_class": "permanent" if parked else None,
                    "last_error": ("billomat HTTP 400: bad" if n % 20 == 0 else "gmi 422 code 127")
                    if parked
                    else None,
                    "detected_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(Document), rows)
    return ids


def test_pages_walk_the_ledger_newest_first_without_gaps_or_repeats(db: Database) -> None:
    seed(db)
    seen: list[int] = []
    after = None
    sizes = []
    while True:
        page = document_page(db, after=after, limit=50)
        sizes.append(len(page.rows))
        seen += [row["id"] for row in page.rows]
        if page.next_after is None:
            break
        after = page.next_after
    assert sizes == [50, 50, 20]
    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 120


def test_filters_by_account_state_and_text(db: Database) -> None:
    seed(db)
    alpha = document_page(db, account="alpha", limit=500).rows
    assert len(alpha) == 60
    assert {r["account"] for r in alpha} == {"alpha"}
    parked = document_page(db, state="parked", limit=500).rows
    assert len(parked) == 12
    assert document_page(db, account="beta", state="parked").rows == []  # parked are all even
    by_number = document_page(db, text="re-0042").rows
    assert [r["document_number"] for r in by_number] == ["RE-0042"]
    by_source = document_page(db, text="5007").rows
    assert [r["source_id"] for r in by_source] == ["5007"]
    by_target = document_page(db, text="9011").rows
    assert [r["target_id"] for r in by_target] == ["9011"]
    # LIKE's wildcards are searched for, not used.
    assert document_page(db, text="%").rows == []
    assert document_page(db, text="RE-00_1").rows == []
    with pytest.raises(UsageError, match="unknown state 'lost'"):
        document_page(db, state="lost")
    with pytest.raises(UsageError, match="unknown sync account 'ghost'"):
        document_page(db, account="ghost")


def test_parked_groups_and_replay_pairs(db: Database) -> None:
    seed(db)
    groups = parked_groups(db)
    assert [(g["reason"], g["count"]) for g in groups] == [
        ("billomat HTTP 400: bad", 6),
        ("gmi 422 code 127", 6),
    ]
    first = groups[0]
    assert first["key"] == group_key("permanent", "billomat HTTP 400: bad")
    pairs = replay_pairs(db, group=first["key"])
    assert pairs == {("alpha", str(5000 + n)) for n in range(0, 120, 20)}
    one = replay_pairs(db, [groups[1]["documents"][0]["id"]])
    assert one == {("alpha", groups[1]["documents"][0]["source_id"])}


def test_document_detail_has_the_history_with_its_actor(db: Database) -> None:
    seed(db, count=2)
    page = document_page(db, limit=1)
    doc_id = page.rows[0]["id"]
    with db.session() as session:
        session.add(
            DocumentEvent(document_id=doc_id, at=datetime.now(UTC), from_state="parked",
                          to_state="pending", reason="replayed", actor="anna")
        )  # fmt: skip
    detail = document_detail(db, doc_id)
    assert detail is not None
    assert detail["history"][-1]["actor"] == "anna"
    assert detail["billomat_id"] == "acme"
    assert document_detail(db, 10**9) is None


def test_the_documents_command_searches_and_pages_like_the_console(
    db: Database, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    import json
    from pathlib import Path

    from tests.conftest import make_settings
    from tests.helpers import Cli

    seed(db)
    cli = Cli(make_settings(db.url, Path(str(tmp_path))), capsys)
    found = cli("documents", "--search", "RE-004", "--json")
    assert found.code == 0, found.err
    assert [r["document_number"] for r in json.loads(found.out)] == [
        f"RE-004{n}" for n in range(9, -1, -1)
    ]
    first = json.loads(cli("documents", "--search", "", "--limit", "5", "--json").out)
    second = json.loads(
        cli("documents", "--search", "", "--limit", "5", "--after", str(first[-1]["id"]),
            "--json").out
    )  # fmt: skip
    assert [r["id"] for r in first + second] == sorted(
        (r["id"] for r in first + second), reverse=True
    )
    assert len({r["id"] for r in first + second}) == 10
