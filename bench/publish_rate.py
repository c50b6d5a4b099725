"""Producer publish rate: ledger rows published per second by the outbox, with publisher confirms.

N pending, unpublished ledger rows of one export account (default 1,000) are written straight
into a fresh ledger; then ``Outbox.flush(account_id)`` — what every poll ends with — publishes
one persistent message per row to the quorum work queue, waits for each broker confirm, and
marks the rows published (a commit per batch of 100). Timed: the flush call alone.

For comparison, ``broker only`` publishes the same number of messages of the same size through
the same ``Broker.publish_work`` with no database at all: the part of the rate the confirm round
trips set. Between runs the work queue is purged and the rows are marked unpublished again.

    .venv/bin/python -m bench.publish_rate [--rows 1000 5000] [--db sqlite postgresql]
                                           [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from app import bootstrap
from bench.harness import (
    MachineNote,
    Run,
    ScratchDatabases,
    Spread,
    SqlCounter,
    common_arguments,
    db_argument,
    emit_json,
    load_average,
    print_table,
    progress,
    purge_work_queues,
    require_services,
    simulators,
)
from producers.outbox import BATCH, Outbox, message_for
from shared.db import Document, SyncAccount
from shared.domain import Direction, DocState
from shared.messages import ATTEMPT_HEADER


def insert_pending(run: Run, account_id: int, rows: int) -> None:
    now = datetime.now(UTC)
    with run.db.session() as session:
        session.add_all(
            Document(
                account_id=account_id,
                source_system="gmi",
                source_kind="documents",
                source_id=str(100_000 + i),
                document_type="INCOMING_INVOICE",
                document_number=f"RE-{i:06d}",
                document_date=now.date(),
                state=DocState.PENDING.value,
                attempts=0,
                detected_at=now,
                details={"gross_amount": "119.00", "currency": "EUR"},
            )
            for i in range(rows)
        )


def mark_unpublished(run: Run, account_id: int) -> None:
    with run.db.session() as session:
        session.execute(
            update(Document)
            .where(Document.account_id == account_id)
            .values(published_at=None, message_id=None)
        )


def sample_body(run: Run, account_id: int) -> bytes:
    with run.db.session() as session:
        account = session.get(SyncAccount, account_id)
        doc = session.get(Document, 1)
        assert account is not None
        assert doc is not None
        return message_for(account, doc).to_json()


def measure(kind: str, rows: int, repeat: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with ScratchDatabases(kind) as databases, simulators() as sims, Run(databases, sims) as run:
        account_id = run.add_export()
        insert_pending(run, account_id, rows)
        broker = bootstrap.broker(run.settings)
        broker.connect(retries=3)
        counter = SqlCounter(run.db.engine)
        try:
            outbox = Outbox(run.db, broker)
            body = sample_body(run, account_id)
            for attempt in range(repeat):
                progress(f"publish: {kind}, {rows} rows, run {attempt + 1}/{repeat}")
                load = load_average()
                mark_unpublished(run, account_id)
                purge_work_queues(broker, [Direction.EXPORT])
                counter.reset()
                started = time.perf_counter()
                published = outbox.flush(account_id)
                outbox_s = time.perf_counter() - started
                sql = counter.snapshot()
                if published != rows:
                    raise RuntimeError(f"flush published {published} of {rows} rows")

                purge_work_queues(broker, [Direction.EXPORT])
                started = time.perf_counter()
                for i in range(rows):
                    broker.publish_work(
                        body,
                        Direction.EXPORT,
                        headers={ATTEMPT_HEADER: 0},
                        message_id=f"bench-{attempt}-{i}",
                    )
                broker_s = time.perf_counter() - started
                results.append(
                    {
                        "db": kind,
                        "rows": rows,
                        "outbox_s": outbox_s,
                        "outbox_rows_per_s": rows / outbox_s,
                        "broker_only_s": broker_s,
                        "broker_only_per_s": rows / broker_s,
                        "message_bytes": len(body),
                        "sql_per_row": sql["statements"] / rows,
                        "transactions": sql["transactions"],
                        "sql": sql,
                        "load_at_start": load,
                    }
                )
        finally:
            counter.close()
            purge_work_queues(broker, [Direction.EXPORT])
            broker.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Rows per second published by Outbox.flush with publisher confirms.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1000], help="pending rows N")
    db_argument(parser)
    common_arguments(parser, repeat=3)
    args = parser.parse_args()
    require_services(args.db)

    note = MachineNote()
    results: list[dict[str, Any]] = []
    for kind in args.db:
        for rows in args.rows:
            results.extend(measure(kind, rows, args.repeat))
    note.finish()

    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["db"], r["rows"]), []).append(r)
    if args.json:
        summary = [
            {
                "db": kind,
                "rows": rows,
                "outbox_rows_per_s": asdict(Spread.of([r["outbox_rows_per_s"] for r in runs])),
                "broker_only_per_s": asdict(Spread.of([r["broker_only_per_s"] for r in runs])),
            }
            for (kind, rows), runs in groups.items()
        ]
        emit_json("publish_rate", note, vars(args), {"summary": summary, "runs": results})
        return

    print(f"# outbox publish rate, {args.repeat} run(s) per row: median (min–max)")
    print(f"# machine: {note.describe()}")
    table = []
    for (kind, rows), runs in groups.items():
        outbox = Spread.of([r["outbox_rows_per_s"] for r in runs])
        broker = Spread.of([r["broker_only_per_s"] for r in runs])
        per_row_ms = Spread.of([r["outbox_s"] * 1000 / rows for r in runs])
        broker_ms = Spread.of([r["broker_only_s"] * 1000 / rows for r in runs])
        table.append(
            [
                kind,
                str(rows),
                outbox.show("{:.0f}"),
                per_row_ms.show("{:.2f}"),
                broker.show("{:.0f}"),
                broker_ms.show("{:.2f}"),
                f"{runs[0]['sql_per_row']:.2f}",
                f"{runs[0]['transactions']}",
                f"{runs[0]['message_bytes']}",
                Spread.of([r["load_at_start"] for r in runs]).show("{:.2f}"),
            ]
        )
    print_table(
        f"Outbox.flush (batches of {BATCH} rows, one commit each) vs. the broker alone",
        [
            "db",
            "rows",
            "outbox rows/s",
            "outbox ms/row",
            "broker-only msg/s",
            "broker-only ms/msg",
            "SQL stmts/row",
            "transactions",
            "msg bytes",
            "load(1m)",
        ],
        table,
    )


if __name__ == "__main__":
    main()
