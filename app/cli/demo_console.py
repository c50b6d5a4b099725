"""How `belegsync demo` looks on the console: narrative, progress bars, the final tables.

The work is in ``app.demo``; the command and its options are in ``app.cli.demo``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from app.cli.app import App
from app.cli.output import cell, info, print_json
from app.cli.overview import status
from app.demo import DemoError, DemoOptions, DemoReport, RoundResult, Tally, run_demo
from shared.domain import Direction
from shared.settings import Settings

pass_app = click.make_pass_decorator(App)

PIPE_WIDTH = 132
# The status table has twelve columns; below this it folds its timestamps in a pipe.
OVERVIEW_PIPE_WIDTH = 180
KIND_LABELS = {"invoices": "invoice", "credit-notes": "credit note"}


class ConsoleView:
    """Narrative, a progress bar per direction, and the final tables (none of it when quiet)."""

    def __init__(self, console: Console, *, quiet: bool, tables: bool, piped: bool) -> None:
        self.console = console
        self.piped = piped
        self.quiet = quiet
        self.tables = tables
        self._progress: Progress | None = None
        self._tasks: dict[Direction, TaskID] = {}

    # -- narrative and progress ----------------------------------------------------------------

    def note(self, label: str, text: str) -> None:
        if not self.quiet:
            self._line(f"  [bold]{label:<12}[/bold] {escape(text)}", markup=True)

    def round_started(self, title: str, tallies: list[Tally]) -> None:
        if self.quiet:
            return
        self._line(f"\n[bold]▶ {escape(title)}[/bold]", markup=True)
        self._progress = Progress(
            TextColumn("  {task.description:<30}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("synced  {task.fields[extra]}"),
            console=self.console,
        )
        self._tasks = {
            t.direction: self._progress.add_task(t.label, total=t.expected, extra="")
            for t in tallies
        }
        self._progress.start()
        self.round_progress(tallies)

    def round_progress(self, tallies: list[Tally]) -> None:
        if self._progress is None:
            return
        for tally in tallies:
            self._progress.update(
                self._tasks[tally.direction],
                completed=tally.synced,
                total=tally.expected,
                extra=_extra(tally),
            )

    def round_finished(self, result: RoundResult) -> None:
        self.close()
        if self.quiet:
            return
        for line in result.producer:
            self._line(f"  producer: {line}")
        self._line(f"  settled after {result.seconds:.1f}s")

    def close(self) -> None:
        """Stop a live progress display, also when the round ended in an error or Ctrl-C."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- the report ----------------------------------------------------------------------------

    def report(self, report: DemoReport, settings: Settings) -> None:
        if not self.tables:
            return
        self.console.print()
        show_overview(settings, OVERVIEW_PIPE_WIDTH if self.piped else None)
        self.console.print(export_table(report.export))
        self.console.print(import_table(report.import_))
        tag_sets = {", ".join(r["gmi_tags"]) for r in report.import_ if r["gmi_tags"] is not None}
        if tag_sets:
            self._line(f"  tags of the imported documents in GMI: {' | '.join(sorted(tag_sets))}")
        self._line("\n[bold]what did not move, and why[/bold]", markup=True)
        for line in waiting_lines(report):
            self._line(f"  {line}")

    def _line(self, text: str, *, markup: bool = False) -> None:
        # Soft wrap: a long line stays one line in a pipe or a log file.  Data (document
        # numbers, API errors) is never read as rich markup.
        self.console.print(text, highlight=False, soft_wrap=True, markup=markup)


def _extra(tally: Tally) -> str:
    parts = []
    if tally.in_flight:
        parts.append(f"{tally.in_flight} in flight")
    if tally.waiting:
        parts.append(f"{tally.waiting} waiting")
    if tally.stuck:
        parts.append(f"{tally.stuck} parked or held")
    return " · ".join(parts)


