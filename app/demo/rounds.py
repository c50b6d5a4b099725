"""Rounds of "produce once, let the consumers work, wait until it settles", and the later
changes between them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from datetime import date
from typing import Any

from app.demo.fleet import Fleet
from app.demo.model import (
    BILLOMAT_ID,
    EXPORT_ACCOUNT,
    GMI_API_KEY,
    IMPORT_ACCOUNT,
    IN_FLIGHT,
    STUCK,
    TICK_SECONDS,
    WAITING,
    DemoError,
    DemoView,
    RoundResult,
    Tally,
)
from app.demo.sandbox import Sandbox
from app.status import documents, overview
from shared.db import Database
from shared.domain import Direction, DocState

# ---------------------------------------------------------------------------------------------
# Running: rounds of "produce once, let the consumers work, wait until it settles"


def expected_synced(sandbox: Sandbox) -> dict[Direction, int]:
    """What should end up synced, from the simulators' data and the accounts' rules."""
    rules = sandbox.export_rules
    export = sum(
        1
        for doc in sandbox.gmi_before
        if rules.rejection(
            document_type=doc["document_type"],
            tags=doc["tags"],
            document_date=_day(doc["document_date"]),
            is_archived=doc["is_archived"],
        )
        is None
        and rules.approval_rejection(doc["approval"]) is None
    )
    imported = sum(
        1
        for kind in sandbox.import_rules.document_kinds
        for doc in sandbox.sims.billomat.documents(BILLOMAT_ID, kind)
        if doc["status"] != "DRAFT"
    )
    return {Direction.EXPORT: export, Direction.IMPORT: imported}


def tallies(db: Database, expected: Mapping[Direction, int]) -> list[Tally]:
    """Ledger counts per direction (the demo has one account of each)."""
    by_direction = {Direction(row["direction"]): row["counts"] for row in overview(db)}
    result = []
    for direction in Direction:
        counts = by_direction.get(direction, {})
        result.append(
            Tally(
                direction=direction,
                expected=expected[direction],
                synced=counts.get(DocState.SYNCED.value, 0),
                waiting=sum(counts.get(s.value, 0) for s in WAITING),
                in_flight=sum(counts.get(s.value, 0) for s in IN_FLIGHT),
                stuck=sum(counts.get(s.value, 0) for s in STUCK),
            )
        )
    return result


def run_round(
    sandbox: Sandbox,
    fleet: Fleet,
    view: DemoView,
    name: str,
    title: str,
    expected: Mapping[Direction, int],
    timeout: float,
) -> RoundResult:
    """Poll once, then watch the ledger until nothing is in flight any more."""
    started = time.monotonic()
    view.round_started(title, tallies(sandbox.db, expected))
    producer = fleet.produce_once()
    current = wait_until_settled(sandbox.db, fleet, producer, expected, started + timeout, view)
    assert producer.stdout is not None
    lines = producer.stdout.read().decode(errors="replace").splitlines()
    result = RoundResult(
        name=name,
        title=title,
        expected={t.direction.value: t.expected for t in current},
        synced={t.direction.value: t.synced for t in current},
        waiting={t.direction.value: t.waiting for t in current},
        seconds=round(time.monotonic() - started, 2),
        producer=lines,
    )
    view.round_finished(result)
    return result


def wait_until_settled(
    db: Database,
    fleet: Fleet,
    producer: subprocess.Popen[bytes],
    expected: Mapping[Direction, int],
    deadline: float,
    view: DemoView,
) -> list[Tally]:
    """Settled: the producer published everything and no document is in flight."""
    while True:
        current = tallies(db, expected)
        view.round_progress(current)
        in_flight = sum(t.in_flight for t in current)
        code = producer.poll()
        if code is not None and code != 0:
            raise DemoError(f"the producer failed (exit code {code})", fleet.log_tail())
        if code == 0 and in_flight == 0:
            return current
        if in_flight and fleet.consumers_alive() == 0:
            raise DemoError(
                "every consumer exited while documents were in flight", fleet.log_tail()
            )
        if time.monotonic() > deadline:
            summary = ", ".join(
                f"{t.direction.value} {t.synced}/{t.expected} synced" for t in current
            )
            raise DemoError(
                f"the documents did not settle in time ({summary}, {in_flight} in flight); "
                "rerun with --keep to keep the logs",
                fleet.log_tail(),
            )
        time.sleep(TICK_SECONDS)


def make_later_changes(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    """Approve one document whose workflow is pending in GMI, finish the draft in Billomat."""
    gmi, billomat = sandbox.sims.gmi, sandbox.sims.billomat
    pending_workflow = {d["uid"] for d in sandbox.gmi_before if d["approval"] is False}
    approved: list[dict[str, Any]] = []
    for row in documents(sandbox.db, account=EXPORT_ACCOUNT, state=DocState.WAITING_APPROVAL):
        uid = int(row["source_id"])
        if uid in pending_workflow:
            gmi.approve(GMI_API_KEY, uid)
            approved.append({"gmi_uid": uid, "document_number": row["document_number"]})
            break
    finished: list[dict[str, Any]] = []
    for row in documents(sandbox.db, account=IMPORT_ACCOUNT, state=DocState.DRAFT):
        kind, doc_id = row["source_kind"], int(row["source_id"])
        billomat.complete(BILLOMAT_ID, kind, doc_id)
        number = billomat.document(BILLOMAT_ID, kind, doc_id)["number"]
        finished.append({"kind": kind, "billomat_id": doc_id, "number": number})
    return {"approved_in_gmi": approved, "finished_in_billomat": finished}


# ---------------------------------------------------------------------------------------------
# Reporting: where every document ended up, and whether that is what should have happened


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None
