"""Restore scan: what the first poll of a (re)added export account spends looking at the inbox.

A re-added account, or one whose database was lost, reads the whole Billomat inbox once before
it records anything (``shared.recognition.scan_inbox``, 1,000 documents per call) and takes the
documents an earlier upload put there as synced.  This measures, per inbox size N: the calls
(``ceil(N / 1000)``: the number that matters against 300 calls per 15 minutes), the wall time
of the scan against the simulator over HTTP on this machine, and that every earlier upload was
found.  A tenth of the inbox carries belegsync markers (earlier uploads), the rest is other
people's documents.

Setup per size: the Billomat simulator on a free port with its quota raised, the inbox filled
through the API (``POST /inbox-documents``, not timed).  Each scan is one ``scan_inbox`` call in
this process, timed with ``perf_counter``; the simulator counts the calls.

    .venv/bin/python -m bench.restore_scan [--sizes 1000 5000 20000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.harness import (
    BILLOMAT_ID,
    BILLOMAT_KEY,
    MachineNote,
    Spread,
    common_arguments,
    emit_json,
    print_table,
    progress,
    simulators,
)
from shared.billomat import BillomatClient
from shared.domain import MARKER_KEY, export_marker
from shared.recognition import scan_inbox
from simulators import Simulators

OURS_EVERY = 10  # one inbox document in ten is an earlier belegsync upload


def fill(sims: Simulators, client: BillomatClient, size: int) -> set[str]:
    """``size`` inbox documents; returns the GMI uids of those that carry our marker."""
    ours = set()
    for n in range(size):
        metadata = {}
        if n % OURS_EVERY == 0:
            uid = str(900_000 + n)
            metadata[MARKER_KEY] = export_marker("0a1b2c3d4e5f6a7b", uid)
            ours.add(uid)
        client.create_inbox_document(
            content=b"%%PDF-1.4 inbox %d" % n, filename=f"doc-{n}.pdf", metadata=metadata
        )
        if n and n % 1000 == 0:
            progress(f"  filled {n}/{size}")
    return ours


def measure(size: int, repeat: int) -> dict[str, Any]:
    with simulators() as sims:
        client = BillomatClient(BILLOMAT_ID, BILLOMAT_KEY, url_template=sims.billomat_url_template)
        try:
            progress(f"inbox of {size}: filling")
            ours = fill(sims, client, size)
            seconds, calls = [], []
            for _ in range(repeat):
                sims.billomat.reset_counts()
                started = time.perf_counter()
                scan = scan_inbox(client, before_call=lambda: None)
                seconds.append(time.perf_counter() - started)
                counted = sims.billomat.request_counts(BILLOMAT_ID)
                calls.append(counted.get("GET /api/inbox-documents", 0))
                if set(scan.found) != ours or scan.calls != calls[-1]:
                    raise RuntimeError(f"scan of {size}: found {len(scan.found)} of {len(ours)}")
        finally:
            client.close()
    return {
        "size": size,
        "ours": len(ours),
        "calls": calls,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_arguments(parser, repeat=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    args = parser.parse_args()
    note = MachineNote()
    results = [measure(size, args.repeat) for size in args.sizes]
    note.finish()
    if args.json:
        emit_json("restore_scan", note, {"sizes": args.sizes, "repeat": args.repeat}, results)
        return
    print_table(
        "restore scan: reading the Billomat inbox once (1,000 per call)",
        ["inbox documents", "earlier uploads found", "calls", "seconds (median, range)"],
        [
            [
                f"{r['size']:,}",
                f"{r['ours']:,}",
                str(max(r["calls"])),
                Spread.of(r["seconds"]).show("{:.2f}"),
            ]
            for r in results
        ],
    )
    print(f"\n{note.describe()}")


if __name__ == "__main__":
    main()
