"""End-to-end throughput of one direction; ``export_throughput`` and ``import_throughput`` run it.

One run: N documents seeded in the source simulator (quotas raised so no limit is hit), a fresh
ledger and queue prefix, K ``belegsync consume`` processes started and attached to the work queue,
then the clock starts and one ``belegsync produce --once`` process polls and publishes; the clock
stops when the ledger shows all N rows ``synced``. Consumers are then killed (SIGKILL: every
document is synced by then, and their shutdown is not what is measured).

Reported per configuration (median of the runs, range in brackets):

- ``docs/s``: N / (produce start -> last row synced), the number an operator sees.
- ``landing/s``: (N - 1) / (first synced_at -> last synced_at), the consumers' rate once work
  flows (without the producer's process start and poll).
- ``produce s``: wall time of ``produce --once`` (Python start, poll, N confirmed publishes).
- latency: ledger ``detected_at`` -> ``synced_at`` per document, mean and p95. All N documents
  are detected by one poll, so this is mostly time spent waiting in the queue behind the backlog.
- API calls per document on each side, counted by the simulators (the poll's list calls
  included).
- CPU per document: the consumers' after the clock started (their start-up excluded), the
  producer's whole process (its ~1.5 s of imports included), this process's (the simulators,
  plus a cheap ledger watcher), and RabbitMQ's and PostgreSQL's from ``/proc`` — the last two
  machine-wide, so other people's tests on the same services show up there. On two cores,
  consumer CPU per document is what bounds the rate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from bench.harness import (
    BILLOMAT_ID,
    GMI_KEY,
    MachineNote,
    Run,
    ScratchDatabases,
    Spread,
    common_arguments,
    db_argument,
    emit_json,
    load_average,
    own_cpu_seconds,
    percentile,
    print_table,
    process_cpu_seconds,
    progress,
    require_services,
    service_cpu,
    service_cpu_delta,
    simulators,
)
from shared.db import Document
from shared.domain import Direction, DocState
from simulators import Simulators

CPU_USERS = ("consumers", "producer", "simulators", "rabbitmq", "postgresql")


@dataclass
class RunResult:
    db: str
    documents: int
    consumers: int
    total_s: float
    produce_s: float
    landing_window_s: float
    latency_mean_s: float
    latency_p95_s: float
    latency_max_s: float
    gmi_calls: dict[str, int]
    billomat_calls: dict[str, int]
    rate_limited: int
    load_at_start: float
    cpu_s: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.total_s

    @property
    def landing_per_s(self) -> float:
        if self.landing_window_s <= 0:
            return float("nan")
        return (self.documents - 1) / self.landing_window_s

    def cpu_ms_per_doc(self, who: str) -> float:
        return self.cpu_s.get(who, float("nan")) * 1000 / self.documents

    def calls_per_doc(self, side: str) -> float:
        calls = self.gmi_calls if side == "gmi" else self.billomat_calls
        return sum(calls.values()) / self.documents


def seed(sims: Simulators, direction: Direction, n: int, run_tag: str) -> None:
    if direction is Direction.EXPORT:
        for i in range(n):
            sims.gmi.seed_document(
                GMI_KEY,
                document_number=f"{run_tag}-{i:05d}",
                gross_amount="119.00",
                net_amount="100.00",
            )
    else:
        for i in range(n):
            sims.billomat.add_document(BILLOMAT_ID, "invoices", number=f"{run_tag}-{i:05d}")


def delivered(sims: Simulators, direction: Direction) -> int:
    if direction is Direction.EXPORT:
        return len(sims.billomat.inbox(BILLOMAT_ID))
    return len(sims.gmi.documents(GMI_KEY))


def one_run(
    databases: ScratchDatabases, direction: Direction, n: int, k: int, timeout: float
) -> RunResult:
    load = load_average()
    with simulators() as sims, Run(databases, sims) as run:
        seed(sims, direction, n, run.settings.queue_prefix)
        if direction is Direction.EXPORT:
            run.add_export()
        else:
            run.add_import(document_kinds=["invoices"])
        for i in range(k):
            run.spawn("consume", "--direction", direction.value, log_name=f"consumer-{i}.log")
        run.wait_for_consumers(direction, k)
        sims.gmi.reset_counts()
        sims.billomat.reset_counts()

        # A plain engine for watching: the product's SQLite engine takes the write lock
        # (BEGIN IMMEDIATE) even to read, which would slow the consumers being measured.
        watcher = create_engine(run.database_url, poolclass=NullPool)
        synced_query = (
            select(func.count()).select_from(Document).where(Document.state == DocState.SYNCED)
        )

        def synced() -> int:
            with watcher.connect() as conn:
                return int(conn.execute(synced_query).scalar_one())

        services_before = service_cpu()
        own_before = own_cpu_seconds()
        # Consumers have started (imports, connections) by now: count only what follows.
        consumers_before = sum(process_cpu_seconds(p.pid) for p in run.processes)
        started = time.perf_counter()
        produce_s, _ = run.produce_once()
        run.wait_until(
            lambda: synced() >= n, timeout=timeout, what=f"{n} synced documents", every=0.05
        )
        total_s = time.perf_counter() - started
        cpu = service_cpu_delta(services_before, service_cpu())
        cpu["simulators"] = own_cpu_seconds() - own_before
        run.stop_processes(kill=True)
        cpu["producer"] = run.usage["produce"].cpu_s
        cpu["consumers"] = (
            sum(u.cpu_s for name, u in run.usage.items() if name != "produce") - consumers_before
        )

        with watcher.connect() as conn:
            rows = conn.execute(
                select(Document.detected_at, Document.synced_at, Document.state)
            ).all()
        watcher.dispose()
        problems = []
        landed = [r.synced_at for r in rows if r.synced_at is not None]
        latencies = [
            (r.synced_at - r.detected_at).total_seconds() for r in rows if r.synced_at is not None
        ]
        if len(rows) != n or len(landed) != n:
            problems.append(f"ledger: {len(rows)} rows, {len(landed)} synced (expected {n})")
        copies = delivered(sims, direction)
        if copies != n:
            problems.append(f"target holds {copies} documents (expected {n})")
        limited = sims.gmi.rate_limited_count() + sims.billomat.rate_limited_count()
        return RunResult(
            db=databases.kind,
            documents=n,
            consumers=k,
            total_s=total_s,
            produce_s=produce_s,
            landing_window_s=(max(landed) - min(landed)).total_seconds() if landed else 0.0,
            latency_mean_s=statistics.fmean(latencies) if latencies else float("nan"),
            latency_p95_s=percentile(latencies, 95),
            latency_max_s=max(latencies, default=float("nan")),
            gmi_calls=sims.gmi.request_counts(GMI_KEY),
            billomat_calls=sims.billomat.request_counts(BILLOMAT_ID),
            rate_limited=limited,
            load_at_start=load,
            cpu_s=cpu,
            problems=problems,
        )


def main(direction: Direction, doc: str | None) -> None:
    parser = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--documents", type=int, nargs="+", default=[120], help="N per run")
    parser.add_argument(
        "--consumers", type=int, nargs="+", default=[1, 2, 4], help="K consumer processes"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    db_argument(parser)
    common_arguments(parser, repeat=2)
    args = parser.parse_args()
    require_services(args.db)

    note = MachineNote()
    results: list[RunResult] = []
    for kind in args.db:
        with ScratchDatabases(kind) as databases:
            for n in args.documents:
                for k in args.consumers:
                    for attempt in range(args.repeat):
                        progress(
                            f"{direction.value}: {kind}, {n} documents, {k} consumer(s), "
                            f"run {attempt + 1}/{args.repeat} (load {load_average():.2f})"
                        )
                        result = one_run(databases, direction, n, k, args.timeout)
                        for problem in result.problems:
                            progress(f"  PROBLEM: {problem}")
                        results.append(result)
    note.finish()

    groups: dict[tuple[str, int, int], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.db, r.documents, r.consumers), []).append(r)

    if args.json:
        summary = []
        for (kind, n, k), runs in groups.items():
            summary.append(
                {
                    "db": kind,
                    "documents": n,
                    "consumers": k,
                    "docs_per_s": asdict(Spread.of([r.docs_per_s for r in runs])),
                    "landing_per_s": asdict(Spread.of([r.landing_per_s for r in runs])),
                    "latency_mean_s": asdict(Spread.of([r.latency_mean_s for r in runs])),
                    "latency_p95_s": asdict(Spread.of([r.latency_p95_s for r in runs])),
                    "gmi_calls_per_doc": runs[0].calls_per_doc("gmi"),
                    "billomat_calls_per_doc": runs[0].calls_per_doc("billomat"),
                    "cpu_ms_per_doc": {
                        who: statistics.median(r.cpu_ms_per_doc(who) for r in runs)
                        for who in CPU_USERS
                    },
                }
            )
        runs_out: list[dict[str, Any]] = [
            asdict(r) | {"docs_per_s": r.docs_per_s, "landing_per_s": r.landing_per_s}
            for r in results
        ]
        emit_json(
            f"{direction.value}_throughput",
            note,
            vars(args),
            {"summary": summary, "runs": runs_out},
        )
        return

    rows = []
    for (kind, n, k), runs in groups.items():
        rows.append(
            [
                kind,
                str(n),
                str(k),
                Spread.of([r.docs_per_s for r in runs]).show(),
                Spread.of([r.landing_per_s for r in runs]).show(),
                Spread.of([r.produce_s for r in runs]).show("{:.2f}"),
                Spread.of([r.latency_mean_s for r in runs]).show("{:.2f}"),
                Spread.of([r.latency_p95_s for r in runs]).show("{:.2f}"),
                f"{runs[0].calls_per_doc('gmi'):.3f}",
                f"{runs[0].calls_per_doc('billomat'):.3f}",
                str(sum(r.rate_limited for r in runs)),
                Spread.of([r.load_at_start for r in runs]).show("{:.2f}"),
                "; ".join(p for r in runs for p in r.problems) or "ok",
            ]
        )
    print(f"# {direction.value} throughput, {args.repeat} run(s) per row: median (min–max)")
    print(f"# machine: {note.describe()}")
    print_table(
        f"{direction.value}: documents end to end",
        [
            "db",
            "N",
            "K",
            "docs/s",
            "landing/s",
            "produce s",
            "latency mean s",
            "latency p95 s",
            "GMI calls/doc",
            "Billomat calls/doc",
            "429s",
            "load(1m)",
            "check",
        ],
        rows,
    )
    print_table(
        f"{direction.value}: CPU per document in ms (median of runs; rabbitmq/postgresql are "
        "machine-wide and include other users)",
        ["db", "N", "K", *CPU_USERS],
        [
            [
                kind,
                str(n),
                str(k),
                *(
                    Spread.of([r.cpu_ms_per_doc(who) for r in runs]).show("{:.1f}")
                    for who in CPU_USERS
                ),
            ]
            for (kind, n, k), runs in groups.items()
        ],
    )
    first = results[0]
    print("\nAPI calls of the first run, by endpoint:")
    for side, calls in (("GMI", first.gmi_calls), ("Billomat", first.billomat_calls)):
        listed = ", ".join(f"{endpoint} x{count}" for endpoint, count in calls.items())
        print(f"  {side}: {listed or 'none'}")
