"""The /_sim control surface over HTTP, webhooks, concurrency and large bodies."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import requests
from sim_support import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY

from simulators import BillomatSimulator, GmiSimulator, Simulators, make_pdf


def test_gmi_control_surface_creates_seeds_changes_and_reads_state(
    gmi: GmiSimulator, http: requests.Session
) -> None:
    sim = gmi.origin + "/_sim"
    content = make_pdf("Per Control")

    account = http.post(sim + "/accounts", json={"api_key": "ctl-key", "name": "Ctl GmbH"})
    seeded = http.post(
        sim + "/accounts/ctl-key/documents",
        json={
            "document_number": "C-1",
            "tags": ["a"],
            "approval": False,
            "content_base64": base64.b64encode(content).decode(),
        },
    )
    uid = seeded.json()["uid"]
    approved = http.post(f"{sim}/accounts/ctl-key/documents/{uid}/approve")
    retagged = http.put(f"{sim}/accounts/ctl-key/documents/{uid}/tags", json={"tags": ["b"]})
    patched = http.patch(f"{sim}/accounts/ctl-key/documents/{uid}", json={"note": "geprüft"})
    limits = http.put(sim + "/accounts/ctl-key/limits", json={"per_minute": 1})
    http.get(gmi.base_url + "/apiStatus", headers={"X-API-KEY": "ctl-key"})
    limited = http.get(gmi.base_url + "/apiStatus", headers={"X-API-KEY": "ctl-key"})
    counts = http.get(sim + "/counts", params={"api_key": "ctl-key"}).json()
    state = http.get(sim + "/accounts/ctl-key").json()
    bad = http.post(sim + "/accounts/ctl-key/documents", json={"colour": "red"})
    missing = http.get(sim + "/accounts/nobody/documents")

    assert account.status_code == 201
    assert account.json()["base_url"] == gmi.base_url
    assert seeded.status_code == 201
    assert seeded.json()["sha256"] == hashlib.sha256(content).hexdigest()
    assert approved.json()["approval"] is True
    assert retagged.json()["tags"] == ["b"]
    assert patched.json()["note"] == "geprüft"
    assert limits.status_code == 200
    assert limited.status_code == 403
    assert counts == {"counts": {"GET /apiStatus": 2}, "rate_limited": 1}
    assert [d["uid"] for d in state["documents"]] == [uid]
    assert bad.status_code == 400
    assert "colour" in bad.json()["error"]
    assert missing.status_code == 404
    assert gmi.documents("ctl-key")[0]["note"] == "geprüft"


def test_gmi_control_surface_sets_and_clears_faults_and_options(
    gmi: GmiSimulator, http: requests.Session
) -> None:
    sim = gmi.origin + "/_sim"
    api = {"X-API-KEY": GMI_KEY}

    http.post(sim + "/faults/fail-next", json={"n": 1, "status": 500})
    failed = http.get(gmi.base_url + "/apiStatus", headers=api)
    http.post(sim + "/faults", json={"error_rate": 1.0})
    always = http.get(gmi.base_url + "/apiStatus", headers=api)
    cleared = http.delete(sim + "/faults").json()
    http.put(sim + "/options", json={"error_shape": "errors"})
    shaped = http.get(gmi.base_url + "/documents/1", headers=api)
    http.delete(sim + "/counts")

    assert failed.status_code == 500
    assert always.status_code == 503
    assert cleared["error_rate"] == 0.0
    assert shaped.json()["errors"][0]["code"] == 106
    assert gmi.request_counts() == {}


def test_billomat_control_surface_manages_tenants_documents_and_webhooks(
    billomat: BillomatSimulator, http: requests.Session
) -> None:
    sim = billomat.origin + "/_sim"

    tenant = http.post(sim + "/tenants", json={"billomat_id": "shop", "api_key": "sk", "limit": 5})
    client = http.post(sim + "/tenants/shop/clients", json={"name": "Kunde KG", "city": "Bonn"})
    draft = http.post(
        sim + "/tenants/shop/documents/invoices",
        json={
            "status": "DRAFT",
            "client_name": "Kunde KG",
            "total_net": "10",
            "total_gross": "11.9",
        },
    )
    doc_id = draft.json()["id"]
    completed = http.post(f"{sim}/tenants/shop/documents/invoices/{doc_id}/complete")
    paid = http.patch(f"{sim}/tenants/shop/documents/invoices/{doc_id}", json={"status": "PAID"})
    listed = http.get(billomat.api_url("shop") + "/invoices", headers={"X-BillomatApiKey": "sk"})
    counts = http.get(sim + "/counts", params={"billomat_id": "shop"}).json()
    state = http.get(sim + "/tenants/shop").json()
    wrong_kind = http.post(sim + "/tenants/shop/documents/receipts", json={})

    assert tenant.status_code == 201
    assert tenant.json()["api_url"] == billomat.api_url("shop")
    assert client.status_code == 201
    assert draft.json()["has_pdf"] is False
    assert completed.json()["number"] == "RE-0001"
    assert paid.json()["status"] == "PAID"
    assert listed.headers["X-Rate-Limit-Remaining"] == "4"
    assert counts == {"counts": {"GET /api/invoices": 1}, "rate_limited": 0}
    assert state["documents"]["invoices"][0]["status"] == "PAID"
    assert state["clients"][0]["city"] == "Bonn"
    assert wrong_kind.status_code == 400


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append((dict(self.headers.items()), self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_webhook_posts_the_record_like_a_single_get_with_billomat_headers(
    billomat: BillomatSimulator,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = receiver
    doc_id = billomat.add_document(BILLOMAT_ID, "invoices")

    first = billomat.send_webhook(
        url,
        billomat_id=BILLOMAT_ID,
        event="invoice.create",
        kind="invoices",
        id=doc_id,
        auth=("hook", "pw"),
    )
    billomat.send_webhook(
        url, billomat_id=BILLOMAT_ID, event="invoice.create", kind="invoices", id=doc_id, fmt="xml"
    )

    assert first == 200
    (headers, body), (xml_headers, xml_body) = received
    assert json.loads(body)["invoice"]["id"] == str(doc_id)
    assert headers["User-Agent"] == "Billomat-Webhook"
    assert headers["X-Billomat-Webhook-Event"] == "invoice.create"
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"hook:pw").decode()
    assert xml_headers["X-Billomat-Webhook-Id"] == headers["X-Billomat-Webhook-Id"]
    assert int(xml_headers["X-Billomat-Webhook-Request-Id"]) > int(
        headers["X-Billomat-Webhook-Request-Id"]
    )
    assert xml_body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<invoice>')
    assert billomat.request_counts() == {}  # webhooks cost no quota and are no API calls


def test_many_concurrent_keep_alive_clients_are_all_answered_and_counted() -> None:
    with Simulators() as sims:
        sims.gmi.add_account(GMI_KEY)
        sims.gmi.set_limits(GMI_KEY, per_minute=10_000)
        sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=10_000)
        uid = sims.gmi.seed_document(GMI_KEY)
        errors: list[str] = []

        def worker() -> None:
            with requests.Session() as http:
                for _ in range(40):
                    a = http.get(
                        f"{sims.gmi_base_url}/documents/{uid}", headers={"X-API-KEY": GMI_KEY}
                    )
                    b = http.get(
                        sims.billomat.api_url(BILLOMAT_ID) + "/clients",
                        headers={"X-BillomatApiKey": BILLOMAT_KEY},
                    )
                    if (a.status_code, b.status_code) != (200, 200):
                        errors.append(f"{a.status_code} {b.status_code}")

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert errors == []
        assert sims.gmi.request_counts(GMI_KEY) == {"GET /documents/{documentUid}": 320}
        assert sims.billomat.request_counts(BILLOMAT_ID) == {"GET /api/clients": 320}


def test_multi_megabyte_documents_round_trip_intact(
    gmi: GmiSimulator,
    gmi_http: requests.Session,
    billomat: BillomatSimulator,
    billomat_http: requests.Session,
    bm_url: str,
) -> None:
    big = make_pdf("Jahresabrechnung", min_size=4 * 1024 * 1024)
    encoded = base64.b64encode(big).decode()

    uploaded = gmi_http.post(
        gmi.base_url + "/documents",
        json={"fileName": "gross.pdf", "fileContent": encoded, "documentType": "STATEMENT"},
    )
    fetched = gmi_http.get(f"{gmi.base_url}/documents/{uploaded.json()['documentUid']}")
    inbox = billomat_http.post(
        bm_url + "/inbox-documents",
        json={"inbox-document": {"base64file": encoded}},
        params={"format": "json"},
    )
    inbox_id = inbox.json()["inbox-document"]["id"]
    back = billomat_http.get(f"{bm_url}/inbox-documents/{inbox_id}", params={"format": "json"})

    assert base64.b64decode(fetched.json()["fileContent"]) == big
    assert base64.b64decode(back.json()["inbox-document"]["base64file"]) == big
    assert billomat.inbox(BILLOMAT_ID)[0]["filesize"] == len(big)
