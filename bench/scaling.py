"""Horizontal scaling: 1 -> 2 -> 4 -> 8 consumer processes on PostgreSQL, quotas off, every API
call answered after ``--latency`` seconds (200 ms).

With the quotas out of the way and each call taking 200 ms, a consumer spends most of a document
waiting for the two APIs (GMI download, Billomat upload: ~0.4 s), so throughput should grow with
the number of consumers until the machine's CPU or the ledger says no.  One run per K: a fresh
ledger (PostgreSQL), ``--per-consumer`` x K export documents (30 x K), K ``belegsync consume``
processes attached first, then ``belegsync produce --once`` polls and releases them all.

Reported per K:

- ``docs/s``: N / (first document detected -> last one synced), producer included;
- ``steady docs/s``: documents landed between the 10th and the 90th percentile of the landing
  times, divided by that span — the rate once every consumer is busy, without the ramp-up and
  the tail;
- ``x linear``: steady docs/s over K x the steady docs/s of K = 1 (1.0 = perfectly linear);
- API calls per document, 429s (should be none: quotas are off), and the machine's load.
"""

from __future__ import annotations

import argparse
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
    emit_json,
    load_average,
    percentile,
    print_table,
    progress,
    require_services,
    simulators,
)
from shared.db import Document
from shared.domain import Direction, DocState


@dataclass
class Point:
    consumers: int
    documents: int
    total_s: float
    steady_per_s: float
    gmi_calls: int
    billomat_calls: int
    refusals: int
    load_start: float
    load_end: float
    problems: list[str] = field(default_factory=list)

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.total_s


def one_run(databases: ScratchDatabases, k: int, n: int, latency: float, timeout: float) -> Point:
    load_start = load_average()
    with simulators() as sims, Run(databases, sims, billomat_calls_per_window=100_000) as run:
        tag = run.settings.queue_prefix
        for i in range(n):
            sims.gmi.seed_document(GMI_KEY, document_number=f"{tag}-{i:05d}")
        run.add_export()
        for i in range(k):
            run.spawn("consume", "--direction", "export", log_name=f"consumer-{i}.log")
        run.wait_for_consumers(Direction.EXPORT, k)
        sims.gmi.reset_counts()
        sims.billomat.reset_counts()
        for simulator in (sims.gmi, sims.billomat):
            simulator.set_faults(latency=latency)
        watcher = create_engine(run.database_url, poolclass=NullPool)
        synced = select(func.count()).select_from(Document).where(Document.state == DocState.SYNCED)

        def done() -> bool:
            with watcher.connect() as conn:
                return int(conn.execute(synced).scalar_one()) >= n

        run.produce_once(timeout=timeout)
        run.wait_until(done, timeout=timeout, what=f"{n} synced", every=0.1)
        with watcher.connect() as conn:
            rows = conn.execute(select(Document.detected_at, Document.synced_at)).all()
        watcher.dispose()
        run.stop_processes(kill=True)
        landed = sorted(r.synced_at.timestamp() for r in rows if r.synced_at is not None)
        first_detected = min(r.detected_at.timestamp() for r in rows)
        low, high = percentile(landed, 10), percentile(landed, 90)
        steady = sum(1 for t in landed if low <= t <= high)
        point = Point(
            consumers=k,
            documents=n,
            total_s=landed[-1] - first_detected,
            steady_per_s=(steady - 1) / (high - low) if high > low else float("nan"),
            gmi_calls=sum(sims.gmi.request_counts(GMI_KEY).values()),
            billomat_calls=sum(sims.billomat.request_counts(BILLOMAT_ID).values()),
            refusals=sims.gmi.rate_limited_count() + sims.billomat.rate_limited_count(),
            load_start=load_start,
            load_end=load_average(),
        )
        if len(landed) != n:
            point.problems.append(f"{len(landed)} of {n} synced")
        if len(sims.billomat.inbox(BILLOMAT_ID)) != n:
            point.problems.append("the inbox does not hold exactly N documents")
        return point


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--per-consumer", type=int, default=30, help="documents per consumer")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per API call")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run at most")
    common_arguments(parser, repeat=1)
    args = parser.parse_args()
    require_services(["postgresql"])
    note = MachineNote()
    points: list[Point] = []
    with ScratchDatabases("postgresql") as databases:
        for attempt in range(args.repeat):
            for k in args.consumers:
                n = args.per_consumer * k
                progress(
                    f"{k} consumer(s), {n} documents, run {attempt + 1}/{args.repeat} "
                    f"(load {load_average():.2f})"
                )
                point = one_run(databases, k, n, args.latency, args.timeout)
                for problem in point.problems:
                    progress(f"  PROBLEM: {problem}")
                points.append(point)
                time.sleep(1)
    note.finish()
    by_k: dict[int, list[Point]] = {}
    for point in points:
        by_k.setdefault(point.consumers, []).append(point)
    base = Spread.of([p.steady_per_s for p in by_k.get(1, [])]).median
    if args.json:
        data: dict[str, Any] = {"runs": [asdict(p) | {"docs_per_s": p.docs_per_s} for p in points]}
        emit_json("scaling", note, vars(args), data)
        return
    print(f"# scaling: PostgreSQL, quotas off, {args.latency * 1000:.0f} ms per API call")
    print(f"# machine: {note.describe()}")
    rows = []
    for k, runs in by_k.items():
        steady = Spread.of([p.steady_per_s for p in runs])
        rows.append(
            [
                str(k),
                str(runs[0].documents),
                Spread.of([p.docs_per_s for p in runs]).show("{:.2f}"),
                steady.show("{:.2f}"),
                f"{steady.median / (k * base):.2f}" if base == base and base > 0 else "-",
                f"{runs[0].gmi_calls / runs[0].documents:.3f}",
                f"{runs[0].billomat_calls / runs[0].documents:.3f}",
                str(sum(p.refusals for p in runs)),
                f"{runs[0].load_start:.1f}-{runs[-1].load_end:.1f}",
                "; ".join(q for p in runs for q in p.problems) or "ok",
            ]
        )
    print_table(
        "consumer processes vs throughput",
        [
            "K",
            "N",
            "docs/s",
            "steady docs/s",
            "x linear",
            "GMI calls/doc",
            "Billomat calls/doc",
            "429s",
            "load(1m)",
            "check",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
