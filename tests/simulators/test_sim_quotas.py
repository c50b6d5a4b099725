"""Quotas: Billomat's headers, 429 and app quota; GMI's per-minute/day and hourly upload limits."""

from __future__ import annotations

import base64
import math
import time

import requests
from sim_support import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY, FakeClock, parse_xml

from simulators import BillomatSimulator, GmiSimulator, make_pdf


def _window_end(clock: FakeClock, seconds: float) -> int:
    return math.ceil((math.floor(clock.now / seconds) + 1) * seconds)


def test_every_billomat_response_carries_rate_limit_headers(
    billomat: BillomatSimulator, http: requests.Session, bm_url: str, clock: FakeClock
) -> None:
    auth = {"X-BillomatApiKey": BILLOMAT_KEY}
    responses = [
        http.get(bm_url + "/invoices", headers=auth),  # 200
        http.get(bm_url + "/invoices/1", headers=auth),  # 404
        http.put(bm_url + "/inbox-documents", headers=auth),  # 405
        http.post(bm_url + "/inbox-documents", json={}, headers=auth),  # 400
        http.get(bm_url + "/invoices"),  # 401, still counted against the account
    ]

    assert [r.status_code for r in responses] == [200, 404, 405, 400, 401]
    assert [r.headers["X-Rate-Limit-Remaining"] for r in responses] == [
        "299",
        "298",
        "297",
        "296",
        "295",
    ]
    assert {r.headers["X-Rate-Limit-Reset"] for r in responses} == {str(_window_end(clock, 900))}


def test_billomat_answers_429_in_the_requested_format_once_the_window_is_used_up(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str, clock: FakeClock
) -> None:
    billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=3, window_seconds=60)
    for _ in range(3):
        assert billomat_http.get(bm_url + "/invoices").status_code == 200
    clock.advance(10)  # 10.5 s into the minute: 50 s to go (rounded up)
    reset = _window_end(clock, 60)

    limited_json = billomat_http.get(bm_url + "/invoices", params={"format": "json"})
    limited_xml = billomat_http.get(bm_url + "/invoices")
    clock.advance(50)  # the next window starts
    fresh = billomat_http.get(bm_url + "/invoices")

    expected = "Maximum number of requests (3 per 1 minute) reached. Try again in 50 seconds."
    assert limited_json.status_code == 429
    assert limited_json.json() == {"errors": {"error": expected}}
    assert parse_xml(limited_xml.content).findtext("error") == expected
    assert limited_json.headers["X-Rate-Limit-Remaining"] == "0"
    assert limited_json.headers["X-Rate-Limit-Reset"] == str(reset)
    assert fresh.status_code == 200
    assert fresh.headers["X-Rate-Limit-Remaining"] == "2"
    assert billomat.rate_limited_count(BILLOMAT_ID) == 2
    assert billomat.request_counts(BILLOMAT_ID)["GET /api/invoices"] == 6


def test_billomat_default_message_names_300_per_15_minutes(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=0)
    response = billomat_http.get(bm_url + "/invoices", params={"format": "json"})
    assert response.json()["errors"]["error"].startswith(
        "Maximum number of requests (0 per 15 minutes) reached. Try again in "
    )


def test_registered_app_has_its_own_quota_beside_the_shared_one(
    billomat: BillomatSimulator, billomat_http: requests.Session, bm_url: str
) -> None:
    billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=1, apps={"app-1": "s3cret"}, app_limit=3)
    app = {"X-AppId": "app-1", "X-AppSecret": "s3cret"}
    wrong_secret = {"X-AppId": "app-1", "X-AppSecret": "guess"}

    shared = [billomat_http.get(bm_url + "/invoices").status_code for _ in range(2)]
    with_app = [billomat_http.get(bm_url + "/invoices", headers=app) for _ in range(4)]
    wrong = billomat_http.get(bm_url + "/invoices", headers=wrong_secret)

    assert shared == [200, 429]
    assert [r.status_code for r in with_app] == [200, 200, 200, 429]
    assert [r.headers["X-Rate-Limit-Remaining"] for r in with_app] == ["2", "1", "0", "0"]
    assert wrong.status_code == 429  # falls back to the exhausted shared quota


def test_billomat_windows_reset_on_the_real_clock() -> None:
    with BillomatSimulator() as sim:
        sim.add_tenant("t", "k", limit=2, window_seconds=1.0)
        url = sim.api_url("t") + "/clients"
        with requests.Session() as http:
            http.headers["X-BillomatApiKey"] = "k"
            # Start right after a window boundary so the three calls share one window.
            time.sleep(1.02 - time.time() % 1.0)
            statuses = [http.get(url).status_code for _ in range(3)]
            reset = int(http.get(url).headers["X-Rate-Limit-Reset"])
            time.sleep(max(0.0, reset - time.time()) + 0.02)
            after = http.get(url)
    assert statuses == [200, 200, 429]
    assert after.status_code == 200


def test_gmi_minute_limit_answers_403_with_code_429_by_default(
    gmi: GmiSimulator, gmi_http: requests.Session, clock: FakeClock
) -> None:
    gmi.set_limits(GMI_KEY, per_minute=2)
    url = gmi.base_url + "/documents"
    ok = [gmi_http.get(url).status_code for _ in range(2)]

    limited = gmi_http.get(url)
    clock.advance(60)
    later = gmi_http.get(url)

    assert ok == [200, 200]
    assert limited.status_code == 403
    assert limited.json()["code"] == 429
    assert "minute" in limited.json()["detail"]
    assert not any(h.lower().startswith("x-rate") for h in limited.headers)
    assert later.status_code == 200
    assert gmi.rate_limited_count(GMI_KEY) == 1


def test_gmi_limits_can_answer_real_429_and_count_the_day_window(
    gmi: GmiSimulator, gmi_http: requests.Session, clock: FakeClock
) -> None:
    gmi.set_limits(GMI_KEY, per_minute=100, per_day=3, rate_limit_status=429)
    url = gmi.base_url + "/apiStatus"
    statuses = []
    for _ in range(4):
        statuses.append(gmi_http.get(url).status_code)
        clock.advance(61)  # a new minute each time; the day keeps counting

    limited = gmi_http.get(url)

    assert statuses == [200, 200, 200, 429]
    assert limited.json()["code"] == 429
    assert "day" in limited.json()["detail"]


def test_gmi_hourly_upload_limit_answers_422_code_105(
    gmi: GmiSimulator, gmi_http: requests.Session, clock: FakeClock
) -> None:
    gmi.set_limits(GMI_KEY, uploads_per_hour=2)

    def upload(n: int) -> requests.Response:
        body = {
            "fileName": f"d{n}.pdf",
            "fileContent": base64.b64encode(make_pdf(f"Beleg {n}")).decode(),
            "documentType": "RECEIPT",
        }
        return gmi_http.post(gmi.base_url + "/documents", json=body)

    first, second, third = upload(1), upload(2), upload(3)
    clock.advance(3600)
    next_hour = upload(4)

    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 422
    assert third.json() == {
        "success": False,
        "detail": "Hourly upload limit of 2 documents reached.",
        "error_code": 105,
    }
    assert next_hour.status_code == 200
    assert len(gmi.documents(GMI_KEY)) == 3
    assert gmi.rate_limited_count(GMI_KEY) == 1
