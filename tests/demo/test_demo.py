"""`belegsync demo` as a user runs it: a real process on the real RabbitMQ, judged by what the
simulators hold afterwards, and by what it leaves behind (nothing)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.demo.conftest import (
    USER_FILES,
    USER_PREFIX,
    DemoSandbox,
    broker_leftovers,
    closed_port,
    processes_with_prefix,
)

GMI_TYPE_OF_KIND = {"invoices": "SALES_INVOICE", "credit-notes": "CREDIT_NOTE"}


def assert_nothing_left(demo: DemoSandbox, prefix: str) -> None:
    assert prefix.startswith("belegsync-demo-")
    assert broker_leftovers(demo.env["BELEGSYNC_BROKER_URL"], prefix) == []
    assert processes_with_prefix(prefix) == []
    assert demo.temp_leftovers() == []
    assert demo.user_files() == USER_FILES


def account(report: dict[str, Any], direction: str) -> dict[str, Any]:
    return next(a for a in report["accounts"] if a["direction"] == direction)


def grab(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the output:\n{text}"
    return match.group(1)


def uid_of(marker: str) -> int:
    return int(marker.rsplit(":", 1)[1])


def test_demo_lands_every_matching_document_exactly_once_and_leaves_nothing_behind(
    demo: DemoSandbox,
) -> None:
    result = demo.run("--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True, report["problems"]
    state = report["simulator_state"]
    export, imported = account(report, "export"), account(report, "import")
    assert export["require_approval"]
    assert export["archive_after_transfer"]
    before = {d["uid"]: d for d in state["gmi_documents_before"]}
    after = {d["uid"]: d for d in state["gmi_documents_after"]}

    # Export: approved (now or later), of an exported type, not archived beforehand.
    approved_later = {c["gmi_uid"] for c in report["later_changes"]["approved_in_gmi"]}
    assert len(approved_later) == 1
    candidates = {
        uid
        for uid, d in before.items()
        if d["document_type"] in export["document_types"] and not d["is_archived"]
    }
    exported = {u for u in candidates if before[u]["approval"] is True or u in approved_later}
    inbox = state["billomat_inbox"]
    assert Counter(uid_of(i["marker"]) for i in inbox) == dict.fromkeys(exported, 1)
    for item in inbox:
        assert item["sha256"] == before[uid_of(item["marker"])]["sha256"]
    archived_before = {uid for uid, d in before.items() if d["is_archived"]}
    assert {uid for uid in before if after[uid]["is_archived"]} == exported | archived_before

    # Import: every finished invoice and credit note once, typed, with company and tags.
    assert len(report["later_changes"]["finished_in_billomat"]) == 1
    finished = state["billomat_documents"]
    assert all(d["status"] != "DRAFT" for d in finished)
    new_in_gmi = [d for uid, d in after.items() if uid not in before]
    assert Counter(d["sha256"] for d in new_in_gmi) == {d["pdf_sha256"]: 1 for d in finished}
    for doc in finished:
        [target] = [g for g in new_in_gmi if g["sha256"] == doc["pdf_sha256"]]
        assert target["document_type"] == GMI_TYPE_OF_KIND[doc["kind"]]
        assert target["company_name"] == imported["default_company"]
        assert set(imported["default_tags"]) <= set(target["tags"])

    # The overview and the rounds tell the same story.
    counts = {row["direction"]: row["counts"] for row in report["overview"]}
    assert counts["export"]["synced"] == len(exported)
    assert counts["export"]["waiting_approval"] == len(candidates - exported)
    assert counts["import"]["synced"] == len(finished)
    first, later = report["rounds"]
    assert first["synced"] == {"export": len(exported) - 1, "import": len(finished) - 1}
    assert first["waiting"]["import"] == 1  # the draft waits until it is finished
    assert later["synced"] == {"export": len(exported), "import": len(finished)}
    waiting = [r for r in report["export"] if r["state"] == "waiting_approval"]
    assert waiting
    assert all("approval" in r["reason"] for r in waiting)

    assert report["queue_prefix"] != USER_PREFIX
    assert_nothing_left(demo, report["queue_prefix"])


def test_keep_shows_progress_and_tables_and_keeps_a_database_status_can_read(
    demo: DemoSandbox,
) -> None:
    result = demo.run("--keep")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in (
        "▶ first sync",
        "▶ later changes",
        "sync overview",
        "export: where the GMI documents ended up",
        "import: where the Billomat documents ended up",
        "what did not move, and why",
    ):
        assert heading in out
    assert "export waiting_approval: approval required" in out
    assert "import  Billomat → GMI" in out
    assert "every document landed exactly once" in out
    kept = Path(grab(r"look around: cd (\S+) ", out))
    prefix = grab(r"queue prefix (\S+)", out)
    assert kept.parent == demo.tmpdir
    assert {"belegsync.db", "belegsync.key", "producer.log", "consumer-1.log"} <= {
        p.name for p in kept.iterdir()
    }
    assert "consumer-2.log" in {p.name for p in kept.iterdir()}

    # The hint works: in the kept directory, plain `belegsync status` reads the demo's ledger.
    env = {k: v for k, v in demo.env.items() if not k.startswith("BELEGSYNC_")}
    status = subprocess.run(
        [sys.executable, "-m", "app.cli", "status", "--json"],
        cwd=kept, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    synced = {row["account"]: row["counts"]["synced"] for row in json.loads(status.stdout)}
    assert synced["demo-export"] > 0
    assert synced["demo-import"] > 0

    shutil.rmtree(kept)
    assert_nothing_left(demo, prefix)


def test_ctrl_c_while_documents_move_stops_everything_and_cleans_up(demo: DemoSandbox) -> None:
    process = demo.start()
    try:
        assert process.stdout is not None
        seen: list[str] = []
        while not seen or not seen[-1].startswith("▶ first sync"):
            line = process.stdout.readline()
            assert line, f"demo ended early: {process.communicate()[1]}"
            seen.append(line.strip())
        prefix = grab(r"queue prefix (\S+)", "\n".join(seen))

        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 1
    last = err.strip().splitlines()[-1]
    assert "interrupted" in last
    assert "cleaned up" in last
    assert_nothing_left(demo, prefix)


def test_without_a_broker_the_demo_says_in_one_line_how_to_start_rabbitmq_and_changes_nothing(
    demo_sandbox: DemoSandbox,
) -> None:
    demo_sandbox.env["BELEGSYNC_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:{closed_port()}//"

    result = demo_sandbox.run(timeout=60)

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "RabbitMQ is not reachable at amqp://guest:**@127.0.0.1:" in line
    assert "rabbitmq-server -detached" in line
    assert result.stdout == ""
    assert demo_sandbox.temp_leftovers() == []
    assert demo_sandbox.user_files() == USER_FILES
