"""Export end to end: GMI -> RabbitMQ -> Billomat inbox, on the real broker and the simulators."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from producers.pollers import APPROVED_BY_RECHECK
from simulators import Simulators
from tests.e2e.conftest import (
    BILLOMAT_ID,
    GMI_KEY,
    Pipeline,
    PipelineFactory,
    on_each_db_and_variant,
)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def inbox_by_marker(sims: Simulators) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {}
    for item in sims.billomat.inbox(BILLOMAT_ID):
        metadata = item["metadata"]
        assert isinstance(metadata, dict)
        found.setdefault(str(metadata.get("BELEGSYNC_REF")), []).append(item)
    return found


@on_each_db_and_variant("inbox-metadata-dropped", "gmi-listing-lag=2")
def test_every_matching_document_lands_once_with_its_bytes_and_type(
    any_db_pipeline: Pipeline, sims: Simulators, variant: str
) -> None:
    pipeline = any_db_pipeline
    gmi = sims.gmi
    invoice = gmi.seed_document(
        GMI_KEY, document_type="INCOMING_INVOICE", document_number="RE-1", tags=["Hosting"],
        gross_amount="119.00", net_amount="100.00",
    )  # fmt: skip
    receipt = gmi.seed_document(
        GMI_KEY, document_type="RECEIPT", document_number="Q-7", tags=["Büro"]
    )
    statement = gmi.seed_document(GMI_KEY, document_type="STATEMENT", document_number="KA-3")
    account_id = pipeline.add_export()

    if variant.startswith("gmi-listing-lag"):
        sims.gmi.set_options(listing_lag=60)  # however slow this machine is today
    [report] = pipeline.produce_once()
    if variant.startswith("gmi-listing-lag"):
        # GMI lists the documents only a little later; the next poll's overlap covers that.
        assert (report.result, report.new) == ("ok", 0)
        sims.gmi.set_options(listing_lag=0)  # the lag has passed (no sleeping, no race)
        [report] = pipeline.produce_once()
        assert (report.result, report.new, report.calls) == ("ok", 3, 1)
    else:
        # one GMI list call, and (first poll) one Billomat inbox page looked for earlier uploads
        assert (report.result, report.new, report.calls, report.scan_calls) == ("ok", 3, 2, 1)
    assert pipeline.consume() == 3

    inbox = sims.billomat.inbox(BILLOMAT_ID)
    assert len(inbox) == 3
    by_hash = {str(i["sha256"]): i for i in inbox}
    expected = {invoice: "INVOICE", receipt: "RECEIPT", statement: "BANK_STATEMENT"}
    for uid, inbox_type in expected.items():
        assert by_hash[sha(gmi.document_content(GMI_KEY, uid))]["document_type"] == inbox_type
    first = by_hash[sha(gmi.document_content(GMI_KEY, invoice))]
    if variant != "inbox-metadata-dropped":
        assert set(inbox_by_marker(sims)) == {pipeline.marker(account_id, uid) for uid in expected}
        metadata = first["metadata"]
        assert isinstance(metadata, dict)
        assert metadata["INVOICE_NUMBER"] == "RE-1"
        assert metadata["TOTAL_GROSS"] in {"119.00", "119", "119.0"}
    states = pipeline.states()
    assert set(states.values()) == {"synced"}
    targets = {d["source_id"]: d["target_id"] for d in pipeline.ledger()}
    assert targets[str(invoice)] == str(first["id"])


def test_filters_types_tags_and_date_range_decide_what_is_exported(
    pipeline: Pipeline, sims: Simulators
) -> None:
    gmi = sims.gmi
    wanted = gmi.seed_document(
        GMI_KEY, document_type="RECEIPT", tags=["Reise"], document_date="2026-06-01",
        document_number="W-1",
    )  # fmt: skip
    also_wanted = gmi.seed_document(
        GMI_KEY, document_type="INCOMING_INVOICE", tags=["Büro", "x"], document_date="2026-07-01",
        document_number="W-2",
    )  # fmt: skip
    wrong_type = gmi.seed_document(
        GMI_KEY, document_type="PAYROLL", tags=["Reise"], document_date="2026-06-01",
        document_number="N-1",
    )  # fmt: skip
    wrong_tag = gmi.seed_document(
        GMI_KEY, document_type="RECEIPT", tags=["Privat"], document_date="2026-06-01",
        document_number="N-2",
    )  # fmt: skip
    too_early = gmi.seed_document(
        GMI_KEY, document_type="RECEIPT", tags=["Reise"], document_date="2025-12-31",
        document_number="N-3",
    )  # fmt: skip
    archived = gmi.seed_document(
        GMI_KEY, document_type="RECEIPT", tags=["Reise"], document_date="2026-06-01",
        document_number="N-4", is_archived=True,
    )  # fmt: skip
    account_id = pipeline.add_export(
        document_types=["RECEIPT", "INCOMING_INVOICE"],
        tags=["Reise", "Büro"],
        date_from=date(2026, 1, 1),
        date_to=date(2026, 12, 31),
    )
    pipeline.produce_once()
    pipeline.consume()

    refs = set(inbox_by_marker(sims))
    assert refs == {pipeline.marker(account_id, uid) for uid in (wanted, also_wanted)}
    assert set(pipeline.states()) == {str(wanted), str(also_wanted)}
    for uid in (wrong_type, wrong_tag, too_early, archived):
        assert str(uid) not in pipeline.states()


def test_archive_after_transfer_archives_in_gmi(pipeline: Pipeline, sims: Simulators) -> None:
    uid = sims.gmi.seed_document(GMI_KEY, document_number="A-1")
    pipeline.add_export(archive_after_transfer=True)
    pipeline.produce_once()
    pipeline.consume()
    assert sims.gmi.document(GMI_KEY, uid)["is_archived"] is True
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 1
    assert pipeline.states() == {str(uid): "synced"}


@pytest.mark.parametrize("variant", ["documented", "gmi-approval-keeps-mtime"])
def test_document_approved_after_the_first_poll_is_exported_by_a_later_one(
    pipeline_factory: PipelineFactory, sims: Simulators, variant: str
) -> None:
    # Waiting documents are looked at directly on every poll here (by default every 6 h).
    pipeline = pipeline_factory(approval_recheck="0s")
    approved = sims.gmi.seed_document(GMI_KEY, document_number="OK-1", approval=True)
    pending = sims.gmi.seed_document(GMI_KEY, document_number="WAIT-1", approval=False)
    no_workflow = sims.gmi.seed_document(GMI_KEY, document_number="NONE-1", approval=None)
    # Stored hours ago: further back than a poll's overlap (2 minutes, plus the hour or two the
    # UTC-vs-Berlin reading of the filter adds), so only a change lists them again.
    sims.gmi.age_documents(GMI_KEY, 4 * 3600)
    pipeline.add_export(require_approval=True)

    pipeline.produce_once()
    pipeline.consume()
    assert pipeline.states() == {
        str(approved): "synced",
        str(pending): "waiting_approval",
        str(no_workflow): "waiting_approval",
    }
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 1

    sims.gmi.approve(GMI_KEY, pending)
    [report] = pipeline.produce_once()
    assert report.requeued >= 1
    if variant == "gmi-approval-keeps-mtime":
        # The listing did not show the approval; the direct look did.
        assert report.new == 0
        assert report.rechecked == 2
    pipeline.consume()
    assert pipeline.states()[str(pending)] == "synced"
    assert pipeline.states()[str(no_workflow)] == "waiting_approval"
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 2
    reasons = [h["reason"] for h in pipeline.ledger_history(str(pending))]
    found_by_recheck = APPROVED_BY_RECHECK in reasons
    assert found_by_recheck is (variant == "gmi-approval-keeps-mtime")


def test_an_idle_poll_costs_one_gmi_call(pipeline: Pipeline, sims: Simulators) -> None:
    for n in range(3):
        sims.gmi.seed_document(GMI_KEY, document_number=f"I-{n}")
    pipeline.add_export()
    pipeline.produce_once()
    pipeline.consume()
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 3

    sims.gmi.reset_counts()
    sims.billomat.reset_counts()
    [report] = pipeline.produce_once()
    handled = pipeline.consume(idle_exit=1.0)
    assert (report.new, report.requeued, report.published) == (0, 0, 0)
    assert sum(sims.gmi.request_counts(GMI_KEY).values()) == 1
    assert sims.gmi.request_counts(GMI_KEY) == {"GET /documents": 1}
    assert sum(sims.billomat.request_counts(BILLOMAT_ID).values()) == 0
    assert handled == 0
