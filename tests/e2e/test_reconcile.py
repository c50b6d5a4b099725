"""`belegsync reconcile`: planted gaps, duplicates and dangling rows are found in both directions,
`--fix` closes the gaps exactly once, and the cost is stated (and the quota kept) first."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
import requests

from simulators import Simulators, make_pdf
from tests.e2e.conftest import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY, Pipeline
from tests.helpers import Cli


@pytest.fixture
def run(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(pipeline.settings, capsys)


def sha(content: bytes | None) -> str:
    assert content is not None
    return hashlib.sha256(content).hexdigest()


def reconcile(run: Cli, *args: str) -> dict[str, Any]:
    result = run("reconcile", "--yes", "--json", *args)
    assert result.code == 0, result.err
    report: dict[str, Any] = result.json()
    return report


def upload_to_inbox(sims: Simulators, content: bytes, metadata: dict[str, str]) -> str:
    """Someone (or a broken sync) puts a file into the inbox, as Billomat's API takes it."""
    body = {
        "inbox-document": {
            "base64file": base64.b64encode(content).decode(),
            "metadata": {"data": [{"key": k, "value": v} for k, v in metadata.items()]},
        }
    }
    url = sims.billomat_url_template.format(billomat_id=BILLOMAT_ID) + "/inbox-documents"
    response = requests.post(
        url,
        json=body,
        headers={"X-BillomatApiKey": BILLOMAT_KEY, "Accept": "application/json"},
        timeout=10,
    )
    assert response.status_code == 201
    return str(response.json()["inbox-document"]["id"])


def delete_from_inbox(sims: Simulators, inbox_id: str) -> None:
    url = (
        sims.billomat_url_template.format(billomat_id=BILLOMAT_ID) + f"/inbox-documents/{inbox_id}"
    )
    assert requests.delete(url, headers={"X-BillomatApiKey": BILLOMAT_KEY}, timeout=10).ok


@pytest.mark.parametrize("variant", ["documented", "inbox-metadata-dropped"])
def test_export_gaps_duplicates_and_dangling_rows_are_found_and_fix_closes_gaps_once(
    pipeline: Pipeline, sims: Simulators, run: Cli, variant: str
) -> None:
    gmi = sims.gmi
    kept, twice, gone = (gmi.seed_document(GMI_KEY, document_number=n) for n in ("K", "T", "G"))
    # too large for Billomat's gateway today: parked, and missing in the target
    parked = gmi.seed_document(
        GMI_KEY, document_number="P", content=make_pdf("P", ["x" * 80] * 400)
    )
    sims.billomat.set_options(max_upload_bytes=20_000)
    account_id = pipeline.add_export()
    pipeline.produce_once()
    pipeline.consume(idle_exit=2.0)
    targets = {r["source_id"]: r["target_id"] for r in pipeline.ledger()}
    assert targets[str(parked)] is None
    sims.billomat.set_options(max_upload_bytes="unlimited")  # the gateway was reconfigured
    unseen = gmi.seed_document(GMI_KEY, document_number="U")  # after the poll: never seen
    # a second copy of one upload, as a sync without a working recovery would leave it
    copy = upload_to_inbox(
        sims,
        gmi.document_content(GMI_KEY, twice),
        {"BELEGSYNC_REF": pipeline.marker(account_id, twice)},
    )
    delete_from_inbox(sims, targets[str(gone)])  # someone booked or deleted it in Billomat

    report = reconcile(run, "acme-export")
    assert report["account"] == "acme-export"
    assert report["checked"] == 5
    assert sorted(report["missing"]) == sorted([str(parked), str(unseen)])
    assert report["duplicates"] == [sorted([targets[str(twice)], copy], key=lambda i: (len(i), i))]
    assert report["dangling"] == [str(gone)]
    assert report["calls"]["gmi"] >= 1
    assert report["calls"]["billomat"] >= 1
    assert str(kept) not in report["missing"] + report["dangling"]

    fixed = reconcile(run, "acme-export", "--fix")
    assert sorted(fixed["queued"]) == sorted([str(parked), str(unseen)])
    again = reconcile(run, "acme-export", "--fix")
    assert again["queued"] == []  # already on their way: nothing is queued twice
    assert sorted(again["in_progress"]) == sorted([str(parked), str(unseen)])
    pipeline.consume(idle_exit=2.0)

    landed = [i["sha256"] for i in sims.billomat.inbox(BILLOMAT_ID)]
    for uid in (parked, unseen):
        assert landed.count(sha(gmi.document_content(GMI_KEY, uid))) == 1
    after = reconcile(run, "acme-export")
    assert after["missing"] == []
    assert after["dangling"] == [str(gone)]  # reported, never sent again
    assert len(after["duplicates"]) == 1  # reported, never deleted


