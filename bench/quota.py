"""Quota as the ceiling: how close a backlog drains to the rate the quotas allow, what each
document costs in calls, and what a backlog does to the small accounts next to it.

Compressed windows: every "quarter hour" of Billomat and every GMI "minute"/"hour" lasts
``--window`` seconds (10).  Every account is a customer of its own: its own GMI key and its own
Billomat account.  One backlog account (``--backlog`` documents, 150) and ``--small`` accounts
(9) of ``--small-documents`` (5) each; ``--consumers`` consumer processes (4) and one producer
process (``belegsync produce``, the loop: it polls and releases work from the ledger).

- **export**: Billomat allows ``--limit`` calls per window (30) — the quota that binds; GMI's
  limits are raised.
- **import**: GMI allows ``--limit`` uploads per "hour" (30) and twice as many calls per
  "minute" — the uploads bind; Billomat allows 1,000 calls per window.

Per direction, two runs in one invocation: the small accounts alone (their unloaded latency),
then the backlog account and the small ones together.  The producer starts just after a window
boundary, so runs are comparable.  Printed per direction:

- calls per document on each side, counted by the simulators (the polls' list calls apart);
- 429s: every refusal by either simulator (GMI's 403/429 code 429 and 422 code 105 included);
- the backlog's drain time: its first detection -> its last document synced, against the
  minimum the quota allows: the start of the window in which the backlog account's last call on
  the binding quota may be made at the earliest (``ceil(calls / limit)`` windows, the first
  being the one the backlog was detected in; the calls are its documents' plus its poll's, e.g.
  an export account's first poll reads the Billomat inbox once), and the share of the allowed
  rate reached (minimum / measured);
- the small accounts' p95 landing latency (detected -> synced) alone and next to the backlog.

Targets (issue 12): calls/doc <= 1.05 on each side (plus polls), 0 x 429, >= 95 % of the
allowed rate, small-account p95 <= 2 x unloaded.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, select, update
from sqlalchemy.pool import NullPool

from bench.harness import (
    MachineNote,
    Run,
    ScratchDatabases,
    db_argument,
    emit_json,
    load_average,
    percentile,
    print_table,
    progress,
    require_services,
)
from shared.accounts import AccountChanges
from shared.db import Document, PollState, SyncAccount
from shared.domain import Direction, DocState
from simulators import Simulators

BACKLOG = "backlog"


@dataclass
class Scenario:
    direction: Direction
    backlog: int
    small: int
    small_documents: int
    consumers: int
    window: float
    limit: int


@dataclass
class Outcome:
    direction: str
    with_backlog: bool
    documents: int
    gmi_calls: dict[str, int]
    billomat_calls: dict[str, int]
    refusals: int
    small_p95_s: float
    small_latencies_s: list[float]
    backlog_drain_s: float | None = None
    backlog_minimum_s: float | None = None
    detected_phase_s: float | None = None
    backlog_per_window: list[int] = field(default_factory=list)  # landed, by window from t0
    backlog_binding_calls: int = 0  # the backlog account's calls on the quota that binds
    load_start: float = 0.0
    load_end: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def share_of_allowed(self) -> float | None:
        if not self.backlog_drain_s or self.backlog_minimum_s is None:
            return None
        return self.backlog_minimum_s / self.backlog_drain_s


def keys(i: int) -> tuple[str, str, str]:
    """GMI key, Billomat id and Billomat key of account ``i``."""
    return f"gmi-quota-{i:02d}", f"quota{i:02d}", f"bm-quota-{i:02d}"


def prepare(sims: Simulators, run: Run, scenario: Scenario, with_backlog: bool) -> dict[str, int]:
    """Accounts, their simulator quotas and documents; returns documents per account name."""
    sizes = {f"small-{i}": scenario.small_documents for i in range(1, scenario.small + 1)}
    if with_backlog:
        sizes = {BACKLOG: scenario.backlog, **sizes}  # added first: polled first
    w, limit = scenario.window, scenario.limit
    for i, (name, n) in enumerate(sizes.items()):
        gmi_key, billomat_id, billomat_key = keys(i)
        sims.gmi.add_account(gmi_key)
        if scenario.direction is Direction.EXPORT:
            sims.gmi.set_limits(gmi_key, per_minute=10**6, per_day=10**8, uploads_per_hour=10**6)
            sims.billomat.add_tenant(billomat_id, billomat_key, limit=limit, window_seconds=w)
            for d in range(n):
                sims.gmi.seed_document(gmi_key, document_number=f"{name}-{d:04d}")
            changes = AccountChanges(
                gmi_api_key=gmi_key, billomat_id=billomat_id, billomat_api_key=billomat_key,
                require_approval=False, archive_after_transfer=False,
            )  # fmt: skip
        else:
            sims.gmi.set_limits(
                gmi_key, per_minute=2 * limit, minute_seconds=w, per_day=10**8,
                uploads_per_hour=limit, hour_seconds=w,
            )  # fmt: skip
            sims.billomat.add_tenant(billomat_id, billomat_key, limit=1000, window_seconds=w)
            for d in range(n):
                sims.billomat.add_document(billomat_id, "invoices", number=f"{name}-{d:04d}")
            changes = AccountChanges(
                gmi_api_key=gmi_key, billomat_id=billomat_id, billomat_api_key=billomat_key,
                document_kinds=["invoices"],
            )  # fmt: skip
        run.accounts.add(scenario.direction, name, changes)
    return sizes


def settings_for(scenario: Scenario) -> dict[str, Any]:
    w, limit = scenario.window, scenario.limit
    # compressed windows, and belegsync told so (as an operator would configure a real plan)
    values: dict[str, Any] = {"billomat_window_seconds": w}
    if scenario.direction is Direction.EXPORT:
        values["billomat_calls_per_window"] = limit
    if scenario.direction is Direction.IMPORT:
        values |= {
            "gmi_calls_per_minute": 2 * limit,
            "gmi_minute_seconds": w,
            "gmi_uploads_per_hour": limit,
            "gmi_hour_seconds": w,
        }
    return values


def wait_for_window_start(window: float, offset: float = 0.2) -> None:
    """Sleep until ``offset`` seconds after the next window boundary."""
    now = time.time()
    start = math.floor(now / window) * window + offset
    if start < now:
        start += window
    time.sleep(start - now)


def one_run(
    databases: ScratchDatabases, scenario: Scenario, with_backlog: bool, timeout: float
) -> Outcome:
    load_start = load_average()
    sims = Simulators()
    sims.start()
    try:
        with Run(databases, sims, **settings_for(scenario)) as run:
            sizes = prepare(sims, run, scenario, with_backlog)
            total = sum(sizes.values())
            with run.db.session() as session:  # every account due at once
                session.execute(update(PollState).values(next_due_at=datetime.now(UTC)))
            for i in range(scenario.consumers):
                run.spawn(
                    "consume", "--direction", scenario.direction.value, log_name=f"consumer-{i}.log"
                )
            run.wait_for_consumers(scenario.direction, scenario.consumers)
            wait_for_window_start(scenario.window)
            run.spawn("produce", log_name="producer.log")
            watcher = create_engine(run.database_url, poolclass=NullPool)
            synced = select(Document.id).where(Document.state == DocState.SYNCED.value)

            def done() -> bool:
                with watcher.connect() as conn:
                    return len(conn.execute(synced).all()) >= total

            run.wait_until(done, timeout=timeout, what=f"{total} synced", every=0.2)
            with watcher.connect() as conn:
                rows = conn.execute(
                    select(SyncAccount.name, Document.detected_at, Document.synced_at).join(
                        SyncAccount, SyncAccount.id == Document.account_id
                    )
                ).all()
            watcher.dispose()
            run.stop_processes(kill=True)
            return measure(sims, scenario, with_backlog, sizes, list(rows), load_start)
    finally:
        sims.stop()


def measure(
    sims: Simulators,
    scenario: Scenario,
    with_backlog: bool,
    sizes: dict[str, int],
    rows: list[Any],
    load_start: float,
) -> Outcome:
    total = sum(sizes.values())
    gmi: dict[str, int] = {}
    billomat: dict[str, int] = {}
    refusals = 0
    for i in range(len(sizes)):
        gmi_key, billomat_id, _ = keys(i)
        for endpoint, n in sims.gmi.request_counts(gmi_key).items():
            gmi[endpoint] = gmi.get(endpoint, 0) + n
        for endpoint, n in sims.billomat.request_counts(billomat_id).items():
            billomat[endpoint] = billomat.get(endpoint, 0) + n
        refusals += sims.gmi.rate_limited_count(gmi_key)
        refusals += sims.billomat.rate_limited_count(billomat_id)
    small = [
        (r.synced_at - r.detected_at).total_seconds()
        for r in rows
        if r.name != BACKLOG and r.synced_at is not None
    ]
    outcome = Outcome(
        direction=scenario.direction.value,
        with_backlog=with_backlog,
        documents=total,
        gmi_calls=gmi,
        billomat_calls=billomat,
        refusals=refusals,
        small_p95_s=percentile(small, 95),
        small_latencies_s=sorted(small),
        load_start=load_start,
        load_end=load_average(),
    )
    if len(rows) != total or any(r.synced_at is None for r in rows):
        outcome.problems.append(f"ledger: {len(rows)} rows, expected {total} all synced")
    if with_backlog:
        backlog = [r for r in rows if r.name == BACKLOG]
        t0: datetime = min(r.detected_at for r in backlog)
        last: datetime = max(r.synced_at for r in backlog)
        outcome.backlog_drain_s = (last - t0).total_seconds()
        w = scenario.window
        first_window = math.floor(t0.timestamp() / w)
        # every call the backlog account made on the binding quota: its documents' and its
        # poll's (an export account's first poll reads the Billomat inbox once)
        gmi_key, billomat_id, _ = keys(0)
        if scenario.direction is Direction.EXPORT:
            binding = sum(sims.billomat.request_counts(billomat_id).values())
        else:
            binding = sims.gmi.request_counts(gmi_key).get("POST /documents", 0)
        outcome.backlog_binding_calls = binding
        last_window = first_window + math.ceil(binding / scenario.limit) - 1
        earliest = datetime.fromtimestamp(last_window * w, UTC)
        outcome.backlog_minimum_s = max(0.0, (earliest - t0).total_seconds())
        outcome.detected_phase_s = t0.timestamp() - first_window * w
        per_window = [0] * (math.floor(last.timestamp() / w) - first_window + 1)
        for r in backlog:
            per_window[math.floor(r.synced_at.timestamp() / w) - first_window] += 1
        outcome.backlog_per_window = per_window
    return outcome


def per_doc(calls: dict[str, int], documents: int, polls: tuple[str, ...]) -> tuple[float, int]:
    """(calls per document without the polls' list calls, the list calls)."""
    listed = sum(n for endpoint, n in calls.items() if endpoint in polls)
    return (sum(calls.values()) - listed) / documents, listed


def show(outcomes: list[Outcome], scenario: Scenario) -> list[list[str]]:
    polls = ("GET /documents", "GET /api/invoices", "GET /api/inbox-documents")
    alone = next(o for o in outcomes if not o.with_backlog)
    rows = []
    for o in outcomes:
        gmi, gmi_polls = per_doc(o.gmi_calls, o.documents, polls)
        billomat, billomat_polls = per_doc(o.billomat_calls, o.documents, polls)
        share = o.share_of_allowed
        rows.append(
            [
                o.direction,
                "backlog + small" if o.with_backlog else "small alone",
                str(o.documents),
                f"{gmi:.3f} (+{gmi_polls})",
                f"{billomat:.3f} (+{billomat_polls})",
                str(o.refusals),
                f"{o.backlog_drain_s:.1f}" if o.backlog_drain_s else "-",
                f"{o.backlog_minimum_s:.1f}" if o.backlog_minimum_s is not None else "-",
                f"{100 * share:.1f} %" if share else "-",
                f"{o.small_p95_s:.2f}",
                f"{o.small_p95_s / alone.small_p95_s:.2f}x" if o.with_backlog else "1x",
                f"{o.load_start:.1f}-{o.load_end:.1f}",
                "; ".join(o.problems) or "ok",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--direction", nargs="+", default=["export", "import"])
    parser.add_argument("--backlog", type=int, default=150, help="documents of the big account")
    parser.add_argument("--small", type=int, default=9, help="small accounts")
    parser.add_argument("--small-documents", type=int, default=5, help="documents each")
    parser.add_argument("--consumers", type=int, default=4, help="consumer processes")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per window")
    parser.add_argument("--limit", type=int, default=30, help="calls (uploads) per window")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run at most")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    db_argument(parser)
    parser.set_defaults(db=["postgresql"])
    args = parser.parse_args()
    require_services(args.db)
    note = MachineNote()
    results: dict[str, list[Outcome]] = {}
    scenarios = {}
    for kind in args.db:
        with ScratchDatabases(kind) as databases:
            for direction in args.direction:
                scenario = Scenario(
                    Direction(direction), args.backlog, args.small, args.small_documents,
                    args.consumers, args.window, args.limit,
                )  # fmt: skip
                scenarios[f"{kind} {direction}"] = scenario
                for with_backlog in (False, True):
                    progress(
                        f"{kind} {direction}: {'backlog + small' if with_backlog else 'small'} "
                        f"(load {load_average():.2f})"
                    )
                    outcome = one_run(databases, scenario, with_backlog, args.timeout)
                    for problem in outcome.problems:
                        progress(f"  PROBLEM: {problem}")
                    results.setdefault(f"{kind} {direction}", []).append(outcome)
    note.finish()
    if args.json:
        data = {label: [asdict(o) for o in outcomes] for label, outcomes in results.items()}
        emit_json("quota", note, vars(args), data)
        return
    print("# quota: compressed windows, one run per row")
    print(f"# machine: {note.describe()}")
    for label, outcomes in results.items():
        scenario = scenarios[label]
        binding = (
            f"Billomat {scenario.limit} calls / {scenario.window:g} s"
            if scenario.direction is Direction.EXPORT
            else f"GMI {scenario.limit} uploads / {scenario.window:g} s"
        )
        print_table(
            f"{label}: backlog {scenario.backlog} + {scenario.small} x "
            f"{scenario.small_documents}, {scenario.consumers} consumers, binding: {binding}",
            [
                "dir",
                "run",
                "docs",
                "GMI calls/doc (+polls)",
                "Billomat calls/doc (+polls)",
                "429s",
                "drain s",
                "allowed min s",
                "of allowed rate",
                "small p95 s",
                "vs alone",
                "load(1m)",
                "check",
            ],
            show(outcomes, scenario),
            left=2,
        )
        loaded = outcomes[-1]
        if loaded.detected_phase_s is not None:
            print(
                f"  backlog detected {loaded.detected_phase_s:.2f} s into a window; "
                f"small latencies alone: {fmt(outcomes[0].small_latencies_s)}; "
                f"with backlog: {fmt(loaded.small_latencies_s)}"
            )
            print(
                f"  backlog documents landed per window: {loaded.backlog_per_window}; "
                f"its calls on the binding quota: {loaded.backlog_binding_calls}"
            )


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"min {values[0]:.2f} / median {percentile(values, 50):.2f} / max {values[-1]:.2f} s"


if __name__ == "__main__":
    main()
