"""`belegsync status` and `belegsync documents`: the sync overview and the per-document ledger.

Both fit an 80-column terminal (fewer columns, short headers); wider terminals show more.  Why an
account needs attention goes on a line of its own below the table, never into a cell.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from app.cli.app import App
from app.cli.output import print_json, print_lines, print_record, print_table
from app.cli.tables import Column, detail_lines, terminal_width

pass_app = click.make_pass_decorator(App)

NO_ACCOUNTS = (
    "no sync accounts yet: add one with `belegsync accounts add export NAME …` or "
    "`belegsync accounts add import NAME …` (see --help)"
)

STATUS_COLUMNS = (
    Column("account", "account", flex=True, min_width=16),
    Column("direction", "dir"),
    Column("state", "state"),
    Column("last_poll", "last poll", keep=2),
    Column("next_poll", "next poll", keep=6),
    Column("synced", "synced", right=True),
    Column("pending", "pending", right=True),
    Column("waiting", "waiting", keep=5, right=True),
    Column("retrying", "retrying", keep=4, right=True),
    Column("parked", "parked", right=True),
    Column("skipped", "skipped", keep=7, right=True),
    Column("found", "found", keep=8, right=True),
)


def short_time(iso: str | None, now: datetime | None = None) -> str | None:
    """``14:05`` today, ``12-01 14:05`` another day (local time)."""
    if not iso:
        return None
    moment = datetime.fromisoformat(iso).astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return moment.strftime("%H:%M" if moment.date() == today else "%m-%d %H:%M")


def account_state(row: dict[str, Any]) -> str:
    if row.get("attention"):
        return "attention"
    if not row["enabled"]:
        return "paused"
    if row.get("last_poll_result") == "error":
        return "failing"
    return "active"


def problem(row: dict[str, Any]) -> str | None:
    """Why an account needs someone to look at it, in full."""
    if row.get("attention"):
        return str(row["attention"])
    if row.get("last_poll_result") == "error" and row.get("last_poll_error"):
        return f"last poll failed: {row['last_poll_error']}"
    return None


def status_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for row in rows:
        counts = row["counts"]
        last = short_time(row["last_poll_at"])
        scan = row.get("target_scan") or {}
        table.append(
            {
                "account": row["account"],
                "direction": row["direction"],
                "state": account_state(row),
                "last_poll": f"{last} {row['last_poll_result']}" if last else "never",
                "next_poll": short_time(row["next_poll_at"]),
                "synced": counts.get("synced", 0),
                "pending": sum(
                    counts.get(s, 0) for s in ("pending", "uploading", "uploaded", "held")
                ),
                "waiting": counts.get("waiting_approval", 0) + counts.get("draft", 0),
                "retrying": counts.get("retrying", 0),
                "parked": counts.get("parked", 0),
                "skipped": counts.get("skipped", 0),
                "found": scan.get("found"),
            }
        )
    return table


@click.command("status")
@click.option(
    "--parked",
    "parked",
    is_flag=True,
    help="List the parked messages no ledger row accounts for (undecodable, or naming no row "
    "of theirs), with reason and size, instead of the overview.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def status(app: App, /, parked: bool, as_json: bool) -> None:
    """The sync overview: per account, the last and next poll, documents by state, the
    backlog and when it will be drained at the current quota, and the quota windows.

    `found`: documents the first poll found already in the target (not uploaded again).
    """
    if parked:
        show_unaccounted(app, as_json)
        return
    from app.status import overview
    from shared.quota import limits_from

    rows = overview(app.migrated_db(), limits=limits_from(app.settings))
    if as_json:
        print_json(rows)
        return
    width = terminal_width()
    print_table(
        status_rows(rows), STATUS_COLUMNS, title="sync overview", empty=NO_ACCOUNTS, width=width
    )
    details = []
    for row in rows:
        reason = problem(row)
        if reason is not None:
            details += detail_lines(f"! {row['account']}", reason, width, indent=4)
    if details:
        print_lines(["", *details])
    backlogs = [
        line
        for row in rows
        if row["backlog_text"]
        for line in detail_lines(row["account"], row["backlog_text"], width, indent=4)
    ]
    if backlogs:
        print_lines(["", *backlogs])
    quotas = [
        {"account": row["account"], **window, "resets": short_time(window["resets_at"])}
        for row in rows
        for window in row["quota"]
        if window["limit"] is not None or window["blocked_until"]  # nothing known: no row
    ]
    if quotas:
        print_lines([""])
        print_table(quotas, QUOTA_COLUMNS, title="quota windows", width=width)


QUOTA_COLUMNS = (
    Column("account", "account", flex=True, min_width=16),
    Column("api", "api"),
    Column("window", "window"),
    Column("used", "used", right=True),
    Column("left", "left", right=True),
    Column("limit", "limit", keep=3, right=True),
    Column("kept_for_polls", "for polls", keep=2, right=True),
    Column("resets", "resets", keep=1),
)


DOCUMENT_COLUMNS = (
    Column("account", "account", flex=True, min_width=16),
    Column("direction", "dir", keep=6),
    Column("source_kind", "kind", keep=5),
    Column("source_id", "source"),
    Column("document_number", "number", keep=3, flex=True, min_width=8),
    Column("state", "state"),
    Column("target_id", "target", keep=2),
    Column("attempts", "tries", keep=4, right=True),
    Column("last_error", "last error", keep=1, flex=True, min_width=16),
)


def show_unaccounted(app: App, as_json: bool) -> None:
    from app import bootstrap
    from app.status import unaccounted_parked

    db = app.migrated_db()
    broker = bootstrap.broker(app.settings)
    broker.connect(retries=2)
    try:
        rows, looked_at = unaccounted_parked(db, broker)
    finally:
        broker.close()
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        [
            Column("parked_at", "parked at (UTC)", keep=3),
            Column("direction", "dir", keep=2),
            Column("account", "account", keep=4, flex=True, min_width=10),
            Column("source_id", "source", keep=4),
            Column("problem", "problem", flex=True, min_width=16),
            Column("reason", "parked because", keep=1, flex=True, min_width=16),
            Column("size", "bytes", right=True),
        ],
        title="parked messages without a document",
    )
    click.echo(f"{looked_at} parked message(s) looked at; {len(rows)} without a document")


@click.command("documents")
@click.option("--account", help="Only this account.")
@click.option("--state", help="Only documents in this state (e.g. parked, synced, pending).")
@click.option("--document", "source_id", help="One source document id, with its history.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most this many.")
@click.option(
    "--search", help="Newest first, matching a document number (part of it) or a source/target id."
)
@click.option(
    "--after", type=click.IntRange(min=1), default=None,
    help="With --search: the page after this ledger row id (keyset paging, as the console).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def documents(
    app: App,
    /,
    account: str | None,
    state: str | None,
    source_id: str | None,
    limit: int | None,
    search: str | None,
    after: int | None,
    as_json: bool,
) -> None:
    """The per-document ledger: where each document stands, and why."""
    from app.status import document_page
    from app.status import documents as list_documents

    db = app.migrated_db()
    if search is not None or after is not None:
        rows = document_page(
            db, account=account, state=state, text=search, after=after, limit=limit or 50
        ).rows
    else:
        rows = list_documents(
            db,
            account=account,
            state=state,
            source_id=source_id,
            limit=limit,
            with_history=source_id is not None,
        )
    if as_json:
        print_json(rows)
        return
    if source_id is not None:
        for row in rows:
            history = row.pop("history", [])
            print_record(row)
            print_table(
                [{**e, "at": e["at"][:19].replace("T", " ")} for e in history],
                [
                    Column("at", "at (UTC)"),
                    Column("from", "from", keep=1),
                    Column("to", "to"),
                    Column("reason", "reason", flex=True, min_width=20),
                ],
                title="history",
            )
        if not rows:
            click.echo(f"no document with source id {source_id!r} in the ledger")
        return
    print_table(rows, DOCUMENT_COLUMNS, title="documents", empty=_no_documents(app, account, state))


def _no_documents(app: App, account: str | None, state: str | None) -> str:
    if account is None and state is None and not app.accounts.has_accounts():
        return NO_ACCOUNTS
    if state is not None:
        return f"no documents in state {state}" + (f" for {account}" if account else "")
    return "no documents yet: `belegsync produce --once` polls now"
