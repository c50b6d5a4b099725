"""Hostile messages on the bus, published between real documents, on the real RabbitMQ with
SQLite and PostgreSQL: no consumer exits or stalls, each hostile message is parked exactly once
with its reason, no ledger row changes, every real document syncs, and the operator commands
list what is parked.  And a database outage: the consumer gives its messages back and keeps its
broker connection alive while it waits."""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import amqp
import pytest
from sqlalchemy import create_engine, select, text

from app import bootstrap
from shared.broker import Broker
from shared.db import Document, DocumentEvent, SyncAccount
from shared.domain import Direction
from shared.messages import ERROR_CLASS_HEADER, ERROR_HEADER, SyncMessage
from simulators import Simulators
from tests.conftest import POSTGRES_ADMIN_URL, PostgresDatabases, service_missing
from tests.e2e.conftest import BILLOMAT_ID, GMI_KEY, Pipeline, PipelineFactory, settings_env
from tests.e2e.test_recovery import peek, take_all
from tests.helpers import Cli


@dataclass
class Hostile:
    label: str
    body: bytes
    reason: str  # expected in the parked message's error header
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


def message_body(**fields: Any) -> bytes:
    base = SyncMessage(
        direction=Direction.EXPORT, account_id=1, account="acme-export", document_id=1,
        source_kind="documents", source_id="1", detected_at=datetime.now(UTC),
    )  # fmt: skip
    data = json.loads(base.to_json())
    data.update(fields)
    return json.dumps(data).encode()


def publish_raw(broker: Broker, routing_key: str, hostile: Hostile) -> None:
    """As anyone with broker access could: any body, any header, any property, confirmed."""
    channel = broker.new_channel()
    try:
        message = amqp.Message(
            hostile.body,
            application_headers=hostile.headers,
            delivery_mode=2,
            **({"content_type": "application/json"} | hostile.properties),
        )
        channel.basic_publish_confirm(
            message, exchange=broker.topology.work_exchange.name, routing_key=routing_key
        )
    finally:
        channel.close()


def run_consumers(pipeline: Pipeline, count: int, *, prefetch: int, logs: Path) -> str:
    """``count`` consumer processes until each has been idle for a while; all must exit 0.

    Processes, not threads: per-document locks on SQLite are POSIX record locks, which
    belong to a process (two consumers in one process would not exclude each other).
    """
    env = settings_env(pipeline.settings) | {"BELEGSYNC_PREFETCH": str(prefetch)}
    consumers = [
        pipeline.spawn("consume", "--idle-exit", "4", env=env, log=logs / f"consumer-{n}.log")
        for n in range(count)
    ]
    for process in consumers:
        assert process.wait(240) == 0, "a consumer exited with an error"
    return "".join(path.read_text() for path in sorted(logs.glob("consumer-*.log")))


def raw_body(message: Any) -> bytes:
    # py-amqp leaves the body of a bodyless message at its default, "".
    return message.body if isinstance(message.body, bytes) else message.body.encode()


def ledger_rows(pipeline: Pipeline, document_ids: list[int]) -> dict[str, list[tuple[Any, ...]]]:
    """Every column of these rows, their history and every account: for "nothing changed"."""
    with pipeline.db.session() as session:
        return {
            "documents": [
                tuple(str(getattr(d, c.key)) for c in Document.__table__.columns)
                for d in session.scalars(
                    select(Document).where(Document.id.in_(document_ids)).order_by(Document.id)
                )
            ],
            "events": [
                tuple(str(getattr(e, c.key)) for c in DocumentEvent.__table__.columns)
                for e in session.scalars(
                    select(DocumentEvent)
                    .where(DocumentEvent.document_id.in_(document_ids))
                    .order_by(DocumentEvent.id)
                )
            ],
            "accounts": [
                tuple(str(getattr(a, c.key)) for c in SyncAccount.__table__.columns)
                for a in session.scalars(select(SyncAccount).order_by(SyncAccount.id))
            ],
        }


