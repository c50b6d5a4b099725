"""An account's life without duplicates: removed and added again, or its database lost and
restored from nothing — the target holds every document exactly once, and the first poll says
what looking cost."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.billomat import BillomatClient
from shared.db import Document
from shared.domain import MARKER_KEY, parse_marker
from simulators import Simulators
from tests.conftest import PostgresDatabases, make_database_url
from tests.e2e.conftest import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY, Pipeline, PipelineFactory
from tests.helpers import Cli

FreshPipeline = Callable[[], Pipeline]


@pytest.fixture
def fresh_pipeline(
    pipeline_factory: PipelineFactory,
    tmp_path: Path,
    sqlite_template: Path,
) -> FreshPipeline:
    """Another pipeline on the same simulators, on an empty migrated database: a database
    lost and set up again with `belegsync db upgrade`."""
    made = 0

    def make() -> Pipeline:
        nonlocal made
        made += 1
        path = tmp_path / f"restored-{made}.db"
        shutil.copy(sqlite_template, path)
        return pipeline_factory(f"sqlite:///{path}")

    return make


def inbox_copies(sims: Simulators) -> Counter[str]:
    """GMI uid -> how many inbox documents are an upload of it (whatever account wrote it)."""
    copies: Counter[str] = Counter()
    for item in sims.billomat.inbox(BILLOMAT_ID):
        marker = parse_marker(item["metadata"].get(MARKER_KEY))
        assert marker is not None, item
        copies[marker.gmi_uid] += 1
    return copies


def gmi_copies(sims: Simulators) -> Counter[str]:
    return Counter(str(d["sha256"]) for d in sims.gmi.documents(GMI_KEY))


def seed_gmi(sims: Simulators, count: int, prefix: str = "E") -> list[int]:
    return [sims.gmi.seed_document(GMI_KEY, document_number=f"{prefix}-{n}") for n in range(count)]


def test_remove_and_add_again_uploads_nothing_twice(
    pipeline: Pipeline, sims: Simulators, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(pipeline.settings, capsys)
    uids = seed_gmi(sims, 5)
    old = pipeline.add_export("ok")
    pipeline.produce_once()
    pipeline.consume()
    assert inbox_copies(sims) == {str(uid): 1 for uid in uids}
    old_ref = pipeline.ref(old)

    removed = cli("accounts", "remove", "ok", "--yes")
    assert removed.code == 0, removed.err
    assert "its 5 ledger row(s) are kept" in removed.out
    assert cli("accounts", "list", "--json").json() == []
    assert cli("status").out.startswith("no sync accounts yet")

    added = cli(
        "accounts", "add", "export", "ok", "--gmi-api-key", GMI_KEY,
        "--billomat-id", BILLOMAT_ID, "--billomat-api-key", BILLOMAT_KEY,
    )  # fmt: skip
    assert added.code == 0, added.err
    assert "5 document(s) already in the target" in added.out
    [account] = cli("accounts", "list", "--json").json()
    new = pipeline.accounts.list()[0]
    assert new.id != old
    assert new.ref != old_ref  # a new identity: markers of the old account stay the old one's

    later = sims.gmi.seed_document(GMI_KEY, document_number="E-later")
    [report] = pipeline.produce_once()
    assert (report.result, report.new, report.found) == ("ok", 1, 0)  # the ledger knew them
    assert report.scan_calls == 1
    pipeline.consume()

    assert inbox_copies(sims) == {str(uid): 1 for uid in [*uids, later]}
    assert set(pipeline.states("ok").values()) == {"synced"}
    [row] = [r for r in pipeline.overview() if r["account"] == "ok"]
    assert row["target_scan"]["calls"] == 1
    assert account["name"] == "ok"


@pytest.mark.parametrize("db_kind", ["sqlite", "postgresql"])
def test_export_restored_from_nothing_finds_what_landed_and_uploads_only_the_new(
    db_kind: str,
    pipeline_factory: PipelineFactory,
    sims: Simulators,
    tmp_path: Path,
    postgres_databases: PostgresDatabases | None,
    sqlite_template: Path,
) -> None:
    def database() -> str:
        folder = tmp_path / f"db-{len(list(tmp_path.glob('db-*')))}"
        folder.mkdir()
        return make_database_url(
            db_kind, migrated=True, tmp_path=folder, postgres=postgres_databases,
            sqlite_template=sqlite_template,
        )  # fmt: skip

    uids = seed_gmi(sims, 4)
    before = pipeline_factory(database())
    before.add_export("acme-export", archive_after_transfer=True)
    before.produce_once()
    before.consume()
    assert inbox_copies(sims) == {str(uid): 1 for uid in uids}
    assert all(sims.gmi.document(GMI_KEY, uid)["is_archived"] for uid in uids)

    # The database is gone; documents keep arriving in GMI; some were un-archived by hand.
    sims.gmi.update_document(GMI_KEY, uids[0], is_archived=False)
    later = seed_gmi(sims, 2, prefix="L")
    after = pipeline_factory(database())
    after.add_export("acme-export", archive_after_transfer=True)
    sims.billomat.reset_counts()
    [report] = after.produce_once()
    assert (report.result, report.found, report.new) == ("ok", 1, 2)
    assert report.scan_calls == 1  # ceil(6 inbox documents / 1,000 per page)
    assert sims.billomat.request_counts(BILLOMAT_ID) == {"GET /api/inbox-documents": 1}
    after.consume()

    assert inbox_copies(sims) == {str(uid): 1 for uid in [*uids, *later]}
    assert set(after.states().values()) == {"synced"}
    # the document found in the inbox was still archived after transfer, as the account says
    assert sims.gmi.document(GMI_KEY, uids[0])["is_archived"]


def test_import_removed_and_added_again_or_restored_from_nothing_uploads_nothing_twice(
    pipeline: Pipeline, fresh_pipeline: FreshPipeline, sims: Simulators
) -> None:
    bm = sims.billomat
    docs = [bm.add_document(BILLOMAT_ID, "invoices", number=f"RE-{n}") for n in range(3)]
    docs.append(bm.add_document(BILLOMAT_ID, "credit-notes", number="GS-1"))
    pipeline.add_import("acme-import")
    pipeline.produce_once()
    pipeline.consume()
    landed = gmi_copies(sims)
    assert len(landed) == 4
    assert set(landed.values()) == {1}

    # removed and added again: the ledger it kept answers, GMI is not even asked
    pipeline.accounts.remove("acme-import")
    pipeline.add_import("acme-import")
    sims.gmi.reset_counts()
    pipeline.produce_once()
    assert pipeline.consume() == 0  # nothing to do: all four were adopted as synced
    assert sims.gmi.request_counts(GMI_KEY) == {}
    assert gmi_copies(sims) == landed

    # restored from nothing: GMI refuses identical content (422 code 127) and the consumer
    # adopts the document it already holds
    restored = fresh_pipeline()
    restored.add_import("acme-import")
    sims.gmi.reset_counts()
    bm.reset_counts()
    restored.produce_once()
    restored.consume()
    assert gmi_copies(sims) == landed
    rows = restored.ledger()
    assert {r["state"] for r in rows} == {"synced"}
    assert all(r["target_id"] not in (None, "unidentified") for r in rows)
    gmi_calls = sims.gmi.request_counts(GMI_KEY)
    pdf_calls = sum(n for path, n in bm.request_counts(BILLOMAT_ID).items() if "pdf" in path)
    print(f"import restore: {len(rows)} documents, GMI calls {dict(gmi_calls)}, {pdf_calls} PDFs")
    # the cost of recognising each document: its PDF, one refused upload, one lookup by number
    assert gmi_calls.get("POST /documents") == 4
    assert pdf_calls == 4


def test_after_restoring_an_older_backup_recheck_finds_what_landed_since(
    pipeline: Pipeline,
    pipeline_factory: PipelineFactory,
    sims: Simulators,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = seed_gmi(sims, 2, prefix="A")
    pipeline.add_export()
    pipeline.produce_once()
    pipeline.consume()
    backup = tmp_path / "backup.db"
    sqlite_copy(pipeline.settings.database_url, backup)  # tonight's backup
    later = seed_gmi(sims, 2, prefix="B")
    pipeline.produce_once()
    pipeline.consume()
    assert inbox_copies(sims) == {str(uid): 1 for uid in [*first, *later]}

    restored = pipeline_factory(f"sqlite:///{backup}")  # the database is restored from it
    result = Cli(restored.settings, capsys)("accounts", "recheck")
    assert result.code == 0, result.err
    assert "acme-export" in result.out
    [report] = restored.produce_once()
    assert (report.found, report.new, report.scan_calls) == (2, 0, 1)
    restored.consume()
    assert inbox_copies(sims) == {str(uid): 1 for uid in [*first, *later]}
    assert set(restored.states().values()) == {"synced"}


def sqlite_copy(url: str, target: Path) -> None:
    """A consistent copy of a live SQLite database (its WAL included), as a backup tool makes."""
    import sqlite3

    source = sqlite3.connect(url.removeprefix("sqlite:///"))
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()


def test_messages_queued_for_a_removed_account_are_held_not_uploaded(
    pipeline: Pipeline, sims: Simulators
) -> None:
    uids = seed_gmi(sims, 2)
    pipeline.add_export("gone")
    pipeline.produce_once()  # published, not consumed yet
    pipeline.accounts.remove("gone")
    assert pipeline.consume() == 2
    assert sims.billomat.inbox(BILLOMAT_ID) == []
    with pipeline.db.session() as session:
        states = {
            doc.source_id: (doc.state, doc.last_error) for doc in session.scalars(select(Document))
        }
    assert states == {str(uid): ("held", "account removed") for uid in uids}


def inbox_copies_by_bytes(sims: Simulators) -> Counter[str]:
    """GMI uid -> how many inbox documents hold its bytes (for an inbox that kept no marker);
    documents of nobody's GMI file count under "stranger"."""
    by_hash = {d["sha256"]: str(d["uid"]) for d in sims.gmi.documents(GMI_KEY)}
    return Counter(by_hash.get(i["sha256"], "stranger") for i in sims.billomat.inbox(BILLOMAT_ID))


