"""`belegsync accounts …`: sync accounts with exactly the settings GMI's own sync offers.

The rules on input are ``shared.domain``'s and ``AccountService``'s; this module parses options,
asks before removing, and prints.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

import click

from app.cli.app import App
from app.cli.output import print_json, print_lines, print_record, print_table
from app.cli.tables import Column, detail_lines, terminal_width
from shared.domain import Direction, parse_date, parse_duration, parse_list
from shared.errors import UsageError

if TYPE_CHECKING:
    from shared.accounts import AccountChanges

F = TypeVar("F", bound=Callable[..., Any])

pass_app = click.make_pass_decorator(App)


def _secret(value: str | None, what: str) -> str | None:
    """``-`` reads the key from standard input, keeping it out of the process list."""
    if value != "-":
        return value
    if sys.stdin.isatty():
        return click.prompt(what, hide_input=True)
    return sys.stdin.readline().strip()


def _duration(value: str | None) -> int | None:
    # The range (1m to 1d) is the account service's rule, shared with the web console.
    return None if value is None else parse_duration(value, field="interval")


def _date(value: str | None, option: str) -> tuple[date | None, bool]:
    """(date, clear): an empty value or ``none`` clears the date."""
    if value is None:
        return None, False
    if value.strip().lower() in {"", "none"}:
        return None, True
    field = option.removeprefix("--").replace("-", "_")
    return parse_date(value, option, field=field), False


def _list(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else parse_list(value)


def common_options(*, adding: bool) -> Callable[[F], F]:
    env = adding  # only `add` falls back to the environment; `update` changes what it is told

    def decorate(fn: F) -> F:
        options = [
            click.option(
                "--gmi-api-key",
                envvar="BELEGSYNC_GMI_API_KEY" if env else None,
                show_envvar=env,
                help="GMI API key ('-' reads it from stdin).",
            ),
            click.option(
                "--billomat-id", help="The part of the Billomat URL before .billomat.net."
            ),
            click.option(
                "--billomat-api-key",
                envvar="BELEGSYNC_BILLOMAT_API_KEY" if env else None,
                show_envvar=env,
                help="Billomat API key ('-' reads it from stdin).",
            ),
            click.option(
                "--interval",
                default="15m" if adding else None,
                show_default=adding,
                help="How often to sync: 30m, 1h, 1d (at least 1m, at most 1d).",
            ),
            click.option("--note", default=None, help="Free text."),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def export_options(*, adding: bool) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        def flag(name: str) -> str:
            # `add` has plain switches; `update` can also switch a setting off.
            return f"--{name}" if adding else f"--{name}/--no-{name}"

        options = [
            click.option("--document-types", help="GMI document types to export (default: all)."),
            click.option("--tags", help="Export only documents with one of these tags."),
            click.option(
                flag("require-approval"),
                "require_approval",
                default=None,
                is_flag=adding or None,
                help="Export only documents whose GMI approval workflow is completed.",
            ),
            click.option(
                flag("archive-after-transfer"),
                "archive_after_transfer",
                default=None,
                is_flag=adding or None,
                help="Archive the document in GMI once it landed in Billomat.",
            ),
            click.option("--date-from", help="Only documents dated on or after YYYY-MM-DD."),
            click.option("--date-to", help="Only documents dated on or before YYYY-MM-DD."),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def import_options(fn: F) -> F:
    options = [
        click.option(
            "--default-document-type",
            help="GMI type for kinds without a mapping (default MISC).",
        ),
        click.option("--default-tags", help="Tags added to every imported document."),
        click.option(
            "--default-company",
            help="GMI company for imported documents (created as a custom company if missing).",
        ),
        click.option(
            "--document-kinds",
            help="Billomat kinds to import (default invoices,credit-notes).",
        ),
        click.option("--webhook-username", help="Basic-auth user Billomat's webhooks send."),
        click.option(
            "--webhook-password",
            envvar="BELEGSYNC_WEBHOOK_PASSWORD",
            help="Basic-auth password for webhooks ('-' reads it from stdin).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _changes(kw: dict[str, Any]) -> AccountChanges:
    from shared.accounts import AccountChanges

    date_from, clear_from = _date(kw.get("date_from"), "--date-from")
    date_to, clear_to = _date(kw.get("date_to"), "--date-to")
    return AccountChanges(
        name=kw.get("rename"),
        gmi_api_key=_secret(kw.get("gmi_api_key"), "GMI API key"),
        billomat_id=kw.get("billomat_id"),
        billomat_api_key=_secret(kw.get("billomat_api_key"), "Billomat API key"),
        interval_seconds=_duration(kw.get("interval")),
        note=kw.get("note"),
        document_types=_list(kw.get("document_types")),
        tags=_list(kw.get("tags")),
        require_approval=kw.get("require_approval"),
        archive_after_transfer=kw.get("archive_after_transfer"),
        date_from=date_from,
        date_to=date_to,
        clear_date_from=clear_from,
        clear_date_to=clear_to,
        default_document_type=kw.get("default_document_type"),
        default_tags=_list(kw.get("default_tags")),
        default_company=kw.get("default_company"),
        document_kinds=_list(kw.get("document_kinds")),
        webhook_username=kw.get("webhook_username"),
        webhook_password=_secret(kw.get("webhook_password"), "webhook password"),
    )


@click.group("accounts")
def accounts() -> None:
    """Manage sync accounts (one direction between one GMI and one Billomat account)."""


@accounts.group("add")
def add() -> None:
    """Add an export (GMI → Billomat) or import (Billomat → GMI) account."""


@add.command("export")
@click.argument("name")
@common_options(adding=True)
@export_options(adding=True)
@pass_app
def add_export(app: App, /, name: str, **kw: Any) -> None:
    """Add an export account: GMI documents land in the Billomat inbox."""
    if kw.get("billomat_id") is None:
        raise UsageError("--billomat-id is required")
    changes = _changes(kw)
    # Flags given as plain switches: absent means off.
    changes.require_approval = bool(changes.require_approval)
    changes.archive_after_transfer = bool(changes.archive_after_transfer)
    _added(app, Direction.EXPORT, name, changes, kw["interval"])


@add.command("import")
@click.argument("name")
@common_options(adding=True)
@import_options
@pass_app
def add_import(app: App, /, name: str, **kw: Any) -> None:
    """Add an import account: finished Billomat documents land in GMI."""
    if kw.get("billomat_id") is None:
        raise UsageError("--billomat-id is required")
    _added(app, Direction.IMPORT, name, _changes(kw), kw["interval"])


def _added(
    app: App, direction: Direction, name: str, changes: AccountChanges, interval: str
) -> None:
    account = app.accounts.add(direction, name, changes, actor=app.actor)
    click.echo(f"added {direction.value} account {account.name!r} (every {interval})")
    adopted = app.accounts.document_count(account.id)
    if adopted:
        click.echo(
            f"{adopted} document(s) already in the target are known from a removed account "
            "with the same GMI and Billomat accounts: they are not uploaded again"
        )


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def list_accounts(app: App, as_json: bool) -> None:
    """List all sync accounts."""
    rows = [app.accounts.describe(a, with_keys=False) for a in app.accounts.list()]
    if as_json:
        print_json(rows)
        return
    from app.cli.overview import NO_ACCOUNTS

    for row in rows:
        row["state"] = "attention" if row["attention"] else "active" if row["enabled"] else "paused"
    width = terminal_width()
    print_table(rows, ACCOUNT_COLUMNS, title="sync accounts", empty=NO_ACCOUNTS, width=width)
    details = []
    for row in rows:
        if row["attention"]:
            details += detail_lines(f"! {row['name']}", row["attention"], width, indent=4)
    if details:
        print_lines(["", *details])


ACCOUNT_COLUMNS = (
    Column("name", "name", flex=True, min_width=16),
    Column("direction", "dir"),
    Column("state", "state"),
    Column("billomat_id", "billomat", keep=2, flex=True, min_width=8),
    Column("interval", "every", keep=1),
    Column("note", "note", keep=3, flex=True, min_width=10),
)


@accounts.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def show(app: App, name: str, as_json: bool) -> None:
    """Show one account's settings (API keys masked to their last 4 characters)."""
    app.accounts.check_secret_key()
    with app.migrated_db().session() as session:
        account = app.accounts.get(session, name)
        view = app.accounts.describe(account, with_keys=True)
    if as_json:
        print_json(view)
    else:
        print_record(view)


