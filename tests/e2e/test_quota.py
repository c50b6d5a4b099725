"""Quota as the speed limit, end to end: admission before work, waiting for the reset, release
from the ledger.  Compressed windows; every assertion is a count, never a time."""

from __future__ import annotations

from collections import Counter

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


def holds(pipeline: Pipeline, source_id: str, api: str) -> int:
    return sum(f"waiting for the {api} quota" in h for h in history(pipeline, source_id))


def test_no_gmi_download_happens_for_a_document_whose_billomat_window_is_spent(
    pipeline_factory: PipelineFactory, sims: Simulators
) -> None:
    pipeline = pipeline_factory(billomat_window_seconds=WINDOW)
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=3, window_seconds=WINDOW)
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"W-{n}") for n in range(7)]
    account_id = pipeline.add_export()
    pipeline.produce_once()
    drain(pipeline, 7)

    assert pipeline.states() == {str(u): "synced" for u in uids}
    refs = Counter(str(i["metadata"]["BELEGSYNC_REF"]) for i in sims.billomat.inbox(BILLOMAT_ID))
    assert refs == {f"belegsync:a{account_id}:gmi:{u}": 1 for u in uids}
    # 7 documents through windows of 3: at least two resets, yet every document was downloaded
    # from GMI exactly once, and only once its upload had room
    gmi = sims.gmi.request_counts(GMI_KEY)
    assert gmi["GET /documents/{documentUid}"] == 7
    assert gmi["GET /documents"] == 1  # the poll
    assert sims.billomat.request_counts(BILLOMAT_ID) == {"POST /api/inbox-documents": 7}
    assert sims.billomat.rate_limited_count(BILLOMAT_ID) == 0
    waits = {str(u): holds(pipeline, str(u), "billomat") for u in uids}
    assert sum(waits.values()) >= 1  # some document really waited for a reset
    assert max(waits.values()) == 1  # and was released again only when it could run


def test_a_held_document_runs_after_the_reset_without_an_attempt_being_counted(
    pipeline_factory: PipelineFactory, sims: Simulators
) -> None:
    # A single counted failure would park a document: waiting for the quota must not count.
    pipeline = pipeline_factory(billomat_window_seconds=WINDOW, max_attempts=1)
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=2, window_seconds=WINDOW)
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"H-{n}") for n in range(5)]
    pipeline.add_export()
    pipeline.produce_once()
    drain(pipeline, 5)

    assert pipeline.states() == {str(u): "synced" for u in uids}
    rows = pipeline.ledger()
    assert [r["attempts"] for r in rows] == [1] * 5  # one upload each, the waits not counted
    held = [r["source_id"] for r in rows if holds(pipeline, r["source_id"], "billomat")]
    assert held  # some waited for a reset and ran afterwards
    for source_id in held:
        [doc] = [h for h in history(pipeline, source_id) if h.startswith("synced")]
        assert doc
    assert sims.billomat.request_counts(BILLOMAT_ID)["POST /api/inbox-documents"] == 5
    assert sims.billomat.rate_limited_count(BILLOMAT_ID) == 0


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
