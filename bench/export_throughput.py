"""Export throughput end to end: GMI documents -> RabbitMQ -> K consumers -> Billomat inbox.

N documents (default 120) are seeded in the GMI simulator with its per-minute limit raised; one
``belegsync produce --once`` detects and publishes them; K ``belegsync consume`` processes
(default 1, 2, 4; started and attached before the clock starts) move them until the ledger shows
all N synced. Measured for SQLite and PostgreSQL ledgers (a scratch database per run, dropped
afterwards). See ``bench/throughput.py`` for what each column means.

    .venv/bin/python -m bench.export_throughput [--documents 120 1000] [--consumers 1 2 4]
                                                [--db sqlite postgresql] [--repeat 2] [--json]
"""

from __future__ import annotations

from bench.throughput import main
from shared.domain import Direction

if __name__ == "__main__":
    main(Direction.EXPORT, __doc__)
