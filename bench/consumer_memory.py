"""Memory: peak RSS of one consumer process while it moves a few large PDFs.

Per run: M documents (default 3) of a given size are seeded in the source simulator, one
``belegsync produce --once`` publishes them, then one ``belegsync consume --direction <d>
--idle-exit 1`` process moves them and exits. Its peak resident set size is the last
``VmHWM`` read from ``/proc/<pid>/status`` (sampled every 20 ms while it runs; ``wait4``'s
``ru_maxrss`` would include this process's size, which Linux carries over fork and exec). Rows:

- ``idle``: no documents at all — the process's fixed cost (interpreter, imports, connections).
- ``small``: M documents of ~1 KB — the per-message machinery without large payloads.
- ``<n> MB``: M documents of n MB each (default 5).

Export moves GMI → Billomat inbox (GMI's answer carries the file as base64 in JSON; the inbox
upload sends it as base64 in JSON and Billomat echoes it back); import moves a Billomat PDF →
GMI upload (raw PDF bytes in, base64 in JSON out). "extra" is the peak above ``idle``; "copies"
divides it by the file size: about how many copies of one document are alive at the peak.
The ledger is SQLite (the database does not hold the files).

    .venv/bin/python -m bench.consumer_memory [--mb 5] [--documents 3] [--repeat 3]
                                              [--direction export import] [--json]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select

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
    print_table,
    progress,
    require_services,
    simulators,
)
from shared.db import Document
from shared.domain import Direction, DocState
from simulators import Simulators, make_pdf

MIB = 1024 * 1024


def seed(sims: Simulators, direction: Direction, count: int, size: int, tag: str) -> None:
    for i in range(count):
        content = make_pdf(f"{tag} {i}", min_size=size) if size else None
        if direction is Direction.EXPORT:
            sims.gmi.seed_document(GMI_KEY, document_number=f"{tag}-{i}", content=content)
        else:
            sims.billomat.add_document(
                BILLOMAT_ID, "invoices", number=f"{tag}-{i}", content=content
            )


def one_run(
    databases: ScratchDatabases, direction: Direction, count: int, size: int
) -> dict[str, Any]:
    load = load_average()
    with simulators() as sims, Run(databases, sims) as run:
        seed(sims, direction, count, size, run.settings.queue_prefix)
        if direction is Direction.EXPORT:
            run.add_export()
        else:
            run.add_import(document_kinds=["invoices"])
        if count:
            run.produce_once()
        consumer = run.spawn(
            "consume", "--direction", direction.value, "--idle-exit", "1", log_name="consumer.log"
        )
        usage = run.wait_for(consumer, timeout=300)
        with run.db.session() as session:
            synced = session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.state == DocState.SYNCED.value)
            )
        if usage.exit_code != 0 or synced != count:
            raise RuntimeError(
                f"consumer exit {usage.exit_code}, {synced}/{count} synced; "
                f"log:\n{run.log_text('consumer.log')[-2000:]}"
            )
        return {
            "direction": direction.value,
            "documents": count,
            "file_bytes": size,
            "peak_rss_mib": usage.peak_rss_kib / 1024,
            "cpu_s": usage.cpu_s,
            "load_at_start": load,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Peak RSS of a consumer moving large PDFs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--mb", type=float, default=5.0, help="size of the large documents")
    parser.add_argument("--documents", type=int, default=3, help="documents per run (M)")
    parser.add_argument(
        "--direction",
        nargs="+",
        choices=[d.value for d in Direction],
        default=[d.value for d in Direction],
    )
    common_arguments(parser, repeat=3)
    args = parser.parse_args()
    require_services(["sqlite"])

    large = int(args.mb * MIB)
    cases = (
        ("idle", 0, 0),
        ("small", args.documents, 0),
        (f"{args.mb:g} MB", args.documents, large),
    )
    note = MachineNote()
    results: list[dict[str, Any]] = []
    with ScratchDatabases("sqlite") as databases:
        for name in args.direction:
            direction = Direction(name)
            for label, count, size in cases:
                for attempt in range(args.repeat):
                    progress(f"memory: {name}, {label}, run {attempt + 1}/{args.repeat}")
                    result = one_run(databases, direction, count, size)
                    results.append(result | {"case": label})
    note.finish()

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["direction"], r["case"]), []).append(r)
    idle = {
        name: statistics.median(r["peak_rss_mib"] for r in groups[(name, "idle")])
        for name in args.direction
    }
    if args.json:
        summary = [
            {
                "direction": name,
                "case": label,
                "peak_rss_mib": asdict(Spread.of([r["peak_rss_mib"] for r in runs])),
                "extra_mib": statistics.median(r["peak_rss_mib"] for r in runs) - idle[name],
            }
            for (name, label), runs in groups.items()
        ]
        emit_json("consumer_memory", note, vars(args), {"summary": summary, "runs": results})
        return

    print(f"# consumer peak RSS, {args.repeat} run(s) per row: median (min–max)")
    print(f"# machine: {note.describe()}")
    table = []
    for (name, label), runs in groups.items():
        peak = Spread.of([r["peak_rss_mib"] for r in runs])
        extra = peak.median - idle[name]
        size_mib = runs[0]["file_bytes"] / MIB
        table.append(
            [
                name,
                label,
                str(runs[0]["documents"]),
                peak.show("{:.1f}"),
                f"{extra:+.1f}" if label != "idle" else "-",
                f"{extra / size_mib:.1f}" if size_mib else "-",
                Spread.of([r["cpu_s"] for r in runs]).show("{:.2f}"),
                Spread.of([r["load_at_start"] for r in runs]).show("{:.2f}"),
            ]
        )
    print_table(
        "one consumer process, peak resident memory",
        ["direction", "case", "docs", "peak RSS MiB", "extra MiB", "copies", "CPU s", "load(1m)"],
        table,
        left=2,
    )


if __name__ == "__main__":
    main()
