"""Injected faults: dropped answers after stored writes, fail_next, random errors, HTML pages."""

from __future__ import annotations

import base64
import hashlib

import pytest
import requests
from sim_support import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY

from simulators import BillomatSimulator, GmiSimulator, make_pdf


def _gmi_upload(content: bytes) -> dict[str, str]:
    return {
        "fileName": "beleg.pdf",
        "fileContent": base64.b64encode(content).decode(),
        "documentType": "RECEIPT",
    }


def test_dropped_gmi_upload_is_stored_and_a_retry_meets_127(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    content = make_pdf("Verlorene Antwort")
    gmi.drop_after_next_write()

    with pytest.raises(requests.ConnectionError):
        gmi_http.post(gmi.base_url + "/documents", json=_gmi_upload(content))
    retry = gmi_http.post(gmi.base_url + "/documents", json=_gmi_upload(content))

    (stored,) = gmi.documents(GMI_KEY)
    assert stored["size"] == len(content)
    assert retry.json()["error_code"] == 127


def test_dropped_billomat_inbox_upload_is_stored_and_reads_do_not_drop(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    pdf = make_pdf("Inbox")
    body = {"inbox-document": {"base64file": base64.b64encode(pdf).decode()}}
    billomat.drop_after_next_write(path_contains="/inbox-documents")

    read = billomat_http.get(bm_url + "/inbox-documents")  # not a write: answered
    with pytest.raises(requests.ConnectionError):
        billomat_http.post(bm_url + "/inbox-documents", json=body)
    second = billomat_http.post(bm_url + "/inbox-documents", json=body)

    assert read.status_code == 200
    assert second.status_code == 201
    # No duplicate check in Billomat's inbox: the retry is a second document.
    digest = hashlib.sha256(pdf).hexdigest()
    assert [d["sha256"] for d in billomat.inbox(BILLOMAT_ID)] == [digest, digest]


def test_failed_writes_are_not_dropped(gmi: GmiSimulator, gmi_http: requests.Session) -> None:
    gmi.drop_after_next_write()

    refused = gmi_http.post(gmi.base_url + "/documents", json={"fileName": "x.pdf"})
    with pytest.raises(requests.ConnectionError):
        gmi_http.post(gmi.base_url + "/documents", json=_gmi_upload(make_pdf("ok")))

    assert refused.status_code == 422


def test_fail_next_fails_only_matching_requests_then_recovers(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    uid = gmi.seed_document(GMI_KEY)
    gmi.fail_next(2, methods=["GET"], path_contains="/documents/")

    listing = gmi_http.get(gmi.base_url + "/documents")
    failures = [gmi_http.get(f"{gmi.base_url}/documents/{uid}") for _ in range(2)]
    recovered = gmi_http.get(f"{gmi.base_url}/documents/{uid}")

    assert listing.status_code == 200
    assert [f.status_code for f in failures] == [503, 503]
    assert failures[0].json() == {
        "code": 503,
        "detail": "Temporary Issue. Please retry in a few minutes.",
    }
    assert recovered.status_code == 200
    assert gmi.request_counts(GMI_KEY)["GET /documents/{documentUid}"] == 3


def test_billomat_fail_next_answers_in_the_requested_format_with_quota_headers(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    billomat.fail_next(1, status=500)
    billomat.fail_next(1, status=502, html=True)

    app_error = billomat_http.get(bm_url + "/invoices", params={"format": "json"})
    gateway = billomat_http.get(bm_url + "/invoices", params={"format": "json"})
    fine = billomat_http.get(bm_url + "/invoices", params={"format": "json"})

    assert app_error.status_code == 500
    assert app_error.json() == {"errors": {"error": "Internal Server Error"}}
    assert app_error.headers["X-Rate-Limit-Remaining"] == "300"  # not counted
    assert gateway.status_code == 502
    assert gateway.headers["Content-Type"] == "text/html"
    assert "<h1>502 Bad Gateway</h1>" in gateway.text
    assert "nginx" in gateway.text
    assert fine.status_code == 200
    assert fine.headers["X-Rate-Limit-Remaining"] == "299"


def test_random_faults_repeat_with_the_same_seed(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    def run() -> list[int]:
        gmi.set_faults(error_rate=0.3, html_502_rate=0.2, seed=7)
        return [gmi_http.get(gmi.base_url + "/apiStatus").status_code for _ in range(30)]

    first, second = run(), run()
    gmi.clear_faults()

    assert first == second
    assert {200, 502, 503} == set(first)
    assert gmi_http.get(gmi.base_url + "/apiStatus").status_code == 200


def test_faults_never_touch_the_control_surface(
    billomat: BillomatSimulator, http: requests.Session
) -> None:
    billomat.set_faults(error_rate=1.0)

    health = http.get(billomat.origin + "/_sim/health")
    api = http.get(
        billomat.api_url(BILLOMAT_ID) + "/clients", headers={"X-BillomatApiKey": BILLOMAT_KEY}
    )

    assert health.status_code == 200
    assert api.status_code == 500


def test_fault_settings_are_validated(gmi: GmiSimulator) -> None:
    with pytest.raises(ValueError, match="error_rate"):
        gmi.set_faults(error_rate=1.5)
    with pytest.raises(ValueError, match="latency"):
        gmi.set_faults(latency=-1)
