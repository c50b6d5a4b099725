"""Quota as the speed limit, end to end: admission before work, waiting for the reset, release
from the ledger.  Compressed windows; every assertion is a count, never a time."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import requests
from prometheus_client import CollectorRegistry

from app.status import BacklogMetrics, overview
from shared.db import SyncAccount
from shared.metrics import Metrics
from shared.quota import limits_from
from simulators import Simulators
from tests.e2e.conftest import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY, Pipeline, PipelineFactory
from tests.e2e.test_recovery import history

WINDOW = 6  # seconds: Billomat's quarter hour, compressed


def drain(pipeline: Pipeline, total: int) -> None:
    """Producer loop and one consumer until ``total`` documents are synced."""
    with pipeline.producing():  # releases each window's share when it resets
        consumer, thread = pipeline.consume_in_thread()
        try:
            pipeline.wait_until(
                lambda: Counter(pipeline.states().values())["synced"] == total,
                timeout=120,
                what=f"{total} synced",
            )
        finally:
            consumer.stop.set()
            thread.join(10)


def skip_inbox_scan(pipeline: Pipeline, account_id: int) -> None:
    """As if the account's first poll had looked into the inbox already (found nothing)."""
    with pipeline.db.session() as session:
        account = session.get(SyncAccount, account_id)
        assert account is not None
        account.target_scan = {"at": datetime.now(UTC).isoformat(), "found": 0, "listed": 0}


def landed_markers(sims: Simulators) -> Counter[str]:
    return Counter(str(i["metadata"]["BELEGSYNC_REF"]) for i in sims.billomat.inbox(BILLOMAT_ID))


def holds(pipeline: Pipeline, source_id: str, api: str) -> int:
    return sum(f"waiting for the {api} quota" in h for h in history(pipeline, source_id))


def test_no_gmi_download_happens_for_a_document_whose_billomat_window_is_spent(
    pipeline_factory: PipelineFactory, sims: Simulators
) -> None:
    pipeline = pipeline_factory(billomat_window_seconds=WINDOW)
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=3, window_seconds=WINDOW)
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"W-{n}") for n in range(7)]
    account_id = pipeline.add_export()
    skip_inbox_scan(pipeline, account_id)
    # No Billomat answer seen yet: the producer assumes Billomat's documented 300 calls and
    # releases all 7; the consumers learn the window of 3 from the first answers.
    [report] = pipeline.produce_once()
    assert report.published == 7
    drain(pipeline, 7)

    assert pipeline.states() == {str(u): "synced" for u in uids}
    assert sorted(landed_markers(sims).values()) == [1] * 7
    # 7 documents through windows of 3: the documents released into a spent window waited
    # without their download; every document was downloaded from GMI exactly once
    gmi = sims.gmi.request_counts(GMI_KEY)
    assert gmi["GET /documents/{documentUid}"] == 7
    assert gmi["GET /documents"] == 1  # the poll
    assert sims.billomat.request_counts(BILLOMAT_ID) == {"POST /api/inbox-documents": 7}
    assert sims.billomat.rate_limited_count(BILLOMAT_ID) == 0
    waits = {str(u): holds(pipeline, str(u), "billomat") for u in uids}
    assert sum(waits.values()) >= 4  # held at least once: 7 released into a window of 3
    assert max(waits.values()) == 1  # and released again only when it could run