def test_import_gaps_duplicates_and_dangling_rows_are_found_and_fix_closes_gaps_once(
    pipeline: Pipeline, sims: Simulators, run: Cli
) -> None:
    bm = sims.billomat
    kept = bm.add_document(BILLOMAT_ID, "invoices", date="2026-11-20")
    twice = bm.add_document(BILLOMAT_ID, "invoices", date="2026-11-21")
    gone = bm.add_document(BILLOMAT_ID, "invoices", date="2026-11-22")
    pipeline.add_import(document_kinds=["invoices"])
    pipeline.produce_once()
    pipeline.consume()
    backdated = bm.add_document(BILLOMAT_ID, "invoices", date="2026-01-03")
    pipeline.produce_once()  # the poll does not look that far back
    targets = {r["source_id"]: r["target_id"] for r in pipeline.ledger()}
    assert str(backdated) not in targets
    sims.gmi.delete_document(GMI_KEY, int(targets[str(gone)]))
    # the same Billomat invoice a second time in GMI (a re-rendered PDF, other bytes)
    number = bm.document(BILLOMAT_ID, "invoices", twice)["number"]
    copy = requests.post(
        sims.gmi_base_url + "/documents",
        json={
            "fileName": f"Rechnung {number} (2).pdf",
            "fileContent": base64.b64encode(b"%PDF-1.4\n% another rendering\n%%EOF\n").decode(),
            "documentType": "SALES_INVOICE",
            "documentNumber": number,
        },
        headers={"X-API-KEY": GMI_KEY, "x-application": "belegsync"},
        timeout=10,
    ).json()["documentUid"]

    report = reconcile(run, "acme-import")
    assert report["checked"] == 4
    assert report["missing"] == [str(backdated)]
    assert report["dangling"] == [str(gone)]
    assert report["duplicates"] == [sorted([targets[str(twice)], str(copy)])]
    assert str(kept) not in report["missing"]

    fixed = reconcile(run, "acme-import", "--fix")
    assert fixed["queued"] == [str(backdated)]
    assert reconcile(run, "acme-import", "--fix")["queued"] == []
    pipeline.consume()
    in_gmi = [d["sha256"] for d in sims.gmi.documents(GMI_KEY)]
    assert in_gmi.count(sha(bm.pdf_content(BILLOMAT_ID, "invoices", backdated))) == 1
    assert reconcile(run, "acme-import")["missing"] == []


def test_reconcile_states_its_cost_and_goes_on_only_when_told(
    pipeline: Pipeline, sims: Simulators, run: Cli
) -> None:
    sims.gmi.seed_document(GMI_KEY, document_number="C-1")
    pipeline.add_export()
    refused = run("reconcile", "acme-export")
    assert refused.code == 2
    assert "reconcile acme-export: about 1 GMI and 1 Billomat calls" in refused.err
    assert "add --yes to go on" in refused.err
    bad = run("reconcile", "acme-export", "--since", "last week", "--yes")
    assert bad.code == 2
    assert "invalid --since 'last week': use YYYY-MM-DD" in bad.err
    done = run("reconcile", "acme-export", "--since", "2026-01-01", "--yes")
    assert done.code == 0, done.err
    assert "missing in the target: " in done.out


def test_reconcile_waits_for_the_next_billomat_window_instead_of_overspending(
    pipeline_factory: Any, sims: Simulators, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = pipeline_factory(billomat_quota_reserve=1)
    run = Cli(pipeline.settings, capsys)
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"W-{n}") for n in range(3)]
    account_id = pipeline.add_export()
    pipeline.produce_once()
    pipeline.consume()
    for uid in uids:  # every upload twice: six same-size inbox documents to compare
        upload_to_inbox(sims, sims.gmi.document_content(GMI_KEY, uid), {"X": f"a{account_id}"})
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=5, window_seconds=3)
    sims.billomat.reset_quotas()
    result = run("reconcile", "acme-export", "--yes", "--json")
    assert result.code == 0, result.err
    assert "waiting" in result.err
    assert "billomat quota" in result.err
    assert len(result.json()["duplicates"]) == 3
    assert sims.billomat.rate_limited_count(BILLOMAT_ID) == 0
