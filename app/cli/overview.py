"""`belegsync status` and `belegsync documents`: the sync overview and the per-document ledger."""

from __future__ import annotations

import click

from app.cli.app import App
from app.cli.output import print_json, print_record, print_table

pass_app = click.make_pass_decorator(App)


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
    """The sync overview: per account, the last and next poll and documents by state."""
    if parked:
        show_unaccounted(app, as_json)
        return
    from app.status import overview

    rows = overview(app.migrated_db())
    if as_json:
        print_json(rows)
        return
    for row in rows:
        counts = row["counts"]
        row["synced"] = counts.get("synced", 0)
        row["pending"] = sum(counts.get(s, 0) for s in ("pending", "uploading", "uploaded", "held"))
        row["waiting"] = counts.get("waiting_approval", 0) + counts.get("draft", 0)
        row["retrying"] = counts.get("retrying", 0)
        row["parked"] = counts.get("parked", 0)
        row["skipped"] = counts.get("skipped", 0)
        row["last_poll"] = (
            f"{row['last_poll_at'][:19].replace('T', ' ')} {row['last_poll_result']}"
            if row["last_poll_at"]
            else None
        )
        row["next_poll"] = (
            row["next_poll_at"][:19].replace("T", " ") if row["next_poll_at"] else None
        )
    print_table(
        rows,
        [
            ("account", "account"),
            ("direction", "direction"),
            ("enabled", "enabled"),
            ("last_poll", "last poll (UTC)"),
            ("next_poll", "next poll (UTC)"),
            ("synced", "synced"),
            ("pending", "pending"),
            ("waiting", "waiting"),
            ("retrying", "retrying"),
            ("parked", "parked"),
            ("skipped", "skipped"),
            ("attention", "attention"),
        ],
        title="sync overview",
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
            ("parked_at", "parked at (UTC)"),
            ("direction", "dir"),
            ("account", "account"),
            ("source_id", "source"),
            ("problem", "problem"),
            ("reason", "parked because"),
            ("size", "bytes"),
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

    if search is not None or after is not None:
        rows = document_page(
            app.migrated_db(), account=account, state=state, text=search, after=after,
            limit=limit or 50,
        ).rows  # fmt: skip
    else:
        rows = list_documents(
            app.migrated_db(),
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
                [("at", "at (UTC)"), ("from", "from"), ("to", "to"), ("reason", "reason")],
                title="history",
            )
        if not rows:
            click.echo("no such document")
        return
    print_table(
        rows,
        [
            ("account", "account"),
            ("direction", "dir"),
            ("source_kind", "kind"),
            ("source_id", "source"),
            ("document_number", "number"),
            ("state", "state"),
            ("target_id", "target"),
            ("attempts", "attempts"),
            ("last_error", "last error"),
        ],
        title="documents",
    )