def test_a_held_document_runs_after_the_reset_without_an_attempt_being_counted(
    pipeline_factory: PipelineFactory, sims: Simulators
) -> None:
    # A single counted failure would park a document: waiting for the quota must not count.
    pipeline = pipeline_factory(billomat_window_seconds=WINDOW, max_attempts=1)
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=3, window_seconds=WINDOW)
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"H-{n}") for n in range(5)]
    pipeline.add_export()
    [report] = pipeline.produce_once()  # its inbox scan saw 2 calls left: 2 released
    assert report.published == 2
    # another integration of the same Billomat account spends the rest of the window
    url = sims.billomat_url_template.format(billomat_id=BILLOMAT_ID) + "/clients"
    while requests.get(url, headers={"X-BillomatApiKey": BILLOMAT_KEY}, timeout=5).ok:
        pass
    drain(pipeline, 5)

    assert pipeline.states() == {str(u): "synced" for u in uids}
    rows = {r["source_id"]: r for r in pipeline.ledger()}
    refused = [u for u in rows if rows[u]["attempts"] == 2]
    assert len(refused) == 1  # the first upload met the spent window: Billomat said 429 ...
    assert sims.billomat.rate_limited_count(BILLOMAT_ID) == 2  # (ours and the other's)
    held = [u for u in rows if u not in refused and holds(pipeline, u, "billomat")]
    assert held  # ... after which the book held the next one back until the reset
    assert all(rows[u]["attempts"] == 1 for u in rows if u not in refused)
    gmi = sims.gmi.request_counts(GMI_KEY)
    assert gmi["GET /documents/{documentUid}"] == 5 + 1  # only the refused one twice
    assert sims.billomat.request_counts(BILLOMAT_ID)["POST /api/inbox-documents"] == 6


def test_gmi_upload_window_holds_imports_before_their_pdf_is_fetched(
    pipeline_factory: PipelineFactory, sims: Simulators
) -> None:
    # GMI's hourly upload limit, compressed: 3 uploads per 6 s, counted by belegsync itself
    pipeline = pipeline_factory(gmi_uploads_per_hour=3, gmi_hour_seconds=WINDOW)
    sims.gmi.set_limits(GMI_KEY, uploads_per_hour=3, hour_seconds=WINDOW)
    bids = [sims.billomat.add_document(BILLOMAT_ID, "invoices") for _ in range(7)]
    pipeline.add_import(document_kinds=["invoices"])
    pipeline.produce_once()
    drain(pipeline, 7)

    assert pipeline.states() == {str(b): "synced" for b in bids}
    assert sims.gmi.request_counts(GMI_KEY) == {"POST /documents": 7}
    assert sims.gmi.rate_limited_count(GMI_KEY) == 0  # GMI never had to refuse
    pdfs = sims.billomat.request_counts(BILLOMAT_ID)["GET /api/invoices/{id}/pdf"]
    assert pdfs == 7  # no PDF fetched for a document whose upload window was spent
    assert [r["attempts"] for r in pipeline.ledger()] == [1] * 7
    # GMI's window is counted by belegsync, so it was known from the start: the producer
    # released only what each window could take, and no document even had to be held
    assert not any(holds(pipeline, str(b), "gmi") for b in bids)


def test_the_producers_metrics_show_a_held_backlog_and_its_eta_as_status_does(
    pipeline_factory: PipelineFactory, sims: Simulators
) -> None:
    pipeline = pipeline_factory(billomat_window_seconds=600)
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=3, window_seconds=600)
    for n in range(5):
        sims.gmi.seed_document(GMI_KEY, document_number=f"B-{n}")
    pipeline.add_export()
    [report] = pipeline.produce_once()
    assert report.published < 5  # the rest is held in the ledger, in no queue
    metrics = Metrics(CollectorRegistry(), role="producer")
    observe = BacklogMetrics(pipeline.db, metrics, limits_from(pipeline.settings))
    observe()

    [row] = overview(pipeline.db, limits=limits_from(pipeline.settings))
    assert row["backlog"] == 5
    labels = {"account": "acme-export"}
    assert metrics.registry.get_sample_value("belegsync_backlog_documents", labels) == 5
    eta = metrics.registry.get_sample_value("belegsync_backlog_eta_seconds", labels)
    assert eta is not None
    assert eta > 0
    assert abs(eta - row["eta_seconds"]) <= 2  # the same answer, a moment later

    pipeline.accounts.set_enabled("acme-export", False)  # a paused account: ETA unknown
    observe()
    assert metrics.registry.get_sample_value("belegsync_backlog_documents", labels) == 5
    assert metrics.registry.get_sample_value("belegsync_backlog_eta_seconds", labels) is None

    pipeline.accounts.remove("acme-export")  # gone: no series left behind
    observe()
    assert metrics.registry.get_sample_value("belegsync_backlog_documents", labels) is None
