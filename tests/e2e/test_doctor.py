"""`belegsync doctor` against the simulators: each variant is reported as it is, the findings
are recorded for the clients, and the write probe is never left behind — not even when the
doctor is interrupted or killed."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from shared.findings import Findings
from simulators import Simulators
from tests.e2e.conftest import BILLOMAT_ID, GMI_KEY, Pipeline, PipelineFactory
from tests.helpers import Cli


@pytest.fixture
def run(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(pipeline.settings, capsys)


def findings_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["key"]: f for f in report["findings"]}


def recorded(pipeline: Pipeline, account_id: int) -> dict[str, Any]:
    return {k: f.value for k, f in Findings(pipeline.db).all(account_id).items()}


@pytest.mark.parametrize(
    ("variant", "metadata", "filename_kept"),
    [
        ("documented", "kept", True),
        ("inbox-metadata-dropped", "dropped", True),
        ("inbox-metadata-rewritten", "rewritten", False),
    ],
)
def test_the_write_probe_tells_what_the_inbox_keeps_and_is_removed_again(
    pipeline: Pipeline,
    sims: Simulators,
    run: Cli,
    variant: str,
    metadata: str,
    filename_kept: bool,
) -> None:
    account_id = pipeline.add_export()
    result = run("doctor", "acme-export", "--write-probe", "--json")
    assert result.code == 0, result.err
    report = result.json()
    found = findings_of(report)
    assert found["gmi.key"]["status"] == "ok"
    assert found["billomat.key"]["status"] == "ok"
    assert "calls left in this window" in found["billomat.quota"]["answer"]
    meta = found["billomat.inbox_metadata"]
    assert (meta["status"] == "ok") is (metadata == "kept")
    assert meta["answer"].startswith("yes" if metadata == "kept" else f"no: {metadata}")
    probe = found["probe.billomat"]
    assert ("file name kept" in probe["answer"]) is filename_kept
    assert "bytes the same" in probe["answer"]
    assert "removed again" in probe["answer"]
    assert sims.billomat.inbox(BILLOMAT_ID) == []  # nothing left behind
    assert recorded(pipeline, account_id)["billomat.inbox_metadata"] == metadata
    assert "probe.pending" not in recorded(pipeline, account_id)
    assert report["calls"]["billomat"] >= 4  # key, sorts, upload, read back, delete


def test_read_only_doctor_reads_the_metadata_answer_off_our_own_uploads(
    pipeline: Pipeline, sims: Simulators, run: Cli
) -> None:
    sims.billomat.set_options(inbox_metadata="dropped")
    sims.gmi.seed_document(GMI_KEY, document_number="D-1")
    pipeline.add_export()
    pipeline.produce_once()
    pipeline.consume()
    sims.billomat.reset_counts()
    report = run("doctor", "acme-export", "--json").json()
    meta = findings_of(report)["billomat.inbox_metadata"]
    assert meta["answer"] == "no: dropped (1 of 1 of our uploads lack their marker)"
    counts = sims.billomat.request_counts(BILLOMAT_ID)
    assert not any(e.startswith(("POST", "DELETE")) for e in counts)  # read-only


@pytest.mark.parametrize(
    ("variant", "sorted_by_id"), [("documented", True), ("billomat-no-sort-by-id", False)]
)
def test_doctor_reports_whether_billomat_sorts_by_id_and_the_clients_remember(
    pipeline: Pipeline, sims: Simulators, run: Cli, variant: str, sorted_by_id: bool
) -> None:
    account_id = pipeline.add_import(document_kinds=["invoices"])
    report = run("doctor", "acme-import", "--json").json()
    sort = findings_of(report)["billomat.sort"]
    assert sort["answer"].startswith("yes" if sorted_by_id else "no: order_by=id is refused")
    learnt = recorded(pipeline, account_id)
    expected = "id" if sorted_by_id else "created"
    assert learnt["billomat.sort.documents"] == expected
    assert learnt["billomat.sort.inbox-documents"] == expected
    # The next poll sorts the accepted way from its first call.
    sims.billomat.add_document(BILLOMAT_ID, "invoices")
    sims.billomat.reset_counts()
    [poll] = pipeline.produce_once()
    assert (poll.result, poll.new) == ("ok", 1)
    assert sims.billomat.request_counts(BILLOMAT_ID) == {"GET /api/invoices": 1}


@pytest.mark.parametrize(("variant", "lags"), [("documented", False), ("gmi-listing-lag=3", True)])
def test_the_import_write_probe_measures_gmis_listing_lag_and_is_removed(
    pipeline: Pipeline, sims: Simulators, run: Cli, variant: str, lags: bool
) -> None:
    account_id = pipeline.add_import()
    report = run("doctor", "acme-import", "--write-probe", "--json").json()
    lag = findings_of(report)["gmi.listing_lag_seconds"]
    assert lag["answer"].startswith("no: after about" if lags else "yes")
    assert "removed again" in lag["answer"]
    assert sims.gmi.documents(GMI_KEY) == []
    value = recorded(pipeline, account_id)["gmi.listing_lag_seconds"]
    assert (value >= 3) if lags else value == 0


@pytest.mark.parametrize(
    ("variant", "touches"), [("documented", True), ("gmi-approval-keeps-mtime", False)]
)
def test_doctor_sees_whether_approving_changes_the_listing(
    pipeline: Pipeline, sims: Simulators, run: Cli, variant: str, touches: bool
) -> None:
    uid = sims.gmi.seed_document(GMI_KEY, document_number="A-1", approval=False)
    sims.gmi.age_documents(GMI_KEY, 4 * 3600)  # further back than any "updated since" window
    account_id = pipeline.add_export(require_approval=True)
    pipeline.produce_once()
    pipeline.consume()
    assert pipeline.states() == {str(uid): "waiting_approval"}
    sims.gmi.approve(GMI_KEY, uid)
    report = run("doctor", "acme-export", "--json").json()
    approval = findings_of(report)["gmi.approval_touches_mtime"]
    assert approval["answer"].startswith("yes" if touches else "no")
    assert recorded(pipeline, account_id)["gmi.approval_touches_mtime"] is touches


@pytest.mark.parametrize(
    ("variant", "shape", "status"),
    [("documented", "code", "ok"), ("gmi-limit-empty-403", "empty", "warn"),
     ("gmi-limit-detail-403", "text", "ok")],
)  # fmt: skip
def test_the_limit_probe_shows_how_gmi_refuses_and_nothing_is_paused(
    pipeline: Pipeline, sims: Simulators, run: Cli, variant: str, shape: str, status: str
) -> None:
    sims.gmi.set_limits(GMI_KEY, per_minute=8)
    account_id = pipeline.add_export()
    result = run("doctor", "acme-export", "--limit-probe", "--json")
    assert result.code == 0, result.err
    body = findings_of(result.json())["gmi.limit_body"]
    assert body["status"] == status
    assert recorded(pipeline, account_id)["gmi.limit_body"] == shape
    [overview] = pipeline.overview()
    assert overview["enabled"] is True


def test_a_rejected_key_fails_the_doctor_with_exit_code_1(
    pipeline: Pipeline, sims: Simulators, run: Cli
) -> None:
    from shared.accounts import AccountChanges

    pipeline.add_export()
    pipeline.accounts.update("acme-export", AccountChanges(billomat_api_key="wrong-key-000"))
    result = run("doctor", "acme-export")
    assert result.code == 1
    assert "[XX] Does Billomat accept the API key? no:" in result.out
    assert "[ok] Does GMI accept the API key? yes" in result.out
    assert "wrong-key-000" not in result.out + result.err


@pytest.mark.parametrize("variant", ["documented", "inbox-metadata-dropped"])
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_write_probe_is_removed_before_the_doctor_exits(
    pipeline_factory: PipelineFactory, sims: Simulators, how: signal.Signals, variant: str
) -> None:
    pipeline = pipeline_factory()
    pipeline.add_export()
    # The upload lands at once but is answered only after 8 s: the doctor is stopped meanwhile.
    sims.billomat.hold_after_next_write(1, seconds=8, path_contains="inbox-documents")
    doctor = pipeline.spawn("doctor", "acme-export", "--write-probe")
    pipeline.wait_until(lambda: len(sims.billomat.inbox(BILLOMAT_ID)) == 1, what="probe landed")
    doctor.send_signal(how)
    assert doctor.wait(30) == 128 + how
    assert sims.billomat.inbox(BILLOMAT_ID) == []


@pytest.mark.parametrize("variant", ["documented", "inbox-metadata-rewritten"])
def test_a_killed_doctors_probe_is_removed_by_the_next_run(
    pipeline: Pipeline, sims: Simulators, run: Cli, variant: str
) -> None:
    account_id = pipeline.add_export()
    sims.billomat.hold_after_next_write(1, seconds=8, path_contains="inbox-documents")
    doctor = pipeline.spawn("doctor", "acme-export", "--write-probe")
    pipeline.wait_until(lambda: len(sims.billomat.inbox(BILLOMAT_ID)) == 1, what="probe landed")
    doctor.kill()
    assert doctor.wait(10) == -9
    assert "probe.pending" in recorded(pipeline, account_id)

    result = run("doctor", "acme-export")  # read-only: it only cleans up after the killed run
    assert result.code == 0, result.err
    assert "removed the write probe an interrupted run left behind" in result.out
    assert sims.billomat.inbox(BILLOMAT_ID) == []
    assert "probe.pending" not in recorded(pipeline, account_id)
