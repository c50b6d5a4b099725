"""Ledger cost per document: transactions, SQL statements and connections a consumer spends.

N documents (default 100) are seeded and published by one ``produce --once``; then a consumer
built by ``app.bootstrap.build_consumer`` runs in this process's main thread until the queue
is empty (``idle_exit``), with SQLAlchemy event listeners on its engine counting:

- ``transactions``: ``BEGIN`` s (each ``Database.session()`` is one),
- ``statements``: SQL sent through SQLAlchemy (an executemany counts once; the advisory-lock
  calls on PostgreSQL included),
- ``connects``: new DB-API connections (SQLite uses ``NullPool``: one per transaction, each
  followed by 3 PRAGMAs not counted above),
- ``checkouts``: pool checkouts (PostgreSQL's ``pool_pre_ping`` adds a ``SELECT 1`` round
  trip to each, not counted above),

plus the API calls the simulators saw and the consumer thread's CPU time (``thread_time``:
the simulators' threads in this process are excluded). Everything is divided by N.

    .venv/bin/python -m bench.ledger_cost [--documents 100] [--direction export import]
                                          [--db sqlite postgresql] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict
from typing import Any

from app import bootstrap
from bench.harness import (
    BILLOMAT_ID,
    GMI_KEY,
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
    require_services,
    simulators,
)
from bench.throughput import seed
from shared.domain import Direction


def one_run(databases: ScratchDatabases, direction: Direction, n: int) -> dict[str, Any]:
    load = load_average()
    with simulators() as sims, Run(databases, sims) as run:
        seed(sims, direction, n, run.settings.queue_prefix)
        if direction is Direction.EXPORT:
            run.add_export()
        else:
            run.add_import(document_kinds=["invoices"])
        run.produce_once()
        sims.gmi.reset_counts()
        sims.billomat.reset_counts()
        consumer = bootstrap.build_consumer(run.settings, run.db, run.box, None)
        counter = SqlCounter(run.db.engine)
        consumer.broker.connect(retries=3)
        try:
            cpu = time.thread_time()
            started = time.perf_counter()
            consumer.run([direction], idle_exit=1.0)
            # The idle wait at the end is not work: take it off the wall time.
            wall = time.perf_counter() - started - 1.0
            cpu = time.thread_time() - cpu
        finally:
            consumer.broker.close()
            consumer.clients.close()
            consumer.locks.close()
            counter.close()
        if consumer.handled != n:
            raise RuntimeError(f"the consumer handled {consumer.handled} of {n} messages")
        sql = counter.snapshot()
        return {
            "db": databases.kind,
            "direction": direction.value,
            "documents": n,
            "transactions": sql["transactions"] / n,
            "statements": sql["statements"] / n,
            "connects": sql["connects"] / n,
            "checkouts": sql["checkouts"] / n,
            "verbs_per_doc": {verb: count / n for verb, count in sql["verbs"].items()},
            "gmi_calls": sum(sims.gmi.request_counts(GMI_KEY).values()) / n,
            "billomat_calls": sum(sims.billomat.request_counts(BILLOMAT_ID).values()) / n,
            "cpu_ms": cpu * 1000 / n,
            "wall_ms": wall * 1000 / n,
            "load_at_start": load,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Database work a consumer does per document.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--documents", type=int, default=100, help="documents per run (N)")
    parser.add_argument(
        "--direction",
        nargs="+",
        choices=[d.value for d in Direction],
        default=[d.value for d in Direction],
    )
    db_argument(parser)
    common_arguments(parser, repeat=3)
    args = parser.parse_args()
    require_services(args.db)

    note = MachineNote()
    results: list[dict[str, Any]] = []
    for kind in args.db:
        with ScratchDatabases(kind) as databases:
            for name in args.direction:
                for attempt in range(args.repeat):
                    progress(f"ledger: {kind}, {name}, run {attempt + 1}/{args.repeat}")
                    results.append(one_run(databases, Direction(name), args.documents))
    note.finish()

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["direction"], r["db"]), []).append(r)
    if args.json:
        summary = [
            {
                "direction": name,
                "db": kind,
                "cpu_ms_per_doc": asdict(Spread.of([r["cpu_ms"] for r in runs])),
                "wall_ms_per_doc": asdict(Spread.of([r["wall_ms"] for r in runs])),
                "transactions_per_doc": runs[0]["transactions"],
                "statements_per_doc": runs[0]["statements"],
                "verbs_per_doc": runs[0]["verbs_per_doc"],
            }
            for (name, kind), runs in groups.items()
        ]
        emit_json("ledger_cost", note, vars(args), {"summary": summary, "runs": results})
        return

    print(f"# consumer ledger cost per document, {args.documents} documents per run")
    print(f"# machine: {note.describe()}")
    table = []
    for (name, kind), runs in groups.items():
        first = runs[0]
        table.append(
            [
                name,
                kind,
                f"{first['transactions']:.1f}",
                f"{first['statements']:.1f}",
                f"{first['connects']:.1f}",
                f"{first['checkouts']:.1f}",
                f"{first['gmi_calls'] + first['billomat_calls']:.1f}",
                Spread.of([r["cpu_ms"] for r in runs]).show("{:.1f}"),
                Spread.of([r["wall_ms"] for r in runs]).show("{:.1f}"),
                f"{statistics.median(r['load_at_start'] for r in runs):.2f}",
            ]
        )
    print_table(
        "per document (counts are from the first run; they do not vary)",
        [
            "direction",
            "db",
            "transactions",
            "SQL stmts",
            "new conns",
            "checkouts",
            "API calls",
            "consumer CPU ms",
            "wall ms",
            "load(1m)",
        ],
        table,
        left=2,
    )
    print("\nSQL statements per document by verb (BEGIN is explicit only on SQLite):")
    for (name, kind), runs in groups.items():
        verbs = ", ".join(f"{v} {c:.1f}" for v, c in runs[0]["verbs_per_doc"].items() if c >= 0.05)
        print(f"  {name:<6} {kind:<10}  {verbs}")


if __name__ == "__main__":
    main()
