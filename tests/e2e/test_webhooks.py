"""Billomat webhooks end to end: receiver over a real socket -> ledger -> RabbitMQ -> GMI.

No test here runs a poll: whatever reaches GMI came in through a webhook.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from app import bootstrap
from app.cli import main
from app.webhooks import Webhooks
from producers.outbox import Outbox
from shared.domain import Direction
from shared.metrics import Metrics
from simulators import Simulators
from tests.e2e.conftest import BILLOMAT_ID, GMI_KEY, Pipeline

USER = "billomat-hook"
PASSWORD = "hook-secret-0003"
ACCOUNT = "acme-import"


@dataclass
class Receiver:
    origin: str
    service: Webhooks
    metrics: Metrics

    def url(self, account: str = ACCOUNT) -> str:
        return f"{self.origin}/billomat/{quote(account, safe='')}"


@pytest.fixture
def receiver(pipeline: Pipeline) -> Iterator[Receiver]:
    metrics = Metrics(role="webhooks")
    service = Webhooks(pipeline.settings, pipeline.db, pipeline.box, metrics)
    port = service.start("127.0.0.1", 0)
    try:
        yield Receiver(f"http://127.0.0.1:{port}", service, metrics)
    finally:
        service.stop()


def add_account(pipeline: Pipeline, name: str = ACCOUNT, **settings: Any) -> int:
    settings.setdefault("webhook_username", USER)
    settings.setdefault("webhook_password", PASSWORD)
    return pipeline.add_import(name, **settings)


def sha(content: bytes | None) -> str:
    assert content is not None
    return hashlib.sha256(content).hexdigest()


def import_queue_messages(pipeline: Pipeline) -> int:
    """Messages waiting in the import work queue (declared if absent, so 0 then)."""
    broker = bootstrap.broker(pipeline.settings)
    broker.connect()
    try:
        return broker.queue_depths()[(Direction.IMPORT.value, "work")].messages
    finally:
        broker.close()


def post(
    url: str, body: bytes, *, event: str, content_type: str = "application/json"
) -> requests.Response:
    """A hand-made webhook request, for bodies the simulator would never send."""
    return requests.post(
        url,
        data=body,
        headers={"Content-Type": content_type, "X-Billomat-Webhook-Event": event},
        auth=(USER, PASSWORD),
        timeout=10,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_not_polled(sims: Simulators, kind: str = "invoices") -> None:
    """Neither side was listed: what reached GMI came without a poll."""
    assert f"GET /api/{kind}" not in sims.billomat.request_counts(BILLOMAT_ID)
    assert "GET /documents" not in sims.gmi.request_counts(GMI_KEY)


# ---------------------------------------------------------------------------------------------
# documents arrive


def test_signed_in_invoice_create_lands_in_gmi_once_without_a_poll(
    pipeline: Pipeline, sims: Simulators, receiver: Receiver
) -> None:
    bm = sims.billomat
    invoice = bm.add_document(BILLOMAT_ID, "invoices", status="OPEN", total_gross="238.00")
    add_account(pipeline)

    status = bm.send_webhook(
        receiver.url(), billomat_id=BILLOMAT_ID, event="invoice.create", kind="invoices",
        id=invoice, auth=(USER, PASSWORD),
    )  # fmt: skip
    assert status == 200
    assert pipeline.states() == {str(invoice): "pending"}
    assert import_queue_messages(pipeline) == 1  # published before the answer went out
    assert pipeline.consume(idle_exit=1) == 1

    [doc] = sims.gmi.documents(GMI_KEY)
    assert doc["sha256"] == sha(bm.pdf_content(BILLOMAT_ID, "invoices", invoice))
    assert doc["document_type"] == "SALES_INVOICE"
    assert doc["document_number"] == bm.document(BILLOMAT_ID, "invoices", invoice)["number"]
    assert pipeline.states() == {str(invoice): "synced"}
    assert_not_polled(sims)
    # The webhook's record was enough: only the PDF was fetched, not the document again.
    assert sims.billomat.request_counts(BILLOMAT_ID) == {"GET /api/invoices/{id}/pdf": 1}
    detected = receiver.metrics.registry.get_sample_value(
        "belegsync_documents_detected_total", {"direction": "import"}
    )
    assert detected == 1

    # Billomat sends the same record again (a retry, or invoice.update): nothing new happens.
    status = bm.send_webhook(
        receiver.url(), billomat_id=BILLOMAT_ID, event="invoice.update", kind="invoices",
        id=invoice, auth=(USER, PASSWORD),
    )  # fmt: skip
    assert status == 200
    assert import_queue_messages(pipeline) == 0
    assert len(sims.gmi.documents(GMI_KEY)) == 1


def test_credit_note_as_xml_lands_in_gmi_as_a_credit_note(
    pipeline: Pipeline, sims: Simulators, receiver: Receiver
) -> None:
    bm = sims.billomat
    credit = bm.add_document(BILLOMAT_ID, "credit-notes", status="OPEN")
    add_account(pipeline)

    status = bm.send_webhook(
        receiver.url(), billomat_id=BILLOMAT_ID, event="credit_note.create", kind="credit-notes",
        id=credit, fmt="xml", auth=(USER, PASSWORD),
    )  # fmt: skip
    assert status == 200
    assert pipeline.consume(idle_exit=1) == 1
    [doc] = sims.gmi.documents(GMI_KEY)
    assert doc["sha256"] == sha(bm.pdf_content(BILLOMAT_ID, "credit-notes", credit))
    assert doc["document_type"] == "CREDIT_NOTE"
    assert_not_polled(sims, "credit-notes")
    [row] = pipeline.ledger()
    assert row["document_number"] == bm.document(BILLOMAT_ID, "credit-notes", credit)["number"]


def test_draft_is_held_back_until_a_status_webhook_says_it_is_finished(
    pipeline: Pipeline, sims: Simulators, receiver: Receiver
) -> None:
    bm = sims.billomat
    draft = bm.add_document(BILLOMAT_ID, "invoices", status="DRAFT")
    add_account(pipeline)

    def send(event: str) -> int:
        return bm.send_webhook(
            receiver.url(), billomat_id=BILLOMAT_ID, event=event, kind="invoices", id=draft,
            auth=(USER, PASSWORD),
        )  # fmt: skip

    assert send("invoice.create") == 200
    assert pipeline.states() == {str(draft): "draft"}
    assert import_queue_messages(pipeline) == 0

    bm.complete(BILLOMAT_ID, "invoices", draft)
    assert send("invoice.status") == 200
    assert pipeline.states() == {str(draft): "pending"}
    assert pipeline.consume(idle_exit=1) == 1
    [doc] = sims.gmi.documents(GMI_KEY)
    assert doc["sha256"] == sha(bm.pdf_content(BILLOMAT_ID, "invoices", draft))
    assert pipeline.states() == {str(draft): "synced"}
    assert_not_polled(sims)


def test_paused_account_records_the_webhook_and_publishes_nothing_yet(
    pipeline: Pipeline, sims: Simulators, receiver: Receiver
) -> None:
    invoice = sims.billomat.add_document(BILLOMAT_ID, "invoices", status="OPEN")
    add_account(pipeline)
    pipeline.accounts.set_enabled(ACCOUNT, False)

    response = post(
        receiver.url(),
        b'{"invoice":{"id":"%d","status":"OPEN","date":"2026-11-02"}}' % invoice,
        event="invoice.create",
    )
    assert response.status_code == 200
    assert response.json()["published"] is False
    [row] = pipeline.ledger()
    assert (row["source_id"], row["state"]) == (str(invoice), "pending")
    assert import_queue_messages(pipeline) == 0


def test_webhook_while_rabbitmq_is_down_is_acknowledged_and_published_later(
    pipeline: Pipeline, sims: Simulators
) -> None:
    bm = sims.billomat
    invoice = bm.add_document(BILLOMAT_ID, "invoices", status="OPEN")
    account_id = add_account(pipeline)
    nowhere = pipeline.settings.model_copy(
        update={"broker_url": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}
    )
    with Webhooks(nowhere, pipeline.db, pipeline.box) as service:
        port = service.start("127.0.0.1", 0)
        # send_webhook gives up after Billomat's 10 s, so a 200 here also came in time.
        status = bm.send_webhook(
            f"http://127.0.0.1:{port}/billomat/{ACCOUNT}", billomat_id=BILLOMAT_ID,
            event="invoice.create", kind="invoices", id=invoice, auth=(USER, PASSWORD),
        )  # fmt: skip
    assert status == 200
    assert pipeline.states() == {str(invoice): "pending"}
    assert import_queue_messages(pipeline) == 0

    # What a producer's loop does with rows nobody has published yet.
    broker = bootstrap.broker(pipeline.settings)
    broker.connect()
    try:
        assert Outbox(pipeline.db, broker).flush(account_id) == 1
    finally:
        broker.close()
    assert pipeline.consume(idle_exit=1) == 1
    [doc] = sims.gmi.documents(GMI_KEY)
    assert doc["sha256"] == sha(bm.pdf_content(BILLOMAT_ID, "invoices", invoice))


# ---------------------------------------------------------------------------------------------
# refused and ignored


def test_wrong_or_missing_credentials_get_401_and_nothing_is_recorded_or_published(
    pipeline: Pipeline, sims: Simulators, receiver: Receiver
) -> None:
    bm = sims.billomat
    invoice = bm.add_document(BILLOMAT_ID, "invoices", status="OPEN")
    add_account(pipeline)

    for auth in [(USER, "wrong-password"), ("someone-else", PASSWORD), None]:
        status = bm.send_webhook(
            receiver.url(), billomat_id=BILLOMAT_ID, event="invoice.create", kind="invoices",
            id=invoice, auth=auth,
        )  # fmt: skip
        assert status == 401, auth

    response = requests.post(
        receiver.url(), data=b"{}", auth=("x", "y"), timeout=10,
        headers={"X-Billomat-Webhook-Event": "invoice.create"},
    )  # fmt: skip
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert pipeline.ledger() == []
    assert import_queue_messages(pipeline) == 0


def test_export_account_and_account_without_credentials_get_403_unknown_gets_404(
    pipeline: Pipeline, sims: Simulators, receiver: Receiver
) -> None:
    invoice = sims.billomat.add_document(BILLOMAT_ID, "invoices", status="OPEN")
    pipeline.add_export("acme-export")
    pipeline.add_import("no-hooks")

    def send(account: str) -> int:
        return sims.billomat.send_webhook(
            receiver.url(account), billomat_id=BILLOMAT_ID, event="invoice.create",
            kind="invoices", id=invoice, auth=(USER, PASSWORD),
        )  # fmt: skip

    assert send("acme-export") == 403
    assert send("no-hooks") == 403
    assert send("nobody") == 404
    reason = post(receiver.url("no-hooks"), b"{}", event="invoice.create").json()["reason"]
    assert "--webhook-password" in reason
    assert pipeline.ledger() == []


def test_other_resources_other_actions_and_unselected_kinds_are_acknowledged_and_ignored(
    pipeline: Pipeline, sims: Simulators, receiver: Receiver
) -> None:
    bm = sims.billomat
    client = bm.add_client(BILLOMAT_ID, "Hallo GmbH")
    invoice = bm.add_document(BILLOMAT_ID, "invoices", status="OPEN")
    offer = bm.add_document(BILLOMAT_ID, "offers", status="OPEN")
    add_account(pipeline, document_kinds=["invoices"])

    cases = [("client.create", "clients", client), ("invoice.send", "invoices", invoice)]
    cases += [("invoice.delete", "invoices", invoice), ("offer.create", "offers", offer)]
    for event, kind, doc_id in cases:
        status = bm.send_webhook(
            receiver.url(), billomat_id=BILLOMAT_ID, event=event, kind=kind, id=doc_id,
            auth=(USER, PASSWORD),
        )  # fmt: skip
        assert status == 200, event
    answer = post(receiver.url(), b'{"client":{"id":"1"}}', event="client.create").json()
    assert answer["outcome"] == "ignored"
    assert answer["reason"]
    assert pipeline.ledger() == []
    assert import_queue_messages(pipeline) == 0


JSON, XML = "application/json", "application/xml"
ENTITY_XML = (
    '<?xml version="1.0" encoding="{}"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
    "<invoice><id>&a;</id></invoice>"
)


def bad(
    name: str, body: bytes, reason: str, content_type: str = JSON, event: str = "invoice.create"
) -> Any:
    return pytest.param(body, content_type, event, reason, id=name)


@pytest.mark.parametrize(
    ("body", "content_type", "event", "reason"),
    [
        bad("truncated-json", b'{"invoice": {"id": "7",', "malformed JSON"),
        bad("truncated-xml", b"<invoice><id>7</id>", "malformed XML", XML),
        bad("xml-entities", ENTITY_XML.format("UTF-8").encode(), "DOCTYPE", XML),
        # A byte search for "<!DOCTYPE" would miss this one; the parser does not.
        bad("xml-entities-utf16", ENTITY_XML.format("UTF-16").encode("utf-16"), "DOCTYPE", XML),
        bad("no-id", b'{"invoice": {"status": "OPEN"}}', "numeric id"),
        bad("body-disagrees-with-event", b'{"offer": {"id": "7"}}', "the event says"),
        bad("two-roots", b'{"invoice": {"id": "7"}, "x": {}}', "exactly one"),
        bad("not-an-object", b'["invoice"]', "one object"),
        bad("unknown-content-type", b'{"invoice": {"id": "7"}}', "Content-Type", "text/plain"),
        bad("malformed-event", b'{"invoice": {"id": "7"}}', "resource.action", event="invoice"),
    ],
)
def test_bad_body_gets_400_with_a_reason_and_records_nothing(
    pipeline: Pipeline,
    receiver: Receiver,
    body: bytes,
    content_type: str,
    event: str,
    reason: str,
) -> None:
    add_account(pipeline)
    response = post(receiver.url(), body, event=event, content_type=content_type)
    assert response.status_code == 400
    answer = response.json()
    assert answer["outcome"] == "bad_request"
    assert reason in answer["reason"]
    assert "Traceback" not in response.text
    assert pipeline.ledger() == []


def test_body_over_the_size_cap_gets_413(pipeline: Pipeline, receiver: Receiver) -> None:
    add_account(pipeline)
    body = b'{"invoice": {"id": "7", "note": "' + b"x" * 1_100_000 + b'"}}'
    try:
        response = post(receiver.url(), body, event="invoice.create")
    except requests.ConnectionError:
        pytest.fail("the receiver dropped the connection instead of answering 413")
    assert response.status_code == 413
    assert pipeline.ledger() == []


# ---------------------------------------------------------------------------------------------
# the command


def test_webhooks_command_has_port_and_metrics_port_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["webhooks", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--port" in help_text
    assert "--metrics-port" in help_text


def test_webhooks_command_serves_a_webhook_end_to_end_and_stops_on_sigterm(
    pipeline: Pipeline, sims: Simulators, tmp_path: Path
) -> None:
    bm = sims.billomat
    invoice = bm.add_document(BILLOMAT_ID, "invoices", status="PAID")
    add_account(pipeline)
    port = free_port()
    log = tmp_path / "webhooks.log"
    process = pipeline.spawn("webhooks", "--port", str(port), "--host", "127.0.0.1", log=log)
    origin = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"webhooks exited early:\n{log.read_text()}")
        try:
            return requests.get(f"{origin}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    pipeline.wait_until(listening, timeout=30, what="the webhook receiver")
    status = bm.send_webhook(
        f"{origin}/billomat/{ACCOUNT}", billomat_id=BILLOMAT_ID, event="invoice.create",
        kind="invoices", id=invoice, auth=(USER, PASSWORD),
    )  # fmt: skip
    assert status == 200
    assert pipeline.consume(idle_exit=1) == 1
    [doc] = sims.gmi.documents(GMI_KEY)
    assert doc["sha256"] == sha(bm.pdf_content(BILLOMAT_ID, "invoices", invoice))

    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(15) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("webhooks did not stop on SIGTERM")
    output = log.read_text()
    assert PASSWORD not in output
    assert "invoice.create" in output  # the one line per webhook
