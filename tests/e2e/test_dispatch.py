"""Releasing work from the ledger: what a window can serve, the accounts taking turns, the
polls' reserve.  Real RabbitMQ and ledger; counts only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import bootstrap
from producers.scheduler import Producer
from shared import ledger
from shared.accounts import key_fingerprint
from shared.db import ApiQuota, Document, SyncAccount
from shared.domain import Direction, DocState
from shared.ledger import Detected
from shared.quota import QuotaBook
from shared.quota_plan import DAY_MARGIN, WINDOW_SLACK
from tests.e2e.conftest import GMI_KEY, Pipeline
from tests.e2e.test_recovery import peek, take_all

GMI_SCOPE = key_fingerprint(GMI_KEY)


@pytest.fixture
def producer(pipeline: Pipeline) -> Iterator[Producer]:
    built = bootstrap.build_producer(pipeline.settings, pipeline.db, pipeline.box, None)
    built.broker.connect()
    try:
        yield built
    finally:
        built.broker.close()
        built.clients.close()


def backlog(pipeline: Pipeline, name: str, documents: int) -> int:
    """An export account with ``documents`` detected and not yet published."""
    account_id = pipeline.add_export(name)
    with pipeline.db.session() as session:
        account = session.get(SyncAccount, account_id)
        assert account is not None
        account.gmi_scope = GMI_SCOPE  # as its first poll records it
        for n in range(documents):
            ledger.insert_detected(
                session, account, Detected("documents", f"{name}-{n}", None, None, None),
                DocState.PENDING, "detected in GMI",
            )  # fmt: skip
    return account_id


def queued_accounts(pipeline: Pipeline, producer: Producer) -> list[str]:
    queue = producer.broker.topology.work_queue_name(Direction.EXPORT)
    return [json.loads(m.body)["account"] for m in peek(producer.broker, queue)]


def test_a_window_releases_only_what_it_can_serve_and_the_accounts_take_turns(
    pipeline: Pipeline, producer: Producer
) -> None:
    big = backlog(pipeline, "big", 10)
    small = backlog(pipeline, "small", 3)
    quota = QuotaBook(pipeline.db)
    reset = datetime.now(UTC) + timedelta(minutes=10)
    quota.record("billomat", "acme", 6, reset)  # both upload to the same Billomat account

    first = producer.dispatcher.release()
    assert first.published == {big: 3, small: 3}
    assert queued_accounts(pipeline, producer) == ["big", "small"] * 3  # interleaved

    # The window is spoken for by what waits in the queue: nothing more until it resets.
    second = producer.dispatcher.release()
    assert second.published == {}
    assert second.next_at == reset + WINDOW_SLACK

    # A new window of 30 while those 6 still wait in the queue: 24 more may go; only the big
    # account has any left.
    quota.record("billomat", "acme", 30, reset + timedelta(minutes=15))
    third = producer.dispatcher.release()
    assert third.published == {big: 7}
    assert third.next_at is None
    states = [d["state"] for d in pipeline.ledger()]
    assert states.count("pending") == 13


def test_the_day_plan_keeps_what_the_polls_due_before_the_reset_need(
    pipeline: Pipeline, producer: Producer
) -> None:
    backlog(pipeline, "one", 0)
    backlog(pipeline, "two", 0)  # the same GMI key: its quota is shared
    # 12:00 UTC on a winter day: Berlin's midnight is 11 h away, 44 polls at 15 minutes each
    noon = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
    producer.dispatcher.release(now=noon)
    with pipeline.db.session() as session:
        day = session.get(ApiQuota, ("gmi.day", GMI_SCOPE))
        minute = session.get(ApiQuota, ("gmi.min", GMI_SCOPE))
        assert day is not None
        assert minute is not None
        assert day.keep == 2 * 44 + DAY_MARGIN
        assert minute.keep == 2  # each account's poll falls into this minute
        assert session.get(ApiQuota, ("billomat", "acme")) is None  # no import polls: no keep


def test_a_fair_release_queues_no_more_per_account_than_there_are_consumers(
    pipeline: Pipeline, producer: Producer
) -> None:
    big = backlog(pipeline, "big", 10)
    small = backlog(pipeline, "small", 3)
    QuotaBook(pipeline.db).record(
        "billomat", "acme", 100, datetime.now(UTC) + timedelta(minutes=10)
    )

    # Nobody consumes yet: two each (the floor), and a look again soon for the rest.
    first = producer.dispatcher.release(fair=True)
    assert first.published == {big: 2, small: 2}
    assert first.next_at is not None
    assert queued_accounts(pipeline, producer) == ["big", "small"] * 2
    assert producer.dispatcher.release(fair=True).published == {}  # still queued

    # The queue is taken: the next fair release tops both accounts up again.
    queue = producer.broker.topology.work_queue_name(Direction.EXPORT)
    take_all(producer.broker, queue)
    with pipeline.db.session() as session:  # as consumers that landed them would
        for doc in session.scalars(select(Document).where(Document.published_at.is_not(None))):
            doc.state = DocState.SYNCED.value
    assert producer.dispatcher.release(fair=True).published == {big: 2, small: 1}
