"""Failure paths: each error class lands where it belongs; parking, replay and SIGTERM."""

from __future__ import annotations

import json
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from app import bootstrap
from app.replay import Replayer, Selection
from app.status import documents
from shared.accounts import AccountChanges
from shared.broker import Broker
from shared.domain import Direction
from shared.messages import (
    ATTEMPT_HEADER,
    ERROR_CLASS_HEADER,
    ERROR_HEADER,
    FIRST_FAILURE_HEADER,
    LAST_FAILURE_HEADER,
    ROUTING_KEY_HEADER,
)
from simulators import Simulators
from tests.e2e.conftest import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY, Pipeline, PipelineFactory


@pytest.fixture
def slow_retry_pipeline(pipeline_factory: PipelineFactory) -> Pipeline:
    """Retry tiers of 5 s, so a test can look into the delay queue while a message waits."""
    return pipeline_factory(retry_delays="5s,5s", max_attempts=3)


@pytest.fixture
def short_pipeline(pipeline_factory: PipelineFactory) -> Pipeline:
    """Retry tiers of 1 s and 3 attempts: a transient failure is parked within seconds."""
    return pipeline_factory(retry_delays="1s", max_attempts=3)


@pytest.fixture
def no_retry_pipeline(pipeline_factory: PipelineFactory) -> Pipeline:
    """One attempt only: any counted failure parks at once."""
    return pipeline_factory(retry_delays="1s,2s", max_attempts=1)


def broker_for(pipeline: Pipeline) -> Broker:
    broker = bootstrap.broker(pipeline.settings)
    broker.connect()
    return broker


def _get_all(broker: Broker, queue: str, *, remove: bool) -> list[Any]:
    channel = broker.new_channel()
    messages = []
    try:
        while (message := channel.basic_get(queue=queue, no_ack=remove)) is not None:
            messages.append(message)
    finally:
        channel.close()  # unacked messages go back to the queue
    return messages


def take_all(broker: Broker, queue: str) -> list[Any]:
    """Every message now in ``queue``, acked (i.e. removed)."""
    return _get_all(broker, queue, remove=True)


def peek(broker: Broker, queue: str) -> list[Any]:
    """Every message now in ``queue``, left in place."""
    return _get_all(broker, queue, remove=False)


def inbox_count(sims: Simulators) -> int:
    return len(sims.billomat.inbox(BILLOMAT_ID))


def history(pipeline: Pipeline, source_id: str) -> list[str]:
    [doc] = documents(pipeline.db, source_id=source_id, with_history=True)
    return [f"{h['to']}: {h['reason']}" for h in doc["history"]]


# ---------------------------------------------------------------------------------------------


def test_transient_failure_waits_in_the_delay_queue_then_lands(
    slow_retry_pipeline: Pipeline, sims: Simulators
) -> None:
    pipeline = slow_retry_pipeline
    uid = sims.gmi.seed_document(GMI_KEY, document_number="T-1")
    pipeline.add_export()
    sims.billomat.fail_next(1, status=503, methods=["POST"], path_contains="inbox-documents")
    pipeline.produce_once()
    consumer, thread = pipeline.consume_in_thread([Direction.EXPORT])
    try:
        pipeline.wait_until(lambda: pipeline.states() == {str(uid): "retrying"}, what="retrying")
        broker = broker_for(pipeline)
        try:
            waiting = peek(broker, pipeline.settings.queue_prefix + ".retry.5s")
        finally:
            broker.close()
        assert len(waiting) == 1
        headers = waiting[0].headers
        assert headers[ATTEMPT_HEADER] == 1
        assert headers[ERROR_CLASS_HEADER] == "transient"
        assert "503" in headers[ERROR_HEADER]
        pipeline.wait_until(
            lambda: pipeline.states() == {str(uid): "synced"}, timeout=30, what="synced"
        )
    finally:
        consumer.stop.set()
        thread.join(10)
    assert inbox_count(sims) == 1
    assert sims.billomat.request_counts(BILLOMAT_ID)["POST /api/inbox-documents"] == 2
    assert any(
        line.startswith("retrying: attempt 1 failed") for line in history(pipeline, str(uid))
    )


def test_after_the_last_attempt_a_transient_failure_is_parked_with_its_story(
    short_pipeline: Pipeline, sims: Simulators
) -> None:
    pipeline = short_pipeline
    uid = sims.gmi.seed_document(GMI_KEY, document_number="P-1")
    pipeline.add_export()
    sims.billomat.fail_next(10, status=503, methods=["POST"], path_contains="inbox-documents")
    pipeline.produce_once()
    pipeline.consume(idle_exit=4.0)

    [row] = pipeline.ledger()
    assert row["state"] == "parked"
    assert row["error_class"] == "transient"
    assert "gave up after 3 attempts" in row["last_error"]
    broker = broker_for(pipeline)
    try:
        [parked] = take_all(broker, pipeline.settings.queue_prefix + ".parked")
    finally:
        broker.close()
    headers = parked.headers
    assert headers[ERROR_CLASS_HEADER] == "transient"
    assert headers[ATTEMPT_HEADER] == 2  # the third attempt failed after two counted retries
    assert headers[ROUTING_KEY_HEADER] == "export"
    assert headers[FIRST_FAILURE_HEADER] <= headers[LAST_FAILURE_HEADER]
    assert json.loads(parked.body)["source_id"] == str(uid)
    assert sims.billomat.request_counts(BILLOMAT_ID)["POST /api/inbox-documents"] == 3
    assert inbox_count(sims) == 0


