"""The operator's commands on a real run: produce, consume, status, documents, replay, --help."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from app.cli import cli, main
from simulators import Simulators
from tests.e2e.conftest import BILLOMAT_ID, GMI_KEY, Pipeline
from tests.helpers import Cli


@pytest.fixture
def run(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(pipeline.settings, capsys)


def test_produce_consume_status_and_documents_tell_the_story(
    pipeline: Pipeline, sims: Simulators, run: Cli
) -> None:
    synced = sims.gmi.seed_document(GMI_KEY, document_number="S-1", approval=True)
    waiting = sims.gmi.seed_document(GMI_KEY, document_number="W-1", approval=False)
    pipeline.add_export(require_approval=True)

    produced = run("produce", "--once")
    assert produced.code == 0, produced.err
    assert "acme-export: ok, 2 listed, 2 new" in produced.out
    consumed = run("consume", "--idle-exit", "1.5", "--metrics-port", "0")
    assert consumed.code == 0, consumed.err

    [overview] = run("status", "--json").json()
    assert overview["account"] == "acme-export"
    assert overview["direction"] == "export"
    assert overview["enabled"] is True
    assert overview["last_poll_at"] is not None
    assert overview["next_poll_at"] is not None
    assert overview["counts"]["synced"] == 1
    assert overview["counts"]["waiting_approval"] == 1
    table = run("status")
    assert "acme-export" in table.out
    assert "sync overview" in table.out

    rows = run("documents", "--json").json()
    by_source = {r["source_id"]: r for r in rows}
    for key in ("account", "direction", "source_id", "target_id", "state", "attempts",
                "last_error", "updated_at"):  # fmt: skip
        assert key in by_source[str(synced)]
    assert by_source[str(synced)]["state"] == "synced"
    assert by_source[str(synced)]["target_id"] == str(sims.billomat.inbox(BILLOMAT_ID)[0]["id"])
    assert "approval" in by_source[str(waiting)]["last_error"]
    only_waiting = run("documents", "--state", "waiting_approval", "--json").json()
    assert [r["source_id"] for r in only_waiting] == [str(waiting)]
    story = run("documents", "--document", str(synced))
    assert "history" in story.out
    assert "uploaded to the Billomat inbox" in story.out


def test_documents_state_parked_lists_why_and_replay_moves_them_back(
    pipeline: Pipeline, sims: Simulators, run: Cli
) -> None:
    uid = sims.gmi.seed_document(GMI_KEY, document_number="X-1")
    pipeline.add_export()
    sims.billomat.fail_next(1, status=400, methods=["POST"], path_contains="inbox-documents")
    pipeline.produce_once()
    pipeline.consume(idle_exit=1.5)

    [parked] = run("documents", "--state", "parked", "--json").json()
    assert parked["source_id"] == str(uid)
    assert parked["error_class"] == "permanent"
    assert "400" in parked["last_error"]

    dry = run("replay", "--all", "--dry-run", "--json").json()
    assert [(i["source_id"], i["action"]) for i in dry["items"]] == [(str(uid), "would move")]
    moved = run("replay", "--account", "acme-export")
    assert moved.code == 0, moved.err
    assert "1 replayed" in moved.out
    pipeline.consume(idle_exit=1.5)
    assert pipeline.states() == {str(uid): "synced"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("replay",), "choose what to replay: --all, --account NAME or --document SOURCE_ID"),
        (("replay", "--account", "ghost"), "unknown sync account 'ghost'"),
        (("replay", "--document", "999999"), "no document with source id '999999' in the ledger"),
        (("documents", "--state", "lost"), "unknown state 'lost'"),
        (("documents", "--account", "ghost"), "unknown sync account 'ghost'"),
        (("produce", "--once", "--account", "ghost"), "unknown sync account 'ghost'"),
        (("consume", "--direction", "sideways"), "'sideways' is not one of"),
    ],
)
def test_operational_commands_refuse_bad_input_with_one_line(
    pipeline: Pipeline, run: Cli, args: tuple[str, ...], message: str
) -> None:
    pipeline.add_export()
    result = run(*args)
    assert result.code == 2
    assert message in result.err
    assert result.err.count("\n") == 1


def test_produce_once_for_a_paused_account_says_so(pipeline: Pipeline, run: Cli) -> None:
    pipeline.add_export()
    pipeline.accounts.set_enabled("acme-export", False)
    result = run("produce", "--once", "--account", "acme-export")
    assert result.code == 2
    assert "is paused" in result.err


def test_produce_once_exits_1_when_a_poll_fails(
    pipeline: Pipeline, sims: Simulators, run: Cli
) -> None:
    pipeline.add_export()
    sims.gmi.fail_next(1, status=500, path_contains="/documents")
    result = run("produce", "--once")
    assert result.code == 1
    assert "acme-export: error" in result.out


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _all_commands(command, (*prefix, name))
    return found


def test_every_command_has_help(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    commands = _all_commands(cli)
    assert {
        ("demo",),
        ("replay",),
        ("webhooks",),
        ("simulate",),
        ("accounts", "add", "import"),
    } <= set(commands)
    for command in commands:
        capsys.readouterr()
        assert main([*command, "--help"]) == 0, command
        assert "Usage: belegsync" in capsys.readouterr().out
