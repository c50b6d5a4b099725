"""`belegsync replay`: parked documents back to work."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import click

from app.cli.app import App
from app.cli.output import print_json, print_table
from app.cli.tables import Column
from shared.domain import parse_duration
from shared.errors import UsageError

pass_app = click.make_pass_decorator(App)


@click.command("replay")
@click.option("--account", help="Only this account's parked documents.")
@click.option("--document", "source_id", help="Only the document with this source id.")
@click.option("--all", "everything", is_flag=True, help="Every parked document.")
@click.option(
    "--stuck",
    "stuck",
    metavar="AGE",
    help="Also rebuild messages of documents pending or retrying without any change for AGE "
    "(e.g. 7h: longer than the longest retry delay) — for a queue purged by hand.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def replay(
    app: App,
    /,
    account: str | None,
    source_id: str | None,
    everything: bool,
    stuck: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Move parked documents back to their work queue (attempts reset).

    A parked document whose message is gone is rebuilt from the ledger; one that has been
    synced since is left alone.  A parked message that does not decode, or that names no
    ledger row of its own, stays parked and is listed (with --all) with its reason and size.
    Fix the cause first (see `belegsync documents --state parked`).
    """
    from app import bootstrap
    from app.replay import Replayer, Selection

    stuck_for = None
    if stuck is not None:
        try:
            stuck_for = timedelta(seconds=parse_duration(stuck))
        except ValueError as e:
            raise UsageError(f"--stuck: {e}") from None
    selection = Selection(
        account=account, source_id=source_id, everything=everything, stuck_for=stuck_for
    )
    selection.check()
    db = app.migrated_db()
    broker = bootstrap.broker(app.settings)
    broker.connect(retries=2)
    try:
        report = Replayer(db, broker).replay(selection, dry_run=dry_run)
    finally:
        broker.close()
    rows = [asdict(item) for item in report.items]
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "items": rows,
                "malformed_kept": report.malformed_kept,
                "foreign_kept": report.foreign_kept,
                "not_selected": report.not_selected,
            }
        )
        return
    print_table(
        rows,
        [
            Column("account", "account", flex=True, min_width=10),
            Column("direction", "dir", keep=2),
            Column("source_id", "source"),
            Column("action", "action"),
            Column("reason", "parked because", keep=1, flex=True, min_width=16),
            Column("size", "bytes", keep=3, right=True),
        ],
        title="replay (dry run)" if dry_run else "replay",
        empty="nothing parked to replay",
    )
    moved = report.count("moved") + report.count("rebuilt")
    summary = (
        f"{report.count('would move') + report.count('would rebuild')} would be replayed"
        if dry_run
        else f"{moved} replayed"
    )
    if report.malformed_kept:
        summary += f"; {report.malformed_kept} undecodable message(s) stay parked"
    if report.foreign_kept:
        summary += f"; {report.foreign_kept} message(s) naming no ledger row of theirs stay parked"
    if report.not_selected:
        summary += f"; {report.not_selected} other parked message(s) left alone"
    click.echo(summary)
