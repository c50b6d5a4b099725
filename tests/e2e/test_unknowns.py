"""Undocumented behaviours end to end: a limit in any body shape is waited out and never pauses
an account, a firewall in front of Billomat is retried, a too large file is parked saying how
large it was, and a backdated Billomat document is found by the deep sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from shared.accounts import AccountChanges
from shared.db import ApiQuota, Document, PollState
from simulators import Simulators, make_pdf
from tests.e2e.conftest import BILLOMAT_ID, GMI_KEY, Pipeline, PipelineFactory


@pytest.mark.parametrize("variant", ["documented", "gmi-limit-empty-403", "gmi-limit-detail-403"])
def test_a_gmi_call_limit_in_any_body_shape_is_waited_out_and_pauses_nothing(
    pipeline: Pipeline, sims: Simulators, variant: str
) -> None:
    # One list call and two document reads fit into the "minute"; the third read is refused.
    # (A window of ~12 days: a real minute could turn over in the middle of the test.)
    sims.gmi.set_limits(GMI_KEY, per_minute=3, minute_seconds=10**6)
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"L-{n}") for n in range(3)]
    pipeline.add_export()
    pipeline.produce_once()
    pipeline.consume(idle_exit=2.0)

    [status] = pipeline.overview()
    assert status["enabled"] is True, status["attention"]
    assert status["attention"] is None
    states = pipeline.states()
    assert sorted(states.values()) == ["pending", "synced", "synced"]
    [waiting] = [r for r in pipeline.ledger() if r["state"] == "pending"]
    assert "waiting for the gmi quota" in waiting["last_error"]
    assert sims.gmi.rate_limited_count(GMI_KEY) >= 1

    # The minute turns: GMI answers again and the waiting document lands.
    sims.gmi.reset_quotas()
    with pipeline.db.session() as session:
        session.execute(update(ApiQuota).values(blocked_until=datetime.now(UTC)))
    with pipeline.producing():  # releases the waiting document from the ledger
        pipeline.consume(idle_exit=6.0)
    assert pipeline.states() == {str(u): "synced" for u in uids}
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 3

    # A key GMI does not know still pauses the account, in every variant.
    sims.gmi.set_limits(GMI_KEY, per_minute=100)
    pipeline.accounts.update("acme-export", AccountChanges(gmi_api_key="WRONG-0000-0000"))
    [report] = pipeline.produce_once()
    assert report.result == "error"
    [status] = pipeline.overview()
    assert status["enabled"] is False
    assert "API key does not exist" in status["attention"]


def test_a_firewall_403_in_front_of_billomat_is_retried_and_pauses_nothing(
    pipeline: Pipeline, sims: Simulators
) -> None:
    uid = sims.gmi.seed_document(GMI_KEY, document_number="FW-1")
    pipeline.add_export()
    sims.billomat.fail_next(
        2, status=403, html=True, methods=["POST"], path_contains="inbox-documents"
    )
    pipeline.produce_once()
    pipeline.consume(idle_exit=5.0)
    assert pipeline.states() == {str(uid): "synced"}
    [status] = pipeline.overview()
    assert (status["enabled"], status["attention"]) == (True, None)
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 1
    assert sims.billomat.request_counts(BILLOMAT_ID)["POST /api/inbox-documents"] == 3


def test_a_403_from_billomat_itself_pauses_once_the_check_confirms_a_missing_permission(
    pipeline: Pipeline, sims: Simulators
) -> None:
    uid = sims.gmi.seed_document(GMI_KEY, document_number="FW-2")
    pipeline.add_export()
    sims.billomat.fail_next(1, status=403, methods=["POST"], path_contains="inbox-documents")
    pipeline.produce_once()
    pipeline.consume(idle_exit=2.0)
    [status] = pipeline.overview()
    assert status["enabled"] is False
    assert "lacks a permission" in status["attention"]
    assert pipeline.states() == {str(uid): "held"}
    assert sims.billomat.request_counts(BILLOMAT_ID)["GET /api/clients/myself"] == 1


def test_a_file_too_large_for_billomat_is_parked_saying_how_large_it_was(
    pipeline: Pipeline, sims: Simulators
) -> None:
    sims.billomat.set_options(max_upload_bytes=40_000)
    big = make_pdf("Big", ["x" * 80] * 800)
    small = sims.gmi.seed_document(GMI_KEY, document_number="S-1")
    large = sims.gmi.seed_document(GMI_KEY, document_number="B-1", content=big)
    pipeline.add_export()
    pipeline.produce_once()
    pipeline.consume(idle_exit=2.0)
    rows = {r["source_id"]: r for r in pipeline.ledger()}
    assert rows[str(small)]["state"] == "synced"
    parked = rows[str(large)]
    assert (parked["state"], parked["error_class"]) == ("parked", "permanent")
    assert "HTTP 413" in parked["last_error"]
    assert "MB" in parked["last_error"]
    assert "did not say its limit" in parked["last_error"]
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 1


def test_a_backdated_billomat_document_is_found_by_the_deep_sweep(
    pipeline: Pipeline, sims: Simulators
) -> None:
    recent = sims.billomat.add_document(BILLOMAT_ID, "invoices", date="2026-11-20")
    account_id = pipeline.add_import(document_kinds=["invoices"])
    [first] = pipeline.produce_once()
    assert (first.new, first.swept) == (1, False)  # a first poll lists everything anyway
    pipeline.consume()

    # Created today, dated ten months back: far behind the cursor's 31-day overlap.
    backdated = sims.billomat.add_document(BILLOMAT_ID, "invoices", date="2026-01-05")
    [missed] = pipeline.produce_once()
    assert (missed.new, missed.swept) == (0, False)

    # A day later the next poll is a deep sweep.
    with pipeline.db.session() as session:
        state = session.get(PollState, account_id)
        assert state is not None
        day_ago = (datetime.now(UTC) - timedelta(days=1, minutes=1)).isoformat()
        state.cursor = {**state.cursor, "deep_sweep": {"invoices": day_ago}}
    [swept] = pipeline.produce_once()
    assert (swept.new, swept.swept) == (1, True)
    pipeline.consume()
    assert pipeline.states() == {str(recent): "synced", str(backdated): "synced"}
    assert len(sims.gmi.documents(GMI_KEY)) == 2

    # ...and the sweep after it is a day away again: polls cost one call per kind.
    sims.billomat.reset_counts()
    [quiet] = pipeline.produce_once()
    assert (quiet.swept, quiet.calls) == (False, 1)


def test_the_approval_re_check_looks_at_the_longest_waiting_documents_a_few_per_poll(
    pipeline_factory: PipelineFactory, sims: Simulators
) -> None:
    sims.gmi.set_options(approval_touches_mtime=False)
    pipeline = pipeline_factory(approval_recheck="1h", approval_recheck_batch=2)
    uids = [
        sims.gmi.seed_document(GMI_KEY, document_number=f"W-{n}", approval=False) for n in range(5)
    ]
    sims.gmi.age_documents(GMI_KEY, 4 * 3600)
    pipeline.add_export(require_approval=True)
    pipeline.produce_once()
    pipeline.consume()
    assert set(pipeline.states().values()) == {"waiting_approval"}
    sims.gmi.approve(GMI_KEY, uids[0])
    with pipeline.db.session() as session:  # two hours later: every one of them is due
        session.execute(update(Document).values(checked_at=datetime.now(UTC) - timedelta(hours=2)))

    sims.gmi.reset_counts()
    rounds = [pipeline.produce_once()[0] for _ in range(3)]
    assert [r.rechecked for r in rounds] == [2, 2, 1]  # two per poll, each document once
    gets = sims.gmi.request_counts(GMI_KEY)["GET /documents/{documentUid}"]
    assert gets == 5
    assert sum(r.requeued for r in rounds) == 1
    pipeline.consume()
    assert pipeline.states()[str(uids[0])] == "synced"
