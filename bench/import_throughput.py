"""Import throughput end to end: Billomat invoices -> RabbitMQ -> K consumers -> GMI uploads.

N finished invoices (default 120) are added to the Billomat simulator with its quota raised
(``add_tenant(..., limit=100000)``) and GMI's upload limit raised; one ``belegsync produce
--once`` lists and publishes them; K ``belegsync consume`` processes (default 1, 2, 4) download
each PDF and upload it to GMI until the ledger shows all N synced. Measured for SQLite and
PostgreSQL ledgers. See ``bench/throughput.py`` for what each column means.

    .venv/bin/python -m bench.import_throughput [--documents 120 1000] [--consumers 1 2 4]
                                                [--db sqlite postgresql] [--repeat 2] [--json]
"""

from __future__ import annotations

from bench.throughput import main
from shared.domain import Direction

if __name__ == "__main__":
    main(Direction.IMPORT, __doc__)
