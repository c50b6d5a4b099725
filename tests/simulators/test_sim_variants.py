"""Variants: each undocumented behaviour switched the other way, as a client sees it."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sim_support import BILLOMAT_ID, GMI_KEY, FakeClock

from simulators import BillomatSimulator, GmiSimulator, Simulators, make_pdf
from simulators.variants import VARIANTS, BillomatBehaviour, GmiBehaviour, apply_variants

ROOT = Path(__file__).resolve().parents[2]


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def _upload_inbox(http: requests.Session, bm_url: str, content: bytes) -> requests.Response:
    body = {
        "inbox-document": {
            "filename": "rechnung-4711.pdf",
            "base64file": _b64(content),
            "metadata": {
                "data": [
                    {"key": "BELEGSYNC_REF", "value": "belegsync:a1:gmi:17"},
                    {"key": "INVOICE_NUMBER", "value": "LR-4711"},
                ]
            },
        }
    }
    return http.post(bm_url + "/inbox-documents", json=body, headers={"Accept": "application/json"})


# --- GMI: the body of a call-limit refusal --------------------------------------------------


@pytest.mark.parametrize(
    ("limit_body", "expected"),
    [
        ("code", {"code": 429, "detail": "API call limit of 1 calls per minute exceeded."}),
        ("empty", {}),
        ("detail", {"detail": "Minute limit exceeded"}),
    ],
)
def test_gmi_call_limit_refusal_has_the_body_the_variant_settles(
    gmi: GmiSimulator, gmi_http: requests.Session, limit_body: str, expected: dict[str, object]
) -> None:
    gmi.set_options(limit_body=limit_body)
    gmi.set_limits(GMI_KEY, per_minute=1)
    base = gmi.base_url
    assert gmi_http.get(base + "/apiStatus").status_code == 200
    refused = gmi_http.get(base + "/apiStatus")
    assert refused.status_code == 403
    assert refused.json() == expected
    # a wrong key keeps its live-observed answer in every variant
    wrong = requests.get(base + "/apiStatus", headers={"X-API-KEY": "nope"}, timeout=5)
    assert (wrong.status_code, wrong.json()["code"]) == (403, 403)


def test_gmi_daily_limit_with_a_text_only_body_names_the_day(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    gmi.set_options(limit_body="detail")
    gmi.set_limits(GMI_KEY, per_minute=100, per_day=1)
    gmi_http.get(gmi.base_url + "/apiStatus")
    refused = gmi_http.get(gmi.base_url + "/apiStatus")
    assert (refused.status_code, refused.json()) == (403, {"detail": "Daily limit exceeded"})


# --- GMI: approval and the modification time ------------------------------------------------


@pytest.mark.parametrize(("touches", "listed"), [(True, True), (False, False)])
def test_approval_changes_the_modification_time_only_when_the_variant_says_so(
    gmi: GmiSimulator,
    gmi_http: requests.Session,
    clock: FakeClock,
    touches: bool,
    listed: bool,
) -> None:
    gmi.set_options(approval_touches_mtime=touches)
    uid = gmi.seed_document(GMI_KEY, approval=False)
    clock.advance(60)
    since = "2026-11-02 10:00:30"  # Berlin wall time, after the seed, before the approval
    clock.advance(60)
    gmi.approve(GMI_KEY, uid)
    page = gmi_http.get(gmi.base_url + "/documents", params={"updatedOrNewSinceFilter": since})
    assert [r["documentUid"] for r in page.json()["records"]] == ([uid] if listed else [])
    one = gmi_http.get(gmi.base_url + f"/documents/{uid}", params={"includeDocument": 0})
    assert one.json()["meta_data"]["workflowDetails"]["isCompleted"] is True


# --- GMI: listing lag -----------------------------------------------------------------------


def test_with_listing_lag_a_new_document_is_listed_only_later_but_found_by_uid_and_content(
    gmi: GmiSimulator, gmi_http: requests.Session, clock: FakeClock
) -> None:
    gmi.set_options(listing_lag=5)
    content = make_pdf("Lag", ["1"])
    body = {"fileName": "lag.pdf", "fileContent": _b64(content), "documentType": "MISC"}
    uid = gmi_http.post(gmi.base_url + "/documents", json=body).json()["documentUid"]

    listed = gmi_http.get(gmi.base_url + "/documents").json()
    assert (listed["totalCount"], listed["records"]) == (0, [])
    assert gmi_http.get(gmi.base_url + f"/documents/{uid}").status_code == 200
    exists = gmi_http.post(gmi.base_url + "/documents/exists", json={"fileContent": _b64(content)})
    assert exists.json()["exists"] is True
    again = gmi_http.post(gmi.base_url + "/documents", json=body)
    assert (again.status_code, again.json()["error_code"]) == (422, 127)

    clock.advance(5)
    listed = gmi_http.get(gmi.base_url + "/documents").json()
    assert [r["documentUid"] for r in listed["records"]] == [uid]


# --- Billomat: inbox metadata ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "metadata", "renamed"),
    [
        ("kept", {"BELEGSYNC_REF": "belegsync:a1:gmi:17", "INVOICE_NUMBER": "LR-4711"}, False),
        ("dropped", {}, False),
        (
            "rewritten",
            {"INVOICE_NUMBER": "LR-4711", "DOC_TYPE": "OTHER", "DOCUMENT_DOMAIN": "INCOMING"},
            True,
        ),
    ],
)
def test_inbox_keeps_drops_or_rewrites_client_metadata(
    billomat: BillomatSimulator,
    billomat_http: requests.Session,
    bm_url: str,
    mode: str,
    metadata: dict[str, str],
    renamed: bool,
) -> None:
    billomat.set_options(inbox_metadata=mode)
    content = make_pdf("Inbox", ["x"])
    created = _upload_inbox(billomat_http, bm_url, content)
    assert created.status_code == 201
    inbox_id = int(created.json()["inbox-document"]["id"])
    [item] = billomat.inbox(BILLOMAT_ID)
    assert item["metadata"] == metadata
    assert item["filename"] == (f"inbox_{inbox_id}.pdf" if renamed else "rechnung-4711.pdf")
    got = billomat_http.get(bm_url + f"/inbox-documents/{inbox_id}", params={"format": "json"})
    record = got.json()["inbox-document"]
    assert base64.b64decode(record["base64file"]) == content
    assert int(record["filesize"]) == len(content)
    if not metadata:
        assert record["metadata"] == ""  # empty nested collections render as ""


# --- Billomat: sorting by id ----------------------------------------------------------------


def test_billomat_without_sort_by_id_refuses_order_by_id_and_accepts_other_fields(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    billomat.add_document(BILLOMAT_ID, "invoices", date="2026-10-01")
    billomat.add_document(BILLOMAT_ID, "invoices", date="2026-09-01")
    billomat.set_options(sort_by_id=False)
    json_ = {"format": "json"}
    refused = billomat_http.get(bm_url + "/invoices?order_by=id+ASC", params=json_)
    assert refused.status_code == 400
    assert "order_by" in refused.json()["errors"]["error"]
    assert billomat_http.get(bm_url + "/inbox-documents?order_by=id+DESC").status_code == 400
    by_date = billomat_http.get(bm_url + "/invoices?order_by=date+ASC", params=json_)
    dates = [i["date"] for i in by_date.json()["invoices"]["invoice"]]
    assert dates == ["2026-09-01", "2026-10-01"]
    assert billomat_http.get(bm_url + "/invoices?order_by=created+DESC").status_code == 200
    assert billomat_http.get(bm_url + "/invoices").status_code == 200  # no order at all


def test_a_too_large_upload_meets_the_gateways_413_page_without_the_limit(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    billomat.set_options(max_upload_bytes=2000)
    refused = _upload_inbox(billomat_http, bm_url, make_pdf("Big", ["x" * 40] * 60))
    assert refused.status_code == 413
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "X-Rate-Limit-Remaining" not in refused.headers
    assert billomat.inbox(BILLOMAT_ID) == []
    billomat.set_options(max_upload_bytes="unlimited")
    assert _upload_inbox(billomat_http, bm_url, make_pdf("Big", ["x"])).status_code == 201


# --- switching variants ---------------------------------------------------------------------


def test_every_variant_changes_exactly_the_behaviour_it_names() -> None:
    changed = {}
    for name in VARIANTS:
        gmi, billomat = GmiBehaviour(), BillomatBehaviour()
        apply_variants([name], gmi, billomat)
        changed[name] = {
            k: v for k, v in {**vars(gmi), **vars(billomat)}.items()
            if v != {**vars(GmiBehaviour()), **vars(BillomatBehaviour())}[k]
        }  # fmt: skip
    assert changed == {
        "gmi-limit-empty-403": {"limit_body": "empty"},
        "gmi-limit-detail-403": {"limit_body": "detail"},
        "inbox-metadata-dropped": {"inbox_metadata": "dropped"},
        "inbox-metadata-rewritten": {"inbox_metadata": "rewritten"},
        "gmi-approval-keeps-mtime": {"approval_touches_mtime": False},
        "gmi-listing-lag": {"listing_lag": 5.0},
        "billomat-no-sort-by-id": {"sort_by_id": False},
    }


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["no-such-thing"], "unknown variant 'no-such-thing'"),
        (["inbox-metadata-dropped=3"], "takes no value"),
        (["gmi-listing-lag=soon"], "give the seconds as a number"),
        (["gmi-listing-lag=-1"], "must not be negative"),
    ],
)
def test_a_bad_variant_is_refused_with_one_clear_line(names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Simulators(variants=names)


def test_variants_switch_over_the_control_surface_each_server_its_own_part(
    gmi: GmiSimulator, billomat: BillomatSimulator, http: requests.Session
) -> None:
    names = {"variants": ["gmi-listing-lag=2", "inbox-metadata-dropped", "billomat-no-sort-by-id"]}
    g = http.post(gmi.origin + "/_sim/variants", json=names)
    b = http.post(billomat.origin + "/_sim/variants", json=names)
    assert (g.status_code, g.json()["listing_lag"], g.json()["limit_body"]) == (200, 2.0, "code")
    assert b.json() == {"inbox_metadata": "dropped", "sort_by_id": False, "max_upload_bytes": None}
    assert http.get(gmi.origin + "/_sim/options").json()["listing_lag"] == 2.0
    bad = http.put(gmi.origin + "/_sim/options", json={"limit_body": "poetry"})
    assert bad.status_code == 400
    assert gmi.behaviour.limit_body == "code"  # a refused change changes nothing
    unknown = http.put(billomat.origin + "/_sim/options", json={"colour": "red"})
    assert unknown.status_code == 400


def test_simulate_lists_the_variants_and_refuses_an_unknown_one() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "simulators", "--list-variants"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(VARIANTS)
    refused = subprocess.run(
        [sys.executable, "-m", "simulators", "--variant", "metadata-gone", "--gmi-port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "unknown variant 'metadata-gone'" in refused.stderr
