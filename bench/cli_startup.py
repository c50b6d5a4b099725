"""CLI start-up: wall time, CPU and peak RSS of `belegsync … --help`, against `python -c pass`.

Each command runs as a fresh process of this interpreter (the installed `belegsync` console
script when it is next to ``sys.executable``, else ``python -m app.cli``), N times in turn with
the baseline so that machine noise hits every row alike. Wall time is measured around the
child's whole life; CPU (user + system) comes from ``wait4``'s rusage of that one child (its
peak RSS would not: Linux carries this process's size over fork and exec; `consumer_memory`
samples a running consumer instead). The ratio divides a command's median wall time by the
baseline's median.

    .venv/bin/python -m bench.cli_startup [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import MachineNote, Spread, common_arguments, emit_json, print_table, progress

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("accounts", "--help"),
    ("accounts", "add", "export", "--help"),
    ("produce", "--help"),
    ("consume", "--help"),
    ("status", "--help"),
    ("replay", "--help"),
    ("demo", "--help"),
    ("simulate", "--help"),
    ("--version",),
)


def belegsync() -> list[str]:
    script = Path(sys.executable).with_name("belegsync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def one(argv: list[str]) -> dict[str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_arguments(parser, repeat=20)
    args = parser.parse_args()
    note = MachineNote()
    rows: dict[str, list[dict[str, float]]] = {"python -c pass": []}
    runs: list[tuple[str, list[str]]] = [("python -c pass", [sys.executable, "-c", "pass"])]
    for command in COMMANDS:
        label = "belegsync " + " ".join(command)
        rows[label] = []
        runs.append((label, [*belegsync(), *command]))
    for attempt in range(args.repeat):
        progress(f"cli start-up: round {attempt + 1}/{args.repeat}")
        for label, argv in runs:
            rows[label].append(one(argv))
    note.finish()

    baseline = statistics.median(r["wall_s"] for r in rows["python -c pass"])
    summary: list[dict[str, Any]] = []
    for label, results in rows.items():
        wall = Spread.of([r["wall_s"] for r in results])
        summary.append(
            {
                "command": label,
                "wall_ms": wall.median * 1000,
                "ratio": wall.median / baseline,
                "cpu_ms": statistics.median(r["cpu_s"] for r in results) * 1000,
                "wall_spread": [wall.low * 1000, wall.high * 1000],
            }
        )
    if args.json:
        emit_json("cli_startup", note, vars(args), summary)
        return
    print(f"# {args.repeat} runs per command, median (min–max); machine: {note.describe()}")
    print_table(
        "start-up of one CLI process",
        ["command", "wall ms", "× python -c pass", "CPU ms"],
        [
            [
                s["command"],
                f"{s['wall_ms']:.0f} ({s['wall_spread'][0]:.0f}–{s['wall_spread'][1]:.0f})",
                f"{s['ratio']:.1f}",
                f"{s['cpu_ms']:.0f}",
            ]
            for s in summary
        ],
    )


if __name__ == "__main__":
    main()