def hostile_messages(
    export_id: int, import_id: int, synced: list[tuple[int, str]]
) -> list[Hostile]:
    noise = random.Random(16)
    [(first_row, first_uid), (second_row, second_uid)] = synced
    return [
        Hostile("100,000 levels deep", b"[" * 100_000 + b"]" * 100_000, "exceeds 65536 bytes"),
        Hostile(
            "deep but small",
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
            "nested deeper than 8 levels",
        ),
        Hostile(
            "id out of range",
            message_body(account_id=export_id, document_id=10**30),
            "document_id: Input should be less than or equal to 2147483647",
        ),
        Hostile(
            "a synced row, named by another account",
            message_body(account_id=import_id, document_id=first_row, source_id=first_uid),
            f"ledger row {first_row} does not belong to account id {import_id}",
        ),
        Hostile(
            "another synced row, named by another account",
            message_body(account_id=import_id, document_id=second_row, source_id=second_uid),
            f"ledger row {second_row} does not belong to account id {import_id}",
        ),
        Hostile(
            "unknown account",
            message_body(account_id=999_999, document_id=999_999),
            "no ledger row 999999",
        ),
        Hostile("random bytes", noise.randbytes(3000), "body is not JSON"),
        Hostile("empty body", b"", "empty body"),
        Hostile(
            "wrong content type, compressed",
            gzip.compress(message_body(account_id=export_id, document_id=first_row)),
            "body is not JSON",
            headers={"compression": "application/x-gzip"},
            properties={"content_type": "application/x-gzip", "content_encoding": "binary"},
        ),
        Hostile(
            "5 MB body",
            b'{"schema": 1, "pad": "'
            + noise.randbytes(5 * 1024 * 1024 // 2).hex().encode()
            + b'"}',
            "exceeds 65536 bytes",
        ),
        Hostile(
            "an older producer's message",
            b'{"doc": 17, "account": "acme-export"}',
            "unsupported schema version None",
            headers={
                "x-belegsync-attempt": "lots",
                "x-belegsync-first-failure": {"when": [1, 2.5, None]},
                "x-delivery-count": "many",
                "blob": b"\xff\x00",
            },
        ),
    ]


@pytest.fixture
def pipeline(any_db_pipeline: Pipeline) -> Pipeline:
    return any_db_pipeline


def test_hostile_messages_are_parked_once_each_and_change_nothing(
    pipeline: Pipeline, sims: Simulators, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    export_id = pipeline.add_export()
    import_id = pipeline.add_import(document_kinds=["invoices"])

    # Two documents synced first: the rows the wrong-account messages will name.
    early = [sims.gmi.seed_document(GMI_KEY, document_number=f"EARLY-{n}") for n in range(2)]
    pipeline.produce_once(["acme-export"])
    pipeline.consume(idle_exit=1.5)
    assert pipeline.states() == {str(uid): "synced" for uid in early}
    with pipeline.db.session() as session:
        synced = [
            (doc.id, doc.source_id)
            for doc in session.scalars(select(Document).order_by(Document.id))
        ]
    before = ledger_rows(pipeline, [row for row, _ in synced])

    # The hostile messages, published between real documents of both directions.
    late = [sims.gmi.seed_document(GMI_KEY, document_number=f"LATE-{n}") for n in range(4)]
    invoice = sims.billomat.add_document(BILLOMAT_ID, "invoices", status="PAID")
    hostile = hostile_messages(export_id, import_id, synced)
    broker = bootstrap.broker(pipeline.settings)
    broker.connect()
    try:
        for item in hostile[:6]:
            publish_raw(broker, "export", item)
        pipeline.produce_once()  # the real ones, in the middle
        for item in hostile[6:]:
            publish_raw(broker, "import" if "older" in item.label else "export", item)
        # A real document's message once more, with headers a sender may set: tolerated.
        with pipeline.db.session() as session:
            row = session.scalar(select(Document).where(Document.source_id == str(late[0])))
            assert row is not None
            again = message_body(account_id=export_id, document_id=row.id, source_id=row.source_id)
        for count in ("many", 19):
            publish_raw(
                broker, "export", Hostile("tolerated", again, "", {"x-delivery-count": count})
            )
    finally:
        broker.close()

    # Several consumers with several messages each in hand: parks and retries publish while
    # the next deliveries arrive.
    logs = run_consumers(pipeline, 2, prefetch=3, logs=tmp_path)
    assert "Traceback" not in logs

    # every real document synced, once
    states = pipeline.states()
    assert {uid: states[str(uid)] for uid in early + late} == dict.fromkeys(early + late, "synced")
    assert pipeline.states("acme-import") == {str(invoice): "synced"}
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == len(early) + len(late), [
        (d["filename"], d.get("metadata")) for d in sims.billomat.inbox(BILLOMAT_ID)
    ]
    assert len(sims.gmi.documents(GMI_KEY)) == len(early) + len(late) + 1
    # no ledger row of before changed, the named synced ones included
    assert ledger_rows(pipeline, [row for row, _ in synced]) == before

    # the operator's commands list what is parked, and crash on none of it
    cli = Cli(pipeline.settings, capsys)
    dry = cli("replay", "--all", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    listed = Counter(
        (item["action"].split(" (")[0].split(":")[0], item["size"]) for item in dry.json()["items"]
    )
    assert listed == Counter(("kept", len(h.body)) for h in hostile)
    assert all(item["reason"] for item in dry.json()["items"])
    unaccounted = cli("status", "--parked", "--json")
    assert unaccounted.code == 0, unaccounted.err
    assert sorted(row["size"] for row in unaccounted.json()) == sorted(len(h.body) for h in hostile)
    for command in (["status"], ["documents"], ["replay", "--all"], ["status", "--parked"]):
        assert cli(*command).code == 0, command

    # each hostile message parked exactly once, raw body kept, with its reason; nothing left
    broker = bootstrap.broker(pipeline.settings)
    broker.connect()
    try:
        parked = take_all(broker, pipeline.settings.queue_prefix + ".parked")
        for direction in Direction:
            assert peek(broker, broker.topology.work_queue_name(direction)) == []
    finally:
        broker.close()
    bodies = [raw_body(m) for m in parked]
    assert Counter(bodies) == Counter(h.body for h in hostile)
    for item in hostile:
        [message] = [m for m, body in zip(parked, bodies, strict=True) if body == item.body]
        assert item.reason in message.headers[ERROR_HEADER], item.label
        assert message.headers[ERROR_CLASS_HEADER] in ("malformed", "permanent"), item.label


# ---------------------------------------------------------------------------------------------
# The database goes away


@pytest.fixture
def pg_pipeline(
    pipeline_factory: PipelineFactory, postgres_databases: PostgresDatabases | None
) -> Iterator[tuple[Pipeline, str]]:
    if postgres_databases is None:
        service_missing("PostgreSQL")
        raise AssertionError("unreachable")
    url = postgres_databases.create(migrated=True)
    yield pipeline_factory(url), url
    set_connections(url, allowed=True)
    postgres_databases.drop(url)


def set_connections(url: str, *, allowed: bool) -> None:
    """Open or close one test database to new connections, ending its current ones."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
    finally:
        admin.dispose()


def test_while_the_database_is_away_the_consumer_holds_no_message_and_keeps_its_connection(
    pg_pipeline: tuple[Pipeline, str], sims: Simulators, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, url = pg_pipeline
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"AWAY-{n}") for n in range(2)]
    pipeline.add_export()
    pipeline.produce_once()
    pipeline.db.dispose()

    consumer = pipeline.consumer()
    consumer.broker.heartbeat = 2  # RabbitMQ drops a connection silent for two of these
    consumer.broker.connect()
    caplog.set_level(logging.INFO)
    set_connections(url, allowed=False)
    thread = threading.Thread(
        target=consumer.run, args=([Direction.EXPORT],), kwargs={"prefetch": 2}
    )
    thread.start()
    watcher = bootstrap.broker(pipeline.settings)
    watcher.connect()
    try:
        # Both messages are back in the queue, ready for anyone, and nobody consumes meanwhile.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            depth = watcher.queue_depths()[("export", "work")]
            if (depth.messages, depth.consumers) == (
                2,
                0,
            ) and "giving the message back" in caplog.text:
                break
            time.sleep(0.2)
        assert (depth.messages, depth.consumers) == (2, 0)
        time.sleep(8)  # four heartbeat intervals: long enough for RabbitMQ to drop a silent one
        assert watcher.queue_depths()[("export", "work")].messages == 2
        set_connections(url, allowed=True)
        pipeline.wait_until(
            lambda: set(pipeline.states().values()) == {"synced"}, timeout=60, what="synced"
        )
    finally:
        consumer.stop.set()
        thread.join(30)
        watcher.close()
        consumer.broker.close()
        consumer.clients.close()
        consumer.locks.close()
    assert not thread.is_alive()
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == len(uids)
    # the broker connection outlived the wait: heartbeats went on
    assert "lost RabbitMQ" not in caplog.text
    assert consumer.broker.heartbeat == 2


# ---------------------------------------------------------------------------------------------
# The confirm wait


def test_deliveries_arriving_during_a_confirm_wait_are_buffered_not_handled(
    pipeline_factory: PipelineFactory,
) -> None:
    pipeline = pipeline_factory()
    broker = bootstrap.broker(pipeline.settings)
    broker.connect()
    try:
        for n in range(5):
            broker.publish_work(f"message {n}".encode(), Direction.EXPORT)
        queue = broker.topology.work_queue(Direction.EXPORT)
        with broker.consuming([queue], prefetch=5) as inbox:
            first = inbox.take(timeout=5.0)
            assert first is not None
            time.sleep(1.0)  # the broker has pushed the other four meanwhile
            # A park's publish waits for its confirm by reading the connection: the other
            # deliveries are read then, and must only be queued up, in order, for later.
            broker.publish_parked(first.body, "export", headers={})
            assert len(inbox) == 4
            broker.ack(first)
            rest = [inbox.take(timeout=5.0) for _ in range(4)]
            assert [d.body for d in rest if d] == [f"message {n}".encode() for n in range(1, 5)]
            for delivery in rest:
                assert delivery is not None
                broker.ack(delivery)
        assert [m.body for m in take_all(broker, pipeline.settings.queue_prefix + ".parked")] == [
            b"message 0"
        ]
    finally:
        broker.close()