def _table(title: str, headers: list[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def export_table(rows: list[dict[str, Any]]) -> Table:
    table = _table(
        "export: where the GMI documents ended up",
        ["GMI uid", "number", "type", "approval", "state", "inbox id", "inbox type", "archived"],
    )
    for row in rows:
        approval = row["approval"]
        if row["approval_now"] and row["approval_now"] != approval:
            approval = f"{approval} → {row['approval_now']}"
        table.add_row(
            *map(
                cell,
                (
                    row["gmi_uid"],
                    row["document_number"],
                    row["document_type"],
                    approval,
                    row["state"],
                    row["billomat_inbox_id"],
                    row["inbox_document_type"],
                    row["archived_in_gmi"],
                ),
            )
        )
    return table


def import_table(rows: list[dict[str, Any]]) -> Table:
    table = _table(
        "import: where the Billomat documents ended up",
        ["Billomat", "id", "number", "status", "state", "GMI uid", "GMI type", "GMI company"],
    )
    for row in rows:
        table.add_row(
            *map(
                cell,
                (
                    KIND_LABELS.get(row["kind"], row["kind"]),
                    row["billomat_id"],
                    row["document_number"],
                    row["status"],
                    row["state"],
                    row["gmi_uid"],
                    row["gmi_document_type"],
                    row["gmi_company"],
                ),
            )
        )
    return table


def waiting_lines(report: DemoReport) -> list[str]:
    """Documents that did not land, grouped by direction, state and reason."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for row in report.export:
        if row["state"] != "synced":
            key = ("export", row["state"], row["reason"] or "-")
            groups.setdefault(key, []).append(f"{row['document_number']} ({row['gmi_uid']})")
    for row in report.import_:
        if row["state"] != "synced":
            label = f"{KIND_LABELS.get(row['kind'], row['kind'])} {row['billomat_id']}"
            groups.setdefault(("import", row["state"], row["reason"] or "-"), []).append(label)
    if not groups:
        return ["nothing: every document landed"]
    return [
        f"{direction} {state}: {reason}: {', '.join(names)}"
        for (direction, state, reason), names in groups.items()
    ]


def show_overview(settings: Settings, width: int | None) -> None:
    """Exactly what `belegsync status` prints, run against the demo's database."""
    app = App(settings)
    try:
        with columns(width):
            status.main(args=[], prog_name="belegsync status", obj=app, standalone_mode=False)
    finally:
        app.close()


@contextmanager
def columns(width: int | None) -> Iterator[None]:
    """The status command builds its own console; COLUMNS is how rich lets one set its width."""
    if width is None:
        yield
        return
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def print_summary(console: Console, report: DemoReport) -> None:
    def line(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True, markup=False)

    for problem in report.problems:
        line(f"✗ {problem}")
    line(f"\ncleaned up: {'; '.join(report.cleanup)}")
    if report.kept:
        line(
            f"look around: cd {report.kept} && belegsync status "
            "(database belegsync.db, key belegsync.key, logs *.log)"
        )
    verdict = "every document landed exactly once" if report.ok else "problems found"
    line(f"demo finished in {report.seconds['total']:.1f}s: {verdict}")


def run_demo_on_console(
    app: App,
    *,
    as_json: bool,
    quiet: bool,
    keep: bool,
    consumers: int,
    timeout: float,
    later_changes: bool,
) -> DemoReport:
    # With --json stdout carries only the JSON; the story goes to stderr.
    console = Console(stderr=as_json)
    piped = not console.is_terminal and "COLUMNS" not in os.environ
    if piped:
        # A pipe or a log file has no width; rich's 80 columns would fold every table cell.
        console = Console(stderr=as_json, width=PIPE_WIDTH)
    view = ConsoleView(console, quiet=quiet, tables=not as_json, piped=piped)
    options = DemoOptions(
        broker_url=app.settings.broker_url,
        consumers=consumers,
        timeout=timeout,
        keep=keep,
        later_changes=later_changes,
    )
    try:
        report = run_demo(options, view)
    except DemoError as e:
        view.close()  # first, so the log lines do not mix with a live progress bar
        for line in e.details:
            info(line)
        raise
    finally:
        view.close()
    if as_json:
        print_json(report.to_json())
    if not quiet or not as_json:
        print_summary(console, report)
    return report
