"""How commands print: tables for people, JSON with --json, one-line errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _console() -> Console:
    from rich.console import Console

    # On a terminal rich fits the table to it; into a pipe or file it would assume 80
    # columns and fold wide tables, so give it room instead.
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_plain, ensure_ascii=False) + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], *, title: str = ""
) -> None:
    """``columns`` are (key, header) pairs.  Cells are plain text, never rich markup: they may
    hold anything a server or a parked message said, e.g. ``[/]``."""
    from rich.table import Table
    from rich.text import Text

    console = _console()
    if not rows:
        console.print(Text(f"no {title}" if title else "nothing to show"))
        return
    table = Table(title=Text(title) if title else None, title_justify="left")
    for _, header in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell(row.get(key))) for key, _ in columns))
    console.print(table)


def print_record(record: Mapping[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in record.items():
        table.add_row(Text(key.replace("_", " ")), Text(cell(value)))
    _console().print(table)


def error(message: str) -> None:
    """One line on stderr, whatever the message contains."""
    line = " ".join(str(message).split())
    sys.stderr.write(f"belegsync: error: {line}\n")


def info(message: str) -> None:
    sys.stderr.write(f"belegsync: {message}\n")
