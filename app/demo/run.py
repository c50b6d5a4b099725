"""The whole demo: set up, run the rounds, report, clean up."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any

from app.demo.checks import export_rows, find_problems, import_rows, simulator_state
from app.demo.fleet import Fleet
from app.demo.model import (
    BILLOMAT_ID,
    EXPORT_ACCOUNT,
    EXPORT_TYPES,
    IMPORT_ACCOUNT,
    IMPORT_COMPANY,
    IMPORT_TAGS,
    DemoError,
    DemoOptions,
    DemoReport,
    DemoView,
    RoundResult,
)
from app.demo.rounds import expected_synced, make_later_changes, run_round
from app.demo.sandbox import (
    Sandbox,
    Teardown,
    create_sandbox,
    delete_topology,
    new_queue_prefix,
    open_broker,
)
from app.status import overview
from shared.accounts import AccountService
from shared.broker import Broker
from shared.domain import Direction

# ---------------------------------------------------------------------------------------------
# The whole demo


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C does (only the main thread may set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(options: DemoOptions, view: DemoView) -> DemoReport:
    """Set up, run, report, clean up; DemoError when the demo cannot run or fails on the way.

    Ctrl-C and SIGTERM clean up too, and end in a DemoError that says so.
    """
    clock = time.monotonic()
    broker = open_broker(options.broker_url, new_queue_prefix())
    teardown = Teardown()
    teardown.add(
        f"deleted the queues and exchanges {broker.topology.prefix}.*", delete_topology, broker
    )
    try:
        with interruptible():
            try:
                report = _run(options, view, teardown, broker, clock)
            finally:
                teardown.run()
    except KeyboardInterrupt:
        raise DemoError(
            f"interrupted after {time.monotonic() - clock:.1f}s; cleaned up: "
            + "; ".join(teardown.done)
        ) from None
    report.cleanup = list(teardown.done)
    report.seconds["total"] = round(time.monotonic() - clock, 2)
    return report


def _run(
    options: DemoOptions, view: DemoView, teardown: Teardown, broker: Broker, clock: float
) -> DemoReport:
    sandbox = create_sandbox(teardown, broker, options.keep)
    describe_sandbox(sandbox, broker, view)
    fleet = Fleet(sandbox.settings, sandbox.root)
    teardown.add("stopped the producer and the consumers", fleet.stop)
    seconds = {"setup": round(time.monotonic() - clock, 2)}

    expected = expected_synced(sandbox)
    fleet.start_consumers(options.consumers)
    first = f"first sync: {options.consumers} consumers, one producer poll"
    rounds = [run_round(sandbox, fleet, view, "first_sync", first, expected, options.timeout)]
    changes: dict[str, list[dict[str, Any]]] = {"approved_in_gmi": [], "finished_in_billomat": []}
    if options.later_changes:
        changes = make_later_changes(sandbox)
        expected = {
            Direction.EXPORT: expected[Direction.EXPORT] + len(changes["approved_in_gmi"]),
            Direction.IMPORT: expected[Direction.IMPORT] + len(changes["finished_in_billomat"]),
        }
        title = describe_changes(changes)
        rounds.append(
            run_round(sandbox, fleet, view, "later_changes", title, expected, options.timeout)
        )
    # Nothing may move while the report is read.
    fleet.stop()
    report = build_report(sandbox, broker, options, rounds, changes, expected)
    report.seconds = seconds | {r.name: r.seconds for r in rounds}
    view.report(report, sandbox.settings)
    return report


def describe_sandbox(sandbox: Sandbox, broker: Broker, view: DemoView) -> None:
    sims = sandbox.sims
    view.note(
        "simulators", f"GMI {sims.gmi_base_url} · Billomat {sims.billomat.api_url(BILLOMAT_ID)}"
    )
    invoices = sims.billomat.documents(BILLOMAT_ID, "invoices")
    drafts = sum(1 for d in invoices if d["status"] == "DRAFT")
    view.note(
        "demo data",
        f"GMI: {len(sandbox.gmi_before)} documents (one ~3 MB PDF) · Billomat: "
        f"{len(invoices) - drafts} invoices, "
        f"{len(sims.billomat.documents(BILLOMAT_ID, 'credit-notes'))} credit notes, "
        f"{drafts} draft",
    )
    view.note("database", f"{sandbox.root / 'belegsync.db'} (fresh, migrated, own Fernet key)")
    view.note("broker", f"{broker.safe_url} · queue prefix {broker.topology.prefix}")
    view.note(
        EXPORT_ACCOUNT,
        f"GMI → Billomat inbox: types {', '.join(EXPORT_TYPES)}; approval required; "
        "archive in GMI after transfer",
    )
    view.note(
        IMPORT_ACCOUNT,
        f"Billomat invoices, credit-notes → GMI: tags {', '.join(IMPORT_TAGS)}; "
        f"company {IMPORT_COMPANY!r}",
    )


def describe_changes(changes: Mapping[str, list[dict[str, Any]]]) -> str:
    parts = [f"approved {c['document_number']} in GMI" for c in changes["approved_in_gmi"]]
    parts += [
        f"finished draft {c['kind'].rstrip('s')} {c['billomat_id']} in Billomat (now {c['number']})"
        for c in changes["finished_in_billomat"]
    ]
    return "later changes: " + (", ".join(parts) or "none") + "; one more poll"


def build_report(
    sandbox: Sandbox,
    broker: Broker,
    options: DemoOptions,
    rounds: list[RoundResult],
    changes: dict[str, list[dict[str, Any]]],
    expected: Mapping[Direction, int],
) -> DemoReport:
    exported, imported = export_rows(sandbox), import_rows(sandbox)
    problems = find_problems(sandbox, expected, exported, imported)
    service = AccountService(sandbox.db, lambda: sandbox.box)
    return DemoReport(
        ok=not problems,
        problems=problems,
        queue_prefix=broker.topology.prefix,
        broker=broker.safe_url,
        database=str(sandbox.root / "belegsync.db"),
        kept=str(sandbox.root) if options.keep else None,
        accounts=[service.describe(a, with_keys=False) for a in service.list()],
        rounds=rounds,
        later_changes=changes,
        overview=overview(sandbox.db),
        export=exported,
        import_=imported,
        simulator_state=simulator_state(sandbox),
    )
