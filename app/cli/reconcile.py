"""`belegsync reconcile NAME`: compare source, target and ledger; --fix queues what is missing."""

from __future__ import annotations

import sys

import click

from app.cli.app import App
from app.cli.output import info, print_json
from shared.domain import parse_date
from shared.errors import UsageError

pass_app = click.make_pass_decorator(App)


@click.command("reconcile")
@click.argument("name")
@click.option("--since", metavar="YYYY-MM-DD", help="Only documents dated on or after this day.")
@click.option(
    "--fix",
    is_flag=True,
    help="Queue the missing documents (each once); nothing is ever deleted anywhere.",
)
@click.option("--yes", is_flag=True, help="Go on without asking after the cost is stated.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@pass_app
def reconcile(
    app: App, /, name: str, since: str | None, fix: bool, yes: bool, as_json: bool
) -> None:
    """Compare one account's source, target and ledger.

    Reports documents missing in the target, documents present twice in the target, and
    ledger rows whose target no longer exists (dangling: reported, never re-sent). States its
    API cost first and asks (--yes to go on); stays within the quota, waiting for the next
    window if it must.
    """
    from app import bootstrap
    from app.reconcile import QuotaExhausted, Reconciliation

    try:
        since_day = parse_date(since, "--since") if since else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    db = app.migrated_db()
    with db.session() as session:
        account = app.accounts.get(session, name)
    credentials = app.accounts.credentials(account)
    work = Reconciliation(db, app.settings, account, credentials, since_day, on_wait=info)
    try:
        info(work.estimate().text(name))
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("reconcile stated its cost; add --yes to go on")
            click.confirm("Go on?", abort=True, err=True)
        broker = None
        if fix:
            broker = bootstrap.broker(app.settings)
            broker.connect(retries=2)
        try:
            report = work.run(fix=fix, broker=broker)
        except QuotaExhausted as e:
            raise click.ClickException(str(e)) from None
        finally:
            if broker is not None:
                broker.close()
    finally:
        work.close()
    if as_json:
        print_json(report.as_json())
        return
    click.echo(f"{report.account} ({report.direction}): {report.checked} documents checked")
    click.echo(f"missing in the target: {', '.join(report.missing) or 'none'}")
    if report.in_progress:
        click.echo(f"  of which on their way: {', '.join(report.in_progress)}")
    if fix:
        click.echo(f"  queued now: {', '.join(report.queued) or 'none'}")
    groups = "; ".join(", ".join(g) for g in report.duplicates)
    click.echo(f"present twice in the target: {groups or 'none'}")
    click.echo(f"ledger rows whose target is gone: {', '.join(report.dangling) or 'none'}")
    click.echo("API calls: " + ", ".join(f"{api} {n}" for api, n in report.calls.items()))
