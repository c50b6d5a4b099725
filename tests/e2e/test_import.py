"""Import end to end: Billomat -> RabbitMQ -> GMI, exactly once and frugal with the quota."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.db import ApiQuota
from shared.quota import QuotaBook
from simulators import Simulators
from tests.e2e.conftest import (
    BILLOMAT_ID,
    BILLOMAT_KEY,
    GMI_KEY,
    Pipeline,
    on_each_db_and_variant,
)


def sha(content: bytes | None) -> str:
    assert content is not None
    return hashlib.sha256(content).hexdigest()


def gmi_by_hash(sims: Simulators) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {}
    for doc in sims.gmi.documents(GMI_KEY):
        found.setdefault(str(doc["sha256"]), []).append(doc)
    return found


@on_each_db_and_variant("billomat-no-sort-by-id")
def test_invoices_credit_notes_and_a_third_kind_land_in_gmi_once_with_type_tags_company(
    any_db_pipeline: Pipeline, sims: Simulators, variant: str
) -> None:
    pipeline = any_db_pipeline
    bm = sims.billomat
    invoice = bm.add_document(BILLOMAT_ID, "invoices", status="PAID", total_gross="238.00")
    credit = bm.add_document(BILLOMAT_ID, "credit-notes", status="OPEN")
    reminder = bm.add_document(BILLOMAT_ID, "reminders", status="OPEN")
    offer = bm.add_document(BILLOMAT_ID, "offers", status="OPEN")  # not selected
    pipeline.add_import(
        document_kinds=["invoices", "credit-notes", "reminders"],
        default_tags=["billomat", "import"],
        default_company="Billomat Import GmbH",
    )
    [report] = pipeline.produce_once()
    # One list call per kind; where Billomat refuses order_by=id, one more (once, then learnt).
    extra = 1 if variant == "billomat-no-sort-by-id" else 0
    assert (report.result, report.new, report.calls) == ("ok", 3, 3)
    calls = sims.billomat.request_counts(BILLOMAT_ID)
    assert sum(n for e, n in calls.items() if not e.endswith("/pdf")) == 3 + extra
    assert pipeline.consume() == 3

    by_hash = gmi_by_hash(sims)
    expected = {
        ("invoices", invoice): "SALES_INVOICE",
        ("credit-notes", credit): "CREDIT_NOTE",
        ("reminders", reminder): "REMINDER",
    }
    companies = {c["name"]: c["uid"] for c in sims.gmi.companies(GMI_KEY)}
    assert list(companies) == ["Billomat Import GmbH"]  # created once, as a custom company
    for (kind, bid), gmi_type in expected.items():
        [doc] = by_hash[sha(bm.pdf_content(BILLOMAT_ID, kind, bid))]
        assert doc["document_type"] == gmi_type
        assert doc["tags"] == ["billomat", "import"]
        assert doc["company_uid"] == companies["Billomat Import GmbH"]
        number = bm.document(BILLOMAT_ID, kind, bid)["number"]
        assert doc["document_number"] == number
        assert str(doc["filename"]).endswith(".pdf")
    assert sha(bm.pdf_content(BILLOMAT_ID, "offers", offer)) not in by_hash
    assert len(sims.gmi.documents(GMI_KEY)) == 3
    invoice_doc = by_hash[sha(bm.pdf_content(BILLOMAT_ID, "invoices", invoice))][0]
    assert invoice_doc["gross_amount"] in {"238.00", "238", "238.0"}
    assert str(invoice_doc["filename"]).startswith("Rechnung ")
    assert set(pipeline.states().values()) == {"synced"}

    # The next poll sorts the way that worked, from its first call: no refusal again.
    sims.billomat.reset_counts()
    [report] = pipeline.produce_once()
    assert sum(sims.billomat.request_counts(BILLOMAT_ID).values()) == 3


def test_a_draft_is_imported_only_once_it_is_finished(pipeline: Pipeline, sims: Simulators) -> None:
    draft = sims.billomat.add_document(BILLOMAT_ID, "invoices", status="DRAFT", date="2026-01-05")
    done = sims.billomat.add_document(BILLOMAT_ID, "invoices", status="OPEN", date="2026-11-20")
    pipeline.add_import(document_kinds=["invoices"])
    pipeline.produce_once()
    pipeline.consume()
    assert pipeline.states() == {str(draft): "draft", str(done): "synced"}
    assert len(sims.gmi.documents(GMI_KEY)) == 1

    # the cursor moved on to November, but the January draft keeps the window open
    sims.billomat.complete(BILLOMAT_ID, "invoices", draft)
    [report] = pipeline.produce_once()
    assert report.requeued == 1
    pipeline.consume()
    assert pipeline.states() == {str(draft): "synced", str(done): "synced"}
    assert sha(sims.billomat.pdf_content(BILLOMAT_ID, "invoices", draft)) in gmi_by_hash(sims)


def test_an_idle_import_poll_costs_one_billomat_call_per_kind(
    pipeline: Pipeline, sims: Simulators
) -> None:
    sims.billomat.add_document(BILLOMAT_ID, "invoices")
    sims.billomat.add_document(BILLOMAT_ID, "credit-notes")
    pipeline.add_import()
    pipeline.produce_once()
    pipeline.consume()
    sims.billomat.reset_counts()
    sims.gmi.reset_counts()

    [report] = pipeline.produce_once()
    assert pipeline.consume(idle_exit=1.0) == 0
    assert (report.new, report.requeued, report.calls) == (0, 0, 2)
    assert sims.billomat.request_counts(BILLOMAT_ID) == {
        "GET /api/invoices": 1,
        "GET /api/credit-notes": 1,
    }
    assert sum(sims.gmi.request_counts(GMI_KEY).values()) == 0


@pytest.mark.parametrize("variant", ["documented", "gmi-listing-lag=3"])
def test_upload_to_gmi_that_lost_its_answer_is_recognised_not_repeated(
    pipeline: Pipeline, sims: Simulators, variant: str
) -> None:
    bid = sims.billomat.add_document(BILLOMAT_ID, "invoices")
    pipeline.add_import(document_kinds=["invoices"])
    sims.gmi.drop_after_next_write(1, path_contains="/documents")
    pipeline.produce_once()
    pipeline.consume(idle_exit=4.0)
    docs = sims.gmi.documents(GMI_KEY)
    assert len(docs) == 1
    assert docs[0]["sha256"] == sha(sims.billomat.pdf_content(BILLOMAT_ID, "invoices", bid))
    [row] = pipeline.ledger()
    assert (row["state"], row["target_id"]) == ("synced", str(docs[0]["uid"]))


@on_each_db_and_variant("gmi-listing-lag=3")
def test_sigkilled_import_consumer_causes_no_duplicate(
    any_db_pipeline: Pipeline, sims: Simulators, tmp_path: Path, variant: str
) -> None:
    pipeline = any_db_pipeline
    bid = sims.billomat.add_document(BILLOMAT_ID, "invoices")
    pipeline.add_import(document_kinds=["invoices"])
    pipeline.produce_once()
    sims.gmi.hold_after_next_write(1, seconds=8, path_contains="/documents")
    victim = pipeline.spawn("consume", "--direction", "import", log=tmp_path / "victim.log")
    pipeline.wait_until(lambda: len(sims.gmi.documents(GMI_KEY)) == 1, what="upload landed")
    victim.kill()
    assert victim.wait(10) == -9
    survivor = pipeline.spawn("consume", "--direction", "import", "--idle-exit", "3")
    assert survivor.wait(60) == 0
    docs = sims.gmi.documents(GMI_KEY)
    assert len(docs) == 1
    assert docs[0]["sha256"] == sha(sims.billomat.pdf_content(BILLOMAT_ID, "invoices", bid))
    assert pipeline.states() == {str(bid): "synced"}
    [row] = pipeline.ledger()
    assert row["target_id"] == str(docs[0]["uid"])  # identified, also behind a lagging listing
    assert sims.gmi.request_counts(GMI_KEY)["POST /documents"] == 1


def test_backlog_larger_than_the_billomat_window_lands_without_a_single_429(
    pipeline: Pipeline, sims: Simulators
) -> None:
    # 30 calls per 10-second window, shared by the poll and the PDF downloads of 60 documents
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=30, window_seconds=10)
    sims.gmi.set_limits(GMI_KEY, per_minute=1000, uploads_per_hour=1000)
    bids = [sims.billomat.add_document(BILLOMAT_ID, "invoices") for _ in range(60)]
    pipeline.add_import(document_kinds=["invoices"])
    pipeline.produce_once()
    with pipeline.producing():  # releases each window's share from the ledger
        pipeline.consume(idle_exit=12.0)
    assert pipeline.states() == {str(b): "synced" for b in bids}
    assert len(sims.gmi.documents(GMI_KEY)) == 60
    assert sims.billomat.rate_limited_count(BILLOMAT_ID) == 0
    # 1 list call + 60 PDFs: more than two windows' worth
    assert sum(sims.billomat.request_counts(BILLOMAT_ID).values()) == 61


def test_gmi_hourly_upload_limit_means_wait_until_the_next_hour_not_fail(
    pipeline: Pipeline, sims: Simulators
) -> None:
    # Another integration uploads to this GMI account too: GMI refuses although our own count
    # (100 an hour) has room.  The refusal stops uploads only, until the full hour.
    sims.gmi.set_limits(GMI_KEY, uploads_per_hour=3)
    bids = [sims.billomat.add_document(BILLOMAT_ID, "invoices") for _ in range(5)]
    pipeline.add_import(document_kinds=["invoices"])
    pipeline.produce_once()
    with pipeline.producing():
        consumer, thread = pipeline.consume_in_thread()
        try:
            pipeline.wait_until(
                lambda: sims.gmi.request_counts(GMI_KEY).get("POST /documents") == 4,
                what="three uploads and one refusal",
            )
            time.sleep(4)  # a few release rounds: the waiting documents call nobody
            assert sims.gmi.request_counts(GMI_KEY)["POST /documents"] == 4
            assert sims.gmi.rate_limited_count(GMI_KEY) == 1
            # the refused one's PDF was fetched; the fifth waited without fetching it
            assert sims.billomat.request_counts(BILLOMAT_ID)["GET /api/invoices/{id}/pdf"] == 4
            states = pipeline.states()
            assert sorted(states.values()) == ["pending", "pending", "synced", "synced", "synced"]
            waiting = [d for d in pipeline.ledger() if d["state"] == "pending"]
            assert all("quota" in (d["last_error"] or "") for d in waiting)
            [quota] = [q for q in QuotaBook(pipeline.db).all() if q.api == "gmi.upl"]
            assert quota.blocked_until is not None
            assert quota.blocked_until.minute == 0  # GMI's upload quota resets on the full hour
            # other GMI calls of the key (polls, company lookups) are not blocked
            assert all(
                q.blocked_until is None for q in QuotaBook(pipeline.db).all() if q.api == "gmi"
            )

            # The hour turns: GMI accepts uploads again, and the waiting documents land.
            sims.gmi.reset_quotas()
            with pipeline.db.session() as session:
                row = session.get(ApiQuota, ("gmi.upl", quota.scope))
                assert row is not None
                row.blocked_until = row.reset_at = datetime.now(UTC)
            pipeline.wait_until(
                lambda: set(pipeline.states().values()) == {"synced"}, what="all synced"
            )
        finally:
            consumer.stop.set()
            thread.join(10)
    assert len(sims.gmi.documents(GMI_KEY)) == 5
    assert pipeline.states() == {str(b): "synced" for b in bids}
    assert all(d["attempts"] <= 2 for d in pipeline.ledger())


def test_documents_belegsync_imported_into_gmi_are_never_exported_back(
    pipeline: Pipeline, sims: Simulators
) -> None:
    own = sims.gmi.seed_document(GMI_KEY, document_number="OWN-1", document_type="RECEIPT")
    sims.billomat.add_document(BILLOMAT_ID, "invoices")
    sims.billomat.add_document(BILLOMAT_ID, "credit-notes")
    pipeline.add_import(name="in")
    out = pipeline.add_export(name="out")  # every type, same GMI and Billomat accounts
    pipeline.produce_once(["in"])
    pipeline.consume()
    assert len(sims.gmi.documents(GMI_KEY)) == 3
    assert {d["source"] for d in sims.gmi.documents(GMI_KEY) if d["uid"] != own} == {"belegsync"}

    [report] = pipeline.produce_once(["out"])
    pipeline.consume()
    assert report.new == 1  # only the document GMI collected itself
    inbox = sims.billomat.inbox(BILLOMAT_ID)
    assert [i["metadata"]["BELEGSYNC_REF"] for i in inbox] == [pipeline.marker(out, own)]
