"""Web console pages over a big ledger: server-side render time as a browser would see it.

A fresh migrated ledger gets N documents (default 100,000) spread over 10 sync accounts (90 %
synced, the rest pending, retrying, parked for one of three reasons, skipped), inserted in bulk
and ANALYZEd.  The console runs in this process on uvicorn (a free port), one user logs in,
and each page is fetched ``--requests`` times in turn after one warm-up fetch; the time is the
whole HTTP round trip over loopback (``requests``), i.e. routing, session lookup, queries,
Jinja2 rendering and the socket.  Median, p95 and range per page are printed.

    .venv/bin/python -m bench.web_pages [--db postgresql sqlite] [--documents 100000]
                                        [--requests 30] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests
from sqlalchemy import insert, select, text

from bench.harness import (
    MachineNote,
    ScratchDatabases,
    Spread,
    db_argument,
    emit_json,
    percentile,
    print_table,
    progress,
)
from shared.db import Database, Document, SyncAccount

ACCOUNTS = 10
USER, PASSWORD = "bench", "bench password 123"
REASONS = (
    "billomat HTTP 400: bad request: unsupported file (POST /inbox-documents)",
    "gmi HTTP 422 code 127: a document with identical content exists",
    "billomat HTTP 413: file too large",
)


def seed(db: Database, documents: int) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        ids = []
        for n in range(ACCOUNTS):
            direction = "export" if n % 2 == 0 else "import"
            account = SyncAccount(
                name=f"bench-{direction}-{n:02d}", direction=direction, enabled=n != 9,
                gmi_api_key_enc="-", billomat_id=f"tenant{n}", billomat_api_key_enc="-",
                interval_seconds=900, note="", document_types=[], tags=[],
                require_approval=False, archive_after_transfer=False, default_tags=[],
                document_kinds=[],
            )  # fmt: skip
            session.add(account)
            session.flush()
            ids.append(account.id)
    batch: list[dict[str, Any]] = []
    for n in range(documents):
        roll = n % 100
        state = (
            "synced" if roll < 90 else "pending" if roll < 94 else "retrying" if roll < 96
            else "parked" if roll < 98 else "skipped"
        )  # fmt: skip
        account = n % ACCOUNTS
        batch.append(
            {
                "account_id": ids[account],
                "source_system": "gmi" if account % 2 == 0 else "billomat",
                "source_kind": "documents" if account % 2 == 0 else "invoices",
                "source_id": str(100_000 + n),
                "document_type": "INCOMING_INVOICE",
                "document_number": f"RE-{n:06d}",
                "document_date": date(2026, 1, 1) + timedelta(days=n % 300),
                "state": state,
                "target_id": str(900_000 + n) if state == "synced" else None,
                "attempts": 1 if state != "pending" else 0,
                "error_class": "permanent" if state == "parked" else None,
                "last_error": REASONS[n % 3] if state == "parked" else None,
                "detected_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
        if len(batch) == 5000:
            with db.session() as session:
                session.execute(insert(Document), batch)
            batch = []
    if batch:
        with db.session() as session:
            session.execute(insert(Document), batch)
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def measure(kind: str, documents: int, repeat: int) -> list[dict[str, Any]]:
    from cryptography.fernet import Fernet

    from app.users import UserService
    from app.web.app import build_console, create_app
    from app.web.server import ServerThread
    from shared.crypto import SecretBox
    from shared.metrics import Metrics
    from shared.settings import Settings

    with ScratchDatabases(kind) as databases:
        url = databases.new()
        db = Database(url)
        try:
            progress(f"web pages [{kind}]: seeding {documents:,} ledger rows")
            started = time.perf_counter()
            seed(db, documents)
            progress(f"web pages [{kind}]: seeded in {time.perf_counter() - started:.1f} s")
            key = Fernet.generate_key().decode()
            settings = Settings(database_url=url, secret_key=key)
            console = build_console(settings, db, SecretBox(key), key, Metrics(role="web"))
            UserService(db).add(USER, PASSWORD)
            with db.session() as session:
                middle = session.scalar(
                    select(Document.id).order_by(Document.id).offset(documents // 2).limit(1)
                )
                parked = session.scalar(
                    select(Document.id).where(Document.state == "parked").limit(1)
                )
            pages = {
                "overview": "/",
                "overview (refresh fragment)": "/?fragment=1",
                "documents, first page": "/documents",
                "documents, account + state": "/documents?account=bench-export-04&state=synced",
                "documents, page in the middle": f"/documents?after={middle}",
                "documents, search number": "/documents?q=RE-04711",
                "document with history": f"/documents/{parked}",
                "failed / parked": "/failed",
            }
            server = ServerThread(create_app(console), name="bench-web")
            port = server.start("127.0.0.1", 0)
            try:
                return _fetch(f"http://127.0.0.1:{port}", pages, repeat, kind)
            finally:
                server.stop()
        finally:
            db.dispose()


def _fetch(origin: str, pages: dict[str, str], repeat: int, kind: str) -> list[dict[str, Any]]:
    import re

    session = requests.Session()
    login = session.get(origin + "/login", timeout=30).text
    match = re.search(r'name="csrf" value="([^"]+)"', login)
    assert match is not None
    answer = session.post(
        origin + "/login",
        data={"csrf": match.group(1), "name": USER, "password": PASSWORD},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    assert answer.status_code == 303, answer.text[:200]
    times: dict[str, list[float]] = {label: [] for label in pages}
    sizes: dict[str, int] = {}
    for label, path in pages.items():  # warm-up: template compilation, connection pool
        response = session.get(origin + path, timeout=60)
        response.raise_for_status()
        sizes[label] = len(response.content)
    for attempt in range(repeat):
        if attempt % 10 == 0:
            progress(f"web pages [{kind}]: round {attempt + 1}/{repeat}")
        for label, path in pages.items():
            started = time.perf_counter()
            response = session.get(origin + path, timeout=60)
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            times[label].append(elapsed * 1000)
    return [
        {
            "db": kind,
            "page": label,
            "path": pages[label],
            "median_ms": statistics.median(values),
            "p95_ms": percentile(values, 95),
            "min_ms": min(values),
            "max_ms": max(values),
            "bytes": sizes[label],
            "n": len(values),
        }
        for label, values in times.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    db_argument(parser)
    parser.add_argument("--documents", type=int, default=100_000, help="ledger rows [100000]")
    parser.add_argument("--requests", type=int, default=30, help="fetches per page [30]")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.set_defaults(db=["postgresql"])
    args = parser.parse_args()
    note = MachineNote()
    results: list[dict[str, Any]] = []
    for kind in args.db:
        results += measure(kind, args.documents, args.requests)
    note.finish()
    if args.json:
        emit_json("web_pages", note, vars(args), results)
        return
    print(f"# web_pages: {args.documents:,} ledger rows, {args.requests} fetches per page")
    print(f"# {note.describe()}")
    print_table(
        "server round trip per page (ms)",
        ["db", "page", "median", "p95", "range", "KiB"],
        [
            [
                r["db"], r["page"], f"{r['median_ms']:.1f}", f"{r['p95_ms']:.1f}",
                Spread(r["median_ms"], r["min_ms"], r["max_ms"], r["n"]).show().split(" ", 1)[-1],
                f"{r['bytes'] / 1024:.1f}",
            ]
            for r in results
        ],
        left=2,
    )  # fmt: skip


if __name__ == "__main__":
    main()