def test_a_permanent_failure_is_parked_at_once_and_replay_brings_it_home(
    short_pipeline: Pipeline, sims: Simulators
) -> None:
    pipeline = short_pipeline
    uid = sims.gmi.seed_document(GMI_KEY, document_number="R-1")
    pipeline.add_export()
    sims.billomat.fail_next(1, status=400, methods=["POST"], path_contains="inbox-documents")
    pipeline.produce_once()
    pipeline.consume(idle_exit=2.0)
    [row] = pipeline.ledger()
    assert (row["state"], row["error_class"], row["attempts"]) == ("parked", "permanent", 1)
    assert "400" in row["last_error"]

    # the fault is cleared (fail_next was used up); replay moves the parked message back
    broker = broker_for(pipeline)
    try:
        report = Replayer(pipeline.db, broker).replay(Selection(everything=True))
    finally:
        broker.close()
    assert [(i.source_id, i.action) for i in report.items] == [(str(uid), "moved")]
    pipeline.consume(idle_exit=2.0)
    assert pipeline.states() == {str(uid): "synced"}
    assert inbox_count(sims) == 1


def test_replay_rebuilds_a_message_that_is_gone_and_skips_what_was_synced_since(
    short_pipeline: Pipeline, sims: Simulators
) -> None:
    pipeline = short_pipeline
    lost = sims.gmi.seed_document(GMI_KEY, document_number="GONE-1")
    healed = sims.gmi.seed_document(GMI_KEY, document_number="HEAL-1")
    pipeline.add_export()
    sims.billomat.fail_next(2, status=400, methods=["POST"], path_contains="inbox-documents")
    pipeline.produce_once()
    pipeline.consume(idle_exit=2.0)
    assert set(pipeline.states().values()) == {"parked"}

    broker = broker_for(pipeline)
    try:
        # somebody purged the parking queue...
        parked = take_all(broker, pipeline.settings.queue_prefix + ".parked")
        assert len(parked) == 2
        # ...and the other document was synced by other means meanwhile (e.g. a second message)
        dry = Replayer(pipeline.db, broker).replay(Selection(everything=True), dry_run=True)
        assert sorted(i.action for i in dry.items) == ["would rebuild", "would rebuild"]
        assert set(pipeline.states().values()) == {"parked"}  # a dry run changes nothing
        report = Replayer(pipeline.db, broker).replay(Selection(source_id=str(lost)))
    finally:
        broker.close()
    assert [(i.source_id, i.action) for i in report.items] == [(str(lost), "rebuilt")]
    pipeline.consume(idle_exit=2.0)
    assert pipeline.states() == {str(lost): "synced", str(healed): "parked"}

    # a parked message of a document that is synced by now is dropped, not replayed
    broker = broker_for(pipeline)
    try:
        report = Replayer(pipeline.db, broker).replay(Selection(source_id=str(lost)))
        assert report.items == []  # nothing parked for it any more
    finally:
        broker.close()
    assert inbox_count(sims) == 1


def test_a_rate_limit_means_waiting_for_the_window_not_a_failed_attempt(
    no_retry_pipeline: Pipeline, sims: Simulators
) -> None:
    pipeline = no_retry_pipeline  # a single counted failure would park a document
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=3, window_seconds=6)
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"Q-{n}") for n in range(5)]
    pipeline.add_export()
    pipeline.produce_once()
    # another integration of the same Billomat account uses up the window first
    url = sims.billomat_url_template.format(billomat_id=BILLOMAT_ID) + "/clients"
    key = {"X-BillomatApiKey": BILLOMAT_KEY}
    # (early enough in a window that the consumer's first upload still meets it spent: with
    # 6-second windows the window could otherwise turn before that upload)
    while True:
        answer = requests.get(url, headers=key, timeout=5)
        if answer.status_code != 429:
            continue
        left = int(answer.headers["X-Rate-Limit-Reset"]) - time.time()
        if left >= 4:
            break
        time.sleep(max(left, 0) + 0.05)
    with pipeline.producing():  # the producer releases waiting documents when the window turns
        pipeline.consume(idle_exit=8.0)

    assert pipeline.states() == {str(u): "synced" for u in uids}
    assert inbox_count(sims) == 5
    waited = [
        u
        for u in uids
        if any("waiting for the billomat quota" in h for h in history(pipeline, str(u)))
    ]
    assert waited  # the first ones waited for the next window
    # Only the first upload met the exhausted window (429); after that our quota bookkeeping
    # held every document back until the window turned, so nothing else was refused.
    posts = sims.billomat.request_counts(BILLOMAT_ID)["POST /api/inbox-documents"]
    assert posts == 6
    assert sum(r["attempts"] for r in pipeline.ledger()) == posts


