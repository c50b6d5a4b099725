"""`belegsync demo`: the whole loop on local simulators in one command, shown on the console.

The work is in ``app.demo``, the drawing in ``app.cli.demo_console``; this module parses the
options (and imports the rest only when the demo runs).
"""

from __future__ import annotations

import click

from app.cli.app import App

pass_app = click.make_pass_decorator(App)


@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
@click.option("--quiet", "-q", is_flag=True, help="No progress, only the result.")
@click.option(
    "--keep", is_flag=True, help="Keep the temporary database, key and logs; print where."
)
@click.option(
    "--consumers",
    type=click.IntRange(1, 8),
    default=2,
    show_default=True,
    help="Consumer processes to start.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=5),
    default=60.0,
    show_default=True,
    help="Seconds each round may take before the demo gives up.",
)
@click.option(
    "--later-changes/--no-later-changes",
    default=True,
    show_default=True,
    help="Approve a waiting document and finish the draft, then poll again.",
)
@pass_app
def _demo(
    app: App,
    /,
    as_json: bool,
    quiet: bool,
    keep: bool,
    consumers: int,
    timeout: float,
    later_changes: bool,
) -> None:
    """The whole loop on local simulators: GMI ⇄ RabbitMQ ⇄ Billomat, in one command.

    Needs RabbitMQ (BELEGSYNC_BROKER_URL); everything else is temporary and removed afterwards:
    simulators on free ports with demo data, a fresh SQLite database, an export and an import
    account, a producer and consumer processes on their own queues (belegsync-demo-…). Your
    belegsync.db, belegsync.key and queues are not touched.
    """
    from app.cli.demo_console import run_demo_on_console
    from app.demo import DemoError

    report = run_demo_on_console(
        app,
        as_json=as_json,
        quiet=quiet,
        keep=keep,
        consumers=consumers,
        timeout=timeout,
        later_changes=later_changes,
    )
    if not report.ok:
        raise DemoError(f"the demo found {len(report.problems)} problem(s): {report.problems[0]}")


demo = click.command("demo")(_demo)