@pytest.mark.parametrize("variant", ["inbox-metadata-dropped", "inbox-metadata-rewritten"])
def test_export_restored_from_nothing_finds_uploads_whose_marker_the_inbox_did_not_keep(
    variant: str, pipeline: Pipeline, sims: Simulators, fresh_pipeline: FreshPipeline
) -> None:
    uids = seed_gmi(sims, 4)
    # Someone else's inbox document with exactly the size of one of ours: a candidate that the
    # bytes must tell apart.
    own = sims.gmi.document_content(GMI_KEY, uids[0])
    stranger = own[:-8] + b"%%ELSE\n\n"
    assert len(stranger) == len(own)
    assert stranger != own
    BillomatClient(
        BILLOMAT_ID, BILLOMAT_KEY, url_template=sims.billomat_url_template
    ).create_inbox_document(content=stranger, filename="scan.pdf", document_type="OTHER")
    pipeline.add_export("acme-export")
    pipeline.produce_once()
    pipeline.consume()
    assert not any(i["metadata"].get(MARKER_KEY) for i in sims.billomat.inbox(BILLOMAT_ID))
    before = inbox_copies_by_bytes(sims)
    assert before == {**{str(uid): 1 for uid in uids}, "stranger": 1}

    # The database is lost; one more document arrives in GMI meanwhile.
    later = seed_gmi(sims, 1, prefix="L")
    after = fresh_pipeline()
    after.add_export("acme-export")
    [report] = after.produce_once()
    assert (report.result, report.found, report.new) == ("ok", 0, 5)  # no marker to go by
    [row] = after.overview()
    assert row["target_scan"]["unmarked"] == 5
    sims.billomat.reset_counts()
    after.consume()

    # Every earlier upload was recognised by its bytes; only the new document was uploaded.
    assert inbox_copies_by_bytes(sims) == before + Counter({str(later[0]): 1})
    assert set(after.states().values()) == {"synced"}
    counts = sims.billomat.request_counts(BILLOMAT_ID)
    assert counts.get("POST /api/inbox-documents") == 1
    sizes = Counter(i["filesize"] for i in sims.billomat.inbox(BILLOMAT_ID))
    candidates = sum(sizes[len(sims.gmi.document_content(GMI_KEY, uid))] for uid in uids)
    # one fetch per same-size candidate at most (claimed ones are skipped), and no new listing
    assert 4 <= counts.get("GET /api/inbox-documents/{id}", 0) <= candidates
    assert "GET /api/inbox-documents" not in counts
    for uid in uids:
        reasons = [e["reason"] for e in after.ledger_history(str(uid))]
        assert any("found by its bytes" in r for r in reasons), reasons