def test_a_wrong_api_key_pauses_the_account_and_its_documents_wait(
    pipeline: Pipeline, sims: Simulators
) -> None:
    uid = sims.gmi.seed_document(GMI_KEY, document_number="K-1")
    pipeline.add_export()
    # (a first poll with the wrong key would be refused already by its look into the inbox)
    pipeline.produce_once()
    pipeline.accounts.update("acme-export", AccountChanges(billomat_api_key="wrong-key-123"))
    pipeline.consume(idle_exit=2.0)

    [status] = pipeline.overview()
    assert status["enabled"] is False
    assert "paused" in status["attention"]
    assert "401" in status["attention"]
    assert pipeline.states() == {str(uid): "held"}
    assert inbox_count(sims) == 0

    # the operator fixes the key and resumes: the held document is published again and lands
    pipeline.accounts.update("acme-export", AccountChanges(billomat_api_key=BILLOMAT_KEY))
    pipeline.accounts.set_enabled("acme-export", True)
    [report] = pipeline.produce_once()
    assert report.published == 1
    pipeline.consume(idle_exit=2.0)
    assert pipeline.states() == {str(uid): "synced"}
    assert inbox_count(sims) == 1


def test_an_undecodable_message_is_parked_with_its_raw_body(pipeline: Pipeline) -> None:
    pipeline.add_export()
    broker = broker_for(pipeline)
    try:
        broker.publish_work(b"\xff{not json", Direction.EXPORT)
        broker.publish_work(b'{"schema": 99}', Direction.EXPORT)
    finally:
        broker.close()
    assert pipeline.consume(idle_exit=1.5) == 0
    broker = broker_for(pipeline)
    try:
        parked = take_all(broker, pipeline.settings.queue_prefix + ".parked")
    finally:
        broker.close()
    assert sorted(bytes(m.body) for m in parked) == [b'{"schema": 99}', b"\xff{not json"]
    assert {m.headers[ERROR_CLASS_HEADER] for m in parked} == {"malformed"}
    assert any("schema version" in m.headers[ERROR_HEADER] for m in parked)


def test_sigterm_finishes_the_message_in_hand_and_exits_0(
    pipeline: Pipeline, sims: Simulators, tmp_path: Path
) -> None:
    uid = sims.gmi.seed_document(GMI_KEY, document_number="TERM-1")
    pipeline.add_export()
    pipeline.produce_once()
    sims.billomat.hold_after_next_write(1, seconds=3, path_contains="inbox-documents")
    consumer = pipeline.spawn("consume", "--direction", "export", log=tmp_path / "c.log")
    pipeline.wait_until(lambda: inbox_count(sims) == 1, what="upload landed")
    consumer.send_signal(signal.SIGTERM)  # while the upload's answer is still on its way
    assert consumer.wait(30) == 0
    assert pipeline.states() == {str(uid): "synced"}
    assert inbox_count(sims) == 1
    # nothing left behind: the message was acked
    broker = broker_for(pipeline)
    try:
        assert peek(broker, pipeline.settings.queue_prefix + ".export") == []
    finally:
        broker.close()


def test_replay_stuck_rebuilds_the_message_of_a_document_whose_delay_queue_was_purged(
    slow_retry_pipeline: Pipeline, sims: Simulators
) -> None:
    pipeline = slow_retry_pipeline
    uid = sims.gmi.seed_document(GMI_KEY, document_number="STUCK-1")
    pipeline.add_export()
    sims.billomat.fail_next(1, status=503, methods=["POST"], path_contains="inbox-documents")
    pipeline.produce_once()
    consumer, thread = pipeline.consume_in_thread([Direction.EXPORT])
    try:
        pipeline.wait_until(lambda: pipeline.states() == {str(uid): "retrying"}, what="retrying")
    finally:
        consumer.stop.set()
        thread.join(10)
    broker = broker_for(pipeline)
    try:
        # an operator purges the delay queue: the document's only message is gone
        assert len(take_all(broker, pipeline.settings.queue_prefix + ".retry.5s")) == 1
        replayer = Replayer(pipeline.db, broker)
        assert replayer.replay(Selection(everything=True)).items == []  # nothing parked
        report = replayer.replay(Selection(everything=True, stuck_for=timedelta(0)))
    finally:
        broker.close()
    assert [(i.source_id, i.action) for i in report.items] == [(str(uid), "rebuilt")]
    assert "retrying without a change since" in report.items[0].reason
    pipeline.consume(idle_exit=2.0)
    assert pipeline.states() == {str(uid): "synced"}
    assert inbox_count(sims) == 1