@accounts.command("update")
@click.argument("name")
@click.option("--rename", help="Give the account a new (unused) name.")
@common_options(adding=False)
@export_options(adding=False)
@import_options
@pass_app
def update(app: App, /, name: str, **kw: Any) -> None:
    """Change settings of an account; options left out stay as they are.

    Dates accept 'none' to clear them.
    """
    from shared.accounts import AccountChanges

    changes = _changes(kw)
    if changes == AccountChanges():
        raise UsageError("nothing to update: give at least one option (see --help)")
    account = app.accounts.update(name, changes, actor=app.actor)
    click.echo(f"updated account {account.name!r}")


@accounts.command("pause")
@click.argument("name")
@pass_app
def pause(app: App, name: str) -> None:
    """Stop polling an account; messages for it wait until it is resumed."""
    app.accounts.set_enabled(name, False, actor=app.actor)
    click.echo(f"paused account {name!r}")


@accounts.command("resume")
@click.argument("name")
@pass_app
def resume(app: App, name: str) -> None:
    """Resume a paused account (also clears an 'attention' mark after you fixed its keys)."""
    app.accounts.set_enabled(name, True, actor=app.actor)
    click.echo(f"resumed account {name!r}")


@accounts.command("recheck")
@click.argument("names", nargs=-1)
@pass_app
def recheck(app: App, names: tuple[str, ...]) -> None:
    """Let the next poll of export accounts (all, or NAMES) look in the Billomat inbox again.

    Run it after restoring the database from a backup: what landed after the backup is found
    there and not uploaded again.  Import accounts need nothing (GMI refuses identical content).
    """
    chosen = app.accounts.recheck(names)
    if not chosen:
        click.echo("no export accounts to recheck")
        return
    click.echo(f"the next poll looks in the Billomat inbox first: {', '.join(chosen)}")


@accounts.command("remove")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def remove(app: App, name: str, yes: bool) -> None:
    """Remove an account: it is no longer polled or shown; its ledger is kept.

    Adding the same account again (same direction, GMI API key and Billomat ID) adopts what
    already landed instead of uploading it a second time.
    """
    summary = app.accounts.removal_summary(name)
    total = sum(summary.values())
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.items()))
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"`accounts remove {name}` asks first: add --yes to remove it")
        click.echo(
            f"Account {name!r} has {total} ledger row(s){f' ({counts})' if counts else ''}. "
            "Removing it stops its polls and hides it; the ledger is kept, so adding the same "
            "account again uploads nothing twice."
        )
        if not click.confirm(f"Remove {name!r}?", default=False):
            click.echo("nothing removed")
            return
    kept = app.accounts.remove(name, actor=app.actor)
    click.echo(f"removed account {name!r}; its {kept} ledger row(s) are kept")
