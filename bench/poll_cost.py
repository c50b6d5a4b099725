"""Poll cost: API calls, milliseconds and SQL of one poll when 1,000 documents are already known.

Setup per ledger database: 1,000 documents in GMI, stamped two hours ago, and 1,000 finished
invoices in Billomat; an export
and an import account (default kinds: invoices, credit notes). A first poll of each account
records and publishes all of them (timed too: "first poll"); then every row is marked synced
and the queues are purged. Then, ``--polls`` times each (default 10):

- ``export idle``: an ordinary export poll with its cursor — GMI is asked for changes since the
  last poll minus two minutes; nothing has changed.
- ``export re-list``: the export cursor is cleared before each poll: all 1,000 are listed and
  compared with the ledger. An ordinary poll costs the same for every document changed in the
  last ~62 minutes: the client sends the cursor minus 2 minutes in UTC and GMI (like the
  simulator) reads it as Berlin time, one hour earlier in winter (``shared/gmi.py:
  format_since`` widens the window on purpose). That is why the documents are stamped two
  hours back: seeded "now", even the idle poll lists all of them.
- ``import idle``: an ordinary import poll. Billomat has no "changed since" filter; the poller
  lists each kind from its cursor date minus 31 days, so every invoice of the last month is
  listed again and compared with the ledger on every poll.

Each poll is ``Producer.claim`` + ``Producer.poll_account`` in this process (poll, outbox
flush, bookkeeping), timed with ``perf_counter``; API calls are counted by the simulators, SQL
by SQLAlchemy events on the producer's engine (an executemany counts once).

    .venv/bin/python -m bench.poll_cost [--known 1000] [--polls 10] [--db sqlite postgresql]
                                        [--json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from app import bootstrap
from bench.harness import (
    BILLOMAT_ID,
    GMI_KEY,
    MachineNote,
    Run,
    ScratchDatabases,
    ShiftedClock,
    Spread,
    SqlCounter,
    db_argument,
    emit_json,
    load_average,
    percentile,
    print_table,
    progress,
    purge_work_queues,
    require_services,
    simulators,
)
from producers.scheduler import Producer
from shared.db import Document, PollState
from shared.domain import DocState
from simulators import Simulators


def seed(sims: Simulators, clock: ShiftedClock, known: int) -> None:
    clock.offset = -7200.0
    for i in range(known):
        sims.gmi.seed_document(GMI_KEY, document_number=f"K-{i:05d}")
    clock.offset = 0.0
    for i in range(known):
        sims.billomat.add_document(BILLOMAT_ID, "invoices", number=f"RE-{i:05d}")


def mark_all_synced(run: Run) -> None:
    now = datetime.now(UTC)
    with run.db.session() as session:
        session.execute(
            update(Document).values(
                state=DocState.SYNCED.value, synced_at=now, target_id=Document.source_id
            )
        )


def clear_cursor(run: Run, account_id: int) -> None:
    with run.db.session() as session:
        session.execute(
            update(PollState).where(PollState.account_id == account_id).values(cursor={})
        )


def one_poll(
    producer: Producer, sims: Simulators, counter: SqlCounter, account_id: int
) -> dict[str, Any]:
    sims.gmi.reset_counts()
    sims.billomat.reset_counts()
    counter.reset()
    started = time.perf_counter()
    if not producer.claim(account_id, datetime.now(UTC)):
        raise RuntimeError("could not claim the poll")
    report = producer.poll_account(account_id)
    ms = (time.perf_counter() - started) * 1000
    if report.result != "ok":
        raise RuntimeError(f"poll failed: {report.result} {report.error}")
    sql = counter.snapshot()
    return {
        "ms": ms,
        "listed": report.listed,
        "new": report.new,
        "published": report.published,
        "gmi_calls": sum(sims.gmi.request_counts(GMI_KEY).values()),
        "billomat_calls": sum(sims.billomat.request_counts(BILLOMAT_ID).values()),
        "statements": sql["statements"],
        "transactions": sql["transactions"],
        "connects": sql["connects"],
    }


def measure(kind: str, known: int, polls: int) -> list[dict[str, Any]]:
    clock = ShiftedClock()
    rows: list[dict[str, Any]] = []
    with (
        ScratchDatabases(kind) as databases,
        simulators(gmi_clock=clock) as sims,
        Run(databases, sims) as run,
    ):
        progress(f"poll: {kind}, seeding {known} documents on each side")
        seed(sims, clock, known)
        export_id = run.add_export()
        import_id = run.add_import()
        producer = bootstrap.build_producer(run.settings, run.db, run.box, None)
        producer.broker.connect(retries=3)
        counter = SqlCounter(run.db.engine)
        try:
            for label, account_id in (("export", export_id), ("import", import_id)):
                first = one_poll(producer, sims, counter, account_id)
                rows.append({"scenario": f"{label} first poll", "db": kind, **first})
            mark_all_synced(run)
            purge_work_queues(producer.broker)
            scenarios = (
                ("export idle", export_id, False),
                ("export re-list", export_id, True),
                ("import idle", import_id, False),
            )
            for label, account_id, relist in scenarios:
                progress(f"poll: {kind}, {label} x{polls} (load {load_average():.2f})")
                for _ in range(polls):
                    if relist:
                        clear_cursor(run, account_id)
                    rows.append(
                        {"scenario": label, "db": kind}
                        | one_poll(producer, sims, counter, account_id)
                        | {"load": load_average()}
                    )
        finally:
            counter.close()
            producer.broker.close()
            producer.clients.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description="API calls and milliseconds of idle polls with many known documents.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--known", type=int, default=1000, help="documents known on each side")
    parser.add_argument("--polls", type=int, default=10, help="polls per scenario")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    db_argument(parser)
    args = parser.parse_args()
    require_services(args.db)

    note = MachineNote()
    results: list[dict[str, Any]] = []
    for kind in args.db:
        results.extend(measure(kind, args.known, args.polls))
    note.finish()

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["db"]), []).append(r)
    if args.json:
        summary = [
            {
                "scenario": scenario,
                "db": kind,
                "ms": asdict(Spread.of([r["ms"] for r in runs])),
                "ms_p95": percentile([r["ms"] for r in runs], 95),
                "gmi_calls": statistics.median(r["gmi_calls"] for r in runs),
                "billomat_calls": statistics.median(r["billomat_calls"] for r in runs),
                "statements": statistics.median(r["statements"] for r in runs),
            }
            for (scenario, kind), runs in groups.items()
        ]
        emit_json("poll_cost", note, vars(args), {"summary": summary, "polls": results})
        return

    print(f"# poll cost with {args.known} known documents per side: median (min–max) of polls")
    print(f"# machine: {note.describe()}")
    table = []
    for (scenario, kind), runs in sorted(groups.items()):
        ms = [r["ms"] for r in runs]
        table.append(
            [
                scenario,
                kind,
                str(len(runs)),
                f"{statistics.median(r['listed'] for r in runs):.0f}",
                f"{statistics.median(r['gmi_calls'] for r in runs):.0f}",
                f"{statistics.median(r['billomat_calls'] for r in runs):.0f}",
                Spread.of(ms).show("{:.0f}"),
                f"{percentile(ms, 95):.0f}",
                f"{statistics.median(r['statements'] for r in runs):.0f}",
                f"{statistics.median(r['transactions'] for r in runs):.0f}",
            ]
        )
    print_table(
        "one poll (claim + poll + outbox flush + bookkeeping)",
        [
            "scenario",
            "db",
            "polls",
            "listed",
            "GMI calls",
            "Billomat calls",
            "ms",
            "p95 ms",
            "SQL stmts",
            "transactions",
        ],
        table,
        left=2,
    )


if __name__ == "__main__":
    main()
