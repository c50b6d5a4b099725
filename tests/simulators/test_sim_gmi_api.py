"""The GMI simulator against getmyinvoices.md: auth family, 415/422 shapes, lists, uploads."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sim_support import GMI_KEY, FakeClock

from simulators import GmiSimulator, make_pdf


def _upload_body(content: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "fileName": "rechnung.pdf",
        "fileContent": base64.b64encode(content).decode(),
        "documentType": "INCOMING_INVOICE",
        **extra,
    }


def _uids(response: requests.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [r["documentUid"] for r in response.json()["records"]]


def test_unknown_blocked_cancelled_and_read_only_keys_get_403_family_codes(
    gmi: GmiSimulator, http: requests.Session
) -> None:
    gmi.add_account("blocked", blocked=True)
    gmi.add_account("cancelled", cancelled=True)
    gmi.add_account("reader", read_only=True)
    url = gmi.base_url + "/documents"

    unknown = http.get(url, headers={"X-API-KEY": "nope"})
    missing = http.get(url)
    blocked = http.get(url, headers={"X-API-KEY": "blocked"})
    cancelled = http.get(url, headers={"X-API-KEY": "cancelled"})
    reading = http.get(url, headers={"X-API-KEY": "reader"})
    writing = http.post(url, json=_upload_body(make_pdf("x")), headers={"X-API-KEY": "reader"})

    assert unknown.status_code == 403
    assert unknown.json() == {"code": 403, "detail": "API Key does not exist"}
    assert missing.status_code == 403
    assert (blocked.status_code, blocked.json()["code"]) == (403, 407)
    assert (cancelled.status_code, cancelled.json()["code"]) == (403, 431)
    assert reading.status_code == 200
    assert (writing.status_code, writing.json()["code"]) == (403, 430)
    assert gmi.documents("reader") == []


def test_writes_without_json_content_type_are_415(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    uid = gmi.seed_document(GMI_KEY)
    url = f"{gmi.base_url}/documents/{uid}"

    put = gmi_http.put(url, data='{"note": "x"}', headers={"Content-Type": "text/plain"})
    delete = gmi_http.delete(url)  # no body, no content type: refused (live-observed)
    get = gmi_http.get(url)
    delete_json = gmi_http.delete(url, json={})

    assert put.status_code == 415
    assert put.json() == {"code": 415, "detail": "Request content-type is not valid."}
    assert delete.status_code == 415
    assert get.status_code == 200
    assert delete_json.json() == {"success": True}
    assert gmi.documents(GMI_KEY) == []


def test_list_envelope_and_record_fields_keep_their_types_and_casing(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    uid = gmi.seed_document(
        GMI_KEY,
        document_number="RG-1",
        company_name="Telekom Deutschland GmbH",
        tags=["Telefon"],
        net_amount="100.00",
        gross_amount="119.00",
    )

    body = gmi_http.get(gmi.base_url + "/documents").json()

    assert set(body) == {"totalCount", "maxAmount", "offset", "maxPages", "records"}
    assert (body["totalCount"], body["offset"], body["maxPages"]) == (1, 0, 1)
    (record,) = body["records"]
    assert record["documentUid"] == uid
    assert record["netAmount"] == 100.0
    assert record["grossAmount"] == 119.0
    assert record["createdAt"] == "2026-11-02"  # a date, no time
    assert "updatedAt" not in record
    assert "fileName" not in record
    assert record["filename"] == "RG-1.pdf"
    assert isinstance(record["fileSize"], str)
    assert record["isArchived"] is False
    assert record["tags"] == ["Telefon"]
    assert record["companyName"] == "Telekom Deutschland GmbH"
    assert isinstance(record["companyUid"], int)


def test_list_filters_combine(gmi: GmiSimulator, gmi_http: requests.Session) -> None:
    a = gmi.seed_document(
        GMI_KEY, document_number="RG-2026-001", document_date="2026-01-10", company_name="A GmbH"
    )
    b = gmi.seed_document(
        GMI_KEY, document_type="RECEIPT", document_number="BON-7", document_date="2026-02-10"
    )
    c = gmi.seed_document(GMI_KEY, document_number="RG-2026-002", note="Bitte prüfen")
    archived = gmi.seed_document(GMI_KEY, document_number="RG-OLD", is_archived=True)
    company = gmi.document(GMI_KEY, a)["company_uid"]
    url = gmi.base_url + "/documents"

    assert _uids(gmi_http.get(url)) == [c, b, a]  # newest first, archived left out by default
    assert _uids(gmi_http.get(url, params={"archivedFilter": 1})) == [archived, c, b, a]
    assert _uids(gmi_http.get(url, params={"archivedFilter": 2})) == [archived]
    assert _uids(gmi_http.get(url, params={"documentTypeFilter": "RECEIPT"})) == [b]
    assert _uids(gmi_http.get(url, params={"documentNumberFilter": "rg-2026"})) == [c, a]
    assert _uids(gmi_http.get(url, params={"noteFilter": "PRÜFEN"})) == [c]
    assert _uids(gmi_http.get(url, params={"companyFilter": company})) == [a]
    assert _uids(gmi_http.get(url, params={"companyFilter": -1})) == [c, b]
    dates = {"startDateFilter": "2026-02-01", "endDateFilter": "2026-02-28"}
    assert _uids(gmi_http.get(url, params=dates)) == [b]
    assert _uids(gmi_http.get(url, params={"documentUidStartFilter": a})) == [c, b]
    excluded = gmi_http.get(
        url + f"?documentUidExclusionFilter[]={a}&documentUidExclusionFilter[]={c}"
    )
    assert _uids(excluded) == [b]
    bad_date = gmi_http.get(url, params={"startDateFilter": "02.01.2026"})
    assert bad_date.status_code == 422
    assert bad_date.json()["error_code"] == 104


def test_parameters_in_a_json_body_of_a_get_are_honoured(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    gmi.seed_document(GMI_KEY, document_type="RECEIPT")
    wanted = gmi.seed_document(GMI_KEY, document_type="CREDIT_NOTE")

    response = gmi_http.get(gmi.base_url + "/documents", json={"documentTypeFilter": "CREDIT_NOTE"})

    assert _uids(response) == [wanted]


def test_tag_filter_requires_every_listed_tag(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    both = gmi.seed_document(GMI_KEY, tags=["Hosting", "IT"])
    gmi.seed_document(GMI_KEY, tags=["Hosting"])
    url = gmi.base_url + "/documents"

    assert _uids(gmi_http.get(url + "?tagFilter[]=Hosting&tagFilter[]=IT")) == [both]
    assert len(_uids(gmi_http.get(url + "?tagFilter[]=Hosting"))) == 2


def _berlin(moment: float) -> str:
    return datetime.fromtimestamp(moment, ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M:%S")


def test_updated_since_filter_finds_approved_and_retagged_documents(
    gmi: GmiSimulator, gmi_http: requests.Session, clock: FakeClock
) -> None:
    approved = gmi.seed_document(GMI_KEY, approval=False)
    retagged = gmi.seed_document(GMI_KEY, tags=["neu"])
    untouched = gmi.seed_document(GMI_KEY)
    clock.advance(30)
    since = _berlin(clock.now)
    clock.advance(5)
    gmi.approve(GMI_KEY, approved)
    gmi.set_tags(GMI_KEY, retagged, ["neu", "export"])
    url = gmi.base_url + "/documents"

    changed = _uids(gmi_http.get(url, params={"updatedOrNewSinceFilter": since}))
    everything = _uids(gmi_http.get(url, params={"updatedOrNewSinceFilter": "2026-01-01 00:00:00"}))
    plain_date = gmi_http.get(url, params={"updatedOrNewSinceFilter": "2026-11-02"})

    assert sorted(changed) == sorted([approved, retagged])
    assert untouched in everything
    assert plain_date.status_code == 422
    assert plain_date.json() == {
        "success": False,
        "detail": "Invalid Date Format. Must be in format Y-m-d H:i:s.",
        "error_code": 140,
    }


def test_updated_since_is_read_as_berlin_wall_time(
    gmi: GmiSimulator, gmi_http: requests.Session, clock: FakeClock
) -> None:
    uid = gmi.seed_document(GMI_KEY)  # 10:00:00 Berlin = 09:00:00 UTC
    url = gmi.base_url + "/documents"
    utc_wall_time = datetime.fromtimestamp(clock.now, UTC).strftime("%Y-%m-%d %H:%M:%S")

    at_berlin_time = _uids(
        gmi_http.get(url, params={"updatedOrNewSinceFilter": _berlin(clock.now)})
    )
    one_second_later = _uids(
        gmi_http.get(url, params={"updatedOrNewSinceFilter": _berlin(clock.now + 1)})
    )
    at_utc_time = _uids(gmi_http.get(url, params={"updatedOrNewSinceFilter": utc_wall_time}))

    assert at_berlin_time == [uid]  # inclusive at whole seconds
    assert one_second_later == []
    assert at_utc_time == [uid]  # UTC wall time is an hour earlier here: more, never less


def test_pages_follow_page_number_and_per_page(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    uids = [gmi.seed_document(GMI_KEY) for _ in range(5)]
    url = gmi.base_url + "/documents"

    pages = [gmi_http.get(url, params={"perPage": 2, "pageNumber": n}).json() for n in (1, 2, 3, 4)]

    assert [p["maxPages"] for p in pages] == [3, 3, 3, 3]
    assert [p["offset"] for p in pages] == [0, 2, 4, 6]
    assert [r["documentUid"] for p in pages for r in p["records"]] == sorted(uids, reverse=True)
    assert pages[3]["records"] == []
    too_big = gmi_http.get(url, params={"perPage": 10000}).json()
    assert too_big["maxPages"] == 1


def test_records_can_be_emitted_as_an_object_keyed_by_uid(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    uid = gmi.seed_document(GMI_KEY)
    gmi.set_options(records_as_object=True)

    records = gmi_http.get(gmi.base_url + "/documents").json()["records"]
    empty = gmi_http.get(gmi.base_url + "/documents", params={"pageNumber": 9}).json()["records"]

    assert list(records) == [str(uid)]
    assert records[str(uid)]["documentUid"] == uid
    assert empty == []  # PHP encodes an empty array as [] whatever the keys would have been


def test_get_document_returns_meta_data_workflow_and_base64_file(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    content = make_pdf("Rechnung 4711")
    pending = gmi.seed_document(GMI_KEY, content=content, approval=False)
    no_workflow = gmi.seed_document(GMI_KEY)
    url = gmi.base_url + "/documents/"

    full = gmi_http.get(url + str(pending)).json()
    gmi.approve(GMI_KEY, pending)
    approved = gmi_http.get(url + str(pending), params={"includeDocument": "false"}).json()
    plain = gmi_http.get(url + str(no_workflow), params={"documentApproval": 0}).json()
    default = gmi_http.get(url + str(no_workflow)).json()

    assert base64.b64decode(full["fileContent"]) == content
    assert full["meta_data"]["documentUid"] == pending
    assert full["meta_data"]["workflowDetails"]["isCompleted"] is False
    assert approved["meta_data"]["workflowDetails"]["isCompleted"] is True
    assert "fileContent" not in approved
    assert "workflowDetails" not in plain["meta_data"]
    assert default["meta_data"]["workflowDetails"] is None


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("spec", {"success": False, "detail": "Invalid Document Prim UID.", "error_code": 106}),
        (
            "errors",
            {"success": False, "errors": [{"code": 106, "detail": "Invalid Document Prim UID."}]},
        ),
    ],
)
def test_unknown_document_is_422_code_106_in_either_error_shape(
    gmi: GmiSimulator, gmi_http: requests.Session, shape: str, expected: dict[str, Any]
) -> None:
    gmi.set_options(error_shape=shape)

    response = gmi_http.get(gmi.base_url + "/documents/999")

    assert response.status_code == 422
    assert response.json() == expected


def test_upload_stores_the_document_with_tags_source_and_metadata(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    content = make_pdf("Gutschrift GU-0001")
    company = gmi.add_company(GMI_KEY, "Musterkunde GmbH")

    response = gmi_http.post(
        gmi.base_url + "/documents",
        json=_upload_body(
            content,
            documentType="CREDIT_NOTE",
            documentNumber="GU-0001",
            documentDate="2026-11-02",
            companyId=company,
            netAmount="100.00",
            grossAmount="119.00",
            tags=["billomat", "import"],
        ),
        headers={"x-application": "belegsync"},
    )

    assert response.status_code == 200
    uid = response.json()["documentUid"]
    assert response.json() == {"success": True, "documentUid": uid}
    state = gmi.document(GMI_KEY, uid)
    assert state["sha256"] == hashlib.sha256(content).hexdigest()
    assert (state["document_type"], state["document_number"]) == ("CREDIT_NOTE", "GU-0001")
    assert (state["company_name"], state["source"]) == ("Musterkunde GmbH", "belegsync")
    assert state["tags"] == ["billomat", "import"]
    assert (state["net_amount"], state["filename"]) == ("100.00", "rechnung.pdf")
    assert gmi.document_content(GMI_KEY, uid) == content


def test_uploading_identical_content_again_is_rejected_with_127(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    content = make_pdf("Einmalig")
    first = gmi_http.post(gmi.base_url + "/documents", json=_upload_body(content))
    again = gmi_http.post(
        gmi.base_url + "/documents", json=_upload_body(content, fileName="other-name.pdf")
    )

    assert first.status_code == 200
    assert again.status_code == 422
    assert again.json() == {
        "success": False,
        "detail": "Document already exists in account.",
        "error_code": 127,
    }
    assert len(gmi.documents(GMI_KEY)) == 1


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"fileContent": "%%% not base64"}, 103),
        ({"fileName": "scan.png"}, 101),
        ({"fileContent": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()}, 101),
        ({"documentType": "INVOICE"}, 146),
        ({"companyId": 424242}, 113),
        ({"documentDate": "02.11.2026"}, 104),
        ({"documentDueDate": "bald"}, 137),
        ({"netAmount": "zehn"}, 107),
        ({"grossAmount": "12,50"}, 108),
        ({"paymentStatus": "paid"}, 112),
        ({"fileContent": ""}, 141),
        ({"documentType": ""}, 102),
    ],
)
def test_upload_validation_answers_the_documented_codes(
    gmi: GmiSimulator, gmi_http: requests.Session, changes: dict[str, Any], code: int
) -> None:
    response = gmi_http.post(
        gmi.base_url + "/documents", json=_upload_body(make_pdf("valid"), **changes)
    )

    assert response.status_code == 422
    assert response.json()["error_code"] == code
    assert gmi.documents(GMI_KEY) == []


def test_eml_uploads_are_accepted(gmi: GmiSimulator, gmi_http: requests.Session) -> None:
    mail = b"From: billing@example.com\r\nSubject: Rechnung\r\n\r\nHallo"
    response = gmi_http.post(
        gmi.base_url + "/documents", json=_upload_body(mail, fileName="mail.eml")
    )
    assert response.status_code == 200


def test_update_archives_and_replaces_tags_and_refuses_bad_input(
    gmi: GmiSimulator, gmi_http: requests.Session, clock: FakeClock
) -> None:
    uid = gmi.seed_document(GMI_KEY, tags=["alt"])
    locked = gmi.seed_document(GMI_KEY, is_locked=True)
    before = gmi.document(GMI_KEY, uid)["updated_at"]
    clock.advance(2)
    url = f"{gmi.base_url}/documents/"

    ok = gmi_http.put(url + str(uid), json={"isArchived": "1", "tags": ["exportiert"]})
    state = gmi.document(GMI_KEY, uid)

    assert ok.json() == {"success": True, "documentUid": uid}
    assert (state["is_archived"], state["tags"]) == (True, ["exportiert"])
    assert state["updated_at"] > before
    for target, body, code in (
        (uid, {"isArchived": 5}, 133),
        (uid, {"isArchived": True}, 133),
        (uid, {}, 136),
        (uid, {"unknownField": 1}, 136),
        (locked, {"note": "x"}, 147),
        (999, {"note": "x"}, 135),
        ("abc", {"note": "x"}, 134),
    ):
        response = gmi_http.put(url + str(target), json=body)
        assert (response.status_code, response.json()["error_code"]) == (422, code), body


def test_exists_checks_hashes_and_content_of_live_documents(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    content = make_pdf("Vorhanden")
    uid = gmi.seed_document(GMI_KEY, content=content)
    url = gmi.base_url + "/documents/exists"

    def exists(body: dict[str, str]) -> bool:
        response = gmi_http.post(url, json=body)
        assert response.status_code == 200
        return bool(response.json()["exists"])

    assert exists({"fileHash": hashlib.sha256(content).hexdigest()})
    assert exists({"fileHash": hashlib.md5(content).hexdigest()})  # noqa: S324
    assert exists({"fileContent": base64.b64encode(content).decode()})
    assert not exists({"fileHash": hashlib.sha256(b"other").hexdigest()})
    gmi_http.delete(f"{gmi.base_url}/documents/{uid}", json={})
    assert not exists({"fileHash": hashlib.sha256(content).hexdigest()})


def test_companies_have_unique_names_and_cannot_be_deleted_with_documents(
    gmi: GmiSimulator, gmi_http: requests.Session
) -> None:
    url = gmi.base_url + "/companies"

    created = gmi_http.post(url, json={"name": "Server4You", "countryUid": 76, "tags": ["IT"]})
    duplicate = gmi_http.post(url, json={"name": "server4you", "countryUid": 76})
    no_country = gmi_http.post(url, json={"name": "Ohne Land"})
    bad_country = gmi_http.post(url, json={"name": "Atlantis AG", "countryUid": 1})
    listed = gmi_http.get(url).json()
    company_uid = created.json()["companyUid"]
    renamed = gmi_http.put(f"{url}/{company_uid}", json={"name": "Server4You GmbH"})
    gmi.seed_document(GMI_KEY, company_name="Server4You GmbH")
    refused = gmi_http.delete(f"{url}/{company_uid}", json={})
    unknown = gmi_http.get(f"{url}/777")

    assert created.json() == {"success": True, "companyUid": company_uid, "name": "Server4You"}
    assert duplicate.json()["error_code"] == 116
    assert no_country.json()["error_code"] == 115
    assert bad_country.json()["error_code"] == 117
    assert isinstance(listed, list)  # a bare array, no envelope
    assert listed[0]["countryCode"] == "DE"
    assert renamed.json()["name"] == "Server4You GmbH"
    assert refused.json()["error_code"] == 129
    assert unknown.json()["error_code"] == 139


def test_reference_endpoints_answer(gmi: GmiSimulator, gmi_http: requests.Session) -> None:
    gmi.seed_document(GMI_KEY, tags=["Reise"])

    assert gmi_http.get(gmi.base_url + "/apiStatus").json() == {"success": True}
    assert gmi_http.get(gmi.base_url + "/tags").json() == {"success": True, "data": ["Reise"]}
    countries = gmi_http.get(gmi.base_url + "/countries").json()
    assert {"countryUid": 76, "countryCode": "DE"}.items() <= countries[0].items()
    assert gmi_http.get(gmi.base_url + "/account").json()["name"] == "Demo GmbH"
    assert gmi_http.get(gmi.base_url + "/nothing").status_code == 404
    assert gmi_http.patch(gmi.base_url + "/documents", json={}).status_code == 405


def test_request_counts_are_kept_per_key_and_endpoint_template(
    gmi: GmiSimulator, gmi_http: requests.Session, http: requests.Session
) -> None:
    uid = gmi.seed_document(GMI_KEY)
    gmi_http.get(gmi.base_url + "/documents")
    gmi_http.get(f"{gmi.base_url}/documents/{uid}")
    gmi_http.put(f"{gmi.base_url}/documents/{uid}", json={"note": "n"})
    gmi_http.post(gmi.base_url + "/documents", json=_upload_body(make_pdf("c")))

    assert gmi.request_counts(GMI_KEY) == {
        "GET /documents": 1,
        "GET /documents/{documentUid}": 1,
        "POST /documents": 1,
        "PUT /documents/{documentUid}": 1,
    }
    assert gmi.request_counts("another-key") == {}
