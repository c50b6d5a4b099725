"""`belegsync doctor NAME`: check an account against the real APIs before trusting it."""

from __future__ import annotations

import click

from app.cli.app import App
from app.cli.output import info, print_json

pass_app = click.make_pass_decorator(App)

MARKS = {"ok": "ok", "warn": "!!", "fail": "XX", "unknown": "??"}


@click.command("doctor")
@click.argument("name")
@click.option(
    "--write-probe",
    is_flag=True,
    help="Upload one tiny marked test PDF where the account uploads (Billomat inbox for "
    "export, GMI for import), read it back and delete it, also when interrupted.",
)
@click.option(
    "--limit-probe",
    is_flag=True,
    help="Call GMI's status endpoint until it refuses one (up to 120 calls: a minute's quota) "
    "to see how GMI says a limit was reached.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@pass_app
def doctor(app: App, /, name: str, write_probe: bool, limit_probe: bool, as_json: bool) -> None:
    """Check the credentials, the quotas and every undocumented API behaviour for one account.

    Read-only unless --write-probe. Each finding is one line: the question, the answer, and
    what belegsync does about it; findings are recorded so the running service adapts.
    Exit code 1 when a check failed (e.g. a rejected key).
    """
    from app.doctor import Doctor
    from app.probe import ProbeInterrupted

    db = app.migrated_db()
    with db.session() as session:
        account = app.accounts.get(session, name)
    credentials = app.accounts.credentials(account)
    runner = Doctor(db, app.settings)
    try:
        report = runner.run(account, credentials, write_probe=write_probe, limit_probe=limit_probe)
    except ProbeInterrupted as e:
        info("interrupted; the write probe was removed before exiting")
        raise click.exceptions.Exit(128 + e.signum) from None
    finally:
        runner.close()
    if as_json:
        print_json(report.as_json())
    else:
        if report.cleanup:
            click.echo(report.cleanup)
        for check in report.checks:
            click.echo(
                f"[{MARKS.get(check.status, '??')}] {check.question} {check.answer} "
                f"-> {check.action}"
            )
        calls = ", ".join(f"{api} {n}" for api, n in report.calls.items())
        click.echo(f"API calls: {calls}")
    if not report.ok:
        raise click.exceptions.Exit(1)
