"""Recovery cost: Billomat calls and milliseconds to find an earlier upload after a lost answer.

After a lost answer the export consumer searches the inbox (``consumers.recovery.InboxSearch``)
by its marker and, since Billomat may drop or rewrite metadata, by the file: items created since
the attempt began (minus 10 minutes of clock slack) with the same size are fetched and their
bytes compared. This measures what that costs, per variant of the inbox:

- ``--inbox`` old documents (stamped a day ago, so outside the window) of varied sizes;
- ``--crowd`` recent uploads of *the same size* as ours inside the window (other documents that
  came in during the last minutes, the worst case for the byte comparison), then ours;
- ``landed``: our upload is there and must be found; ``not landed``: the attempt never
  reached Billomat and the search has to prove it.

Calls are counted by the simulator (deterministic); milliseconds are the median (range) of
``--repeat`` searches with ``perf_counter``. The simulator runs in this process on a free port;
the ledger is a migrated SQLite file in a temporary directory.

    .venv/bin/python -m bench.recovery_cost [--inbox 2000] [--crowd 0 5 20] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import MachineNote, ShiftedClock, Spread, emit_json, print_table, progress
from consumers.recovery import InboxSearch, SentFile
from shared import migrations
from shared.billomat import BillomatClient
from shared.db import Database
from shared.domain import MARKER_KEY
from shared.findings import Findings
from shared.quota import QuotaBook
from simulators import BillomatSimulator, make_pdf

BILLOMAT_ID, KEY = "bench", "bench-key-0001"
VARIANTS = ("kept", "dropped", "rewritten")


def _same_size(text: str, size: int) -> bytes:
    """A PDF of exactly ``size`` bytes (padding in a comment), distinct by ``text``."""
    base = make_pdf(text, ["x"])
    padding = size - len(base) - 2
    if padding < 0:
        raise ValueError("our document must be larger than the crowd's")
    return base[:-6] + b"%" + b"p" * padding + b"\n" + base[-6:]


def _measure(
    db: Database, variant: str, inbox: int, crowd: int, repeat: int
) -> list[dict[str, Any]]:
    clock = ShiftedClock()
    sim = BillomatSimulator(clock=clock).start()
    try:
        sim.add_tenant(BILLOMAT_ID, KEY, limit=10**6)
        sim.set_options(inbox_metadata=variant)
        client = BillomatClient(BILLOMAT_ID, KEY, url_template=sim.url_template)
        clock.offset = -86400.0  # the old inbox: a day ago
        for n in range(inbox):
            client.create_inbox_document(content=make_pdf(f"old {n}", ["y" * (n % 50)]))
        clock.offset = 0.0
        ours = make_pdf("ours", ["the document whose answer was lost"])
        started = datetime.now(UTC) - timedelta(seconds=1)
        marker = "belegsync:a1:gmi:1"
        sent = SentFile(hashlib.sha256(ours).hexdigest(), len(ours), "ours.pdf", marker)
        # Ours first, the crowd after it: newer same-size items are fetched before ours.
        mine = client.create_inbox_document(
            content=ours, filename="ours.pdf", metadata={MARKER_KEY: marker}
        )
        for n in range(crowd):
            client.create_inbox_document(content=_same_size(f"crowd {n}", len(ours)))
        rows = []
        search = InboxSearch(db, QuotaBook(db), Findings(db))
        for landed in (True, False):
            if not landed:
                client.delete_inbox_document(mine.id)
            times, calls = [], 0
            for _ in range(repeat):
                sim.reset_counts()
                begin = time.perf_counter()
                found = search.find(client, BILLOMAT_ID, 1, sent, started)
                times.append((time.perf_counter() - begin) * 1000)
                calls = sum(sim.request_counts(BILLOMAT_ID).values())
                assert (found is not None) is landed
            rows.append(
                {
                    "variant": variant,
                    "inbox": inbox,
                    "crowd": crowd,
                    "landed": landed,
                    "calls": calls,
                    "ms": Spread.of(times),
                }
            )
        return rows
    finally:
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inbox", type=int, default=2000, help="old inbox documents [2000]")
    parser.add_argument("--crowd", type=int, nargs="+", default=[0, 5, 20],
                        help="same-size uploads in the window [0 5 20]")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5, help="searches per row [5]")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = parser.parse_args()
    note = MachineNote()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        migrations.upgrade(url)
        db = Database(url)
        try:
            for variant in VARIANTS:
                for crowd in args.crowd:
                    progress(f"{variant}, {args.inbox} old + {crowd} same-size recent documents")
                    results += _measure(db, variant, args.inbox, crowd, args.repeat)
        finally:
            db.dispose()
    note.finish()
    if args.json:
        emit_json("recovery_cost", note, vars(args), results)
        return
    print(note.describe())
    print_table(
        "Finding an earlier upload in the Billomat inbox (calls, ms median (range))",
        ["metadata", "old", "same-size recent", "our upload", "Billomat calls", "ms"],
        [
            [
                r["variant"],
                str(r["inbox"]),
                str(r["crowd"]),
                "landed" if r["landed"] else "not landed",
                str(r["calls"]),
                r["ms"].show(),
            ]
            for r in results
        ],
        left=1,
    )


if __name__ == "__main__":
    main()
