"""How commands print: tables for people, JSON with --json, one-line errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from app.cli.tables import Column, render, terminal_width

if TYPE_CHECKING:
    from rich.console import Console


def _console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False, width=terminal_width())


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
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str] | Column],
    *,
    title: str = "",
    empty: str = "",
    width: int | None = None,
) -> None:
    """A table fitted to the terminal (see ``app.cli.tables``); ``empty`` when there are no rows.

    ``columns`` are ``Column``s or (key, header) pairs (always shown).
    """
    width = width or terminal_width()
    if not rows:
        sys.stdout.write((empty or f"no {title or 'rows'}") + "\n")
        return
    specs = [c if isinstance(c, Column) else Column(c[0], c[1]) for c in columns]
    lines = render(rows, specs, width=width, format_cell=cell)
    if title:
        lines.insert(0, title)
    sys.stdout.write("\n".join(lines) + "\n")


def print_lines(lines: Sequence[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


def print_record(record: Mapping[str, Any]) -> None:
    """Values are plain text, never rich markup: they may hold anything a server or a parked
    message said, e.g. ``[/]``."""
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
