"""Tables that fit the terminal: columns are dropped by priority, free text is cut, header
words are never split.

An 80-column terminal shows what an operator needs first; a wider one shows more columns.
What a table cannot hold (why an account needs attention) goes on detail lines below it.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GAP = 2  # spaces between columns
WIDE = 200  # into a pipe or a file: room for every column


@dataclass(frozen=True)
class Column:
    """``keep`` 0: always shown; columns with a higher number go first when space is short.

    ``flex`` columns (names, free text) share the width left over and are cut with "…",
    down to ``min_width``.
    """

    key: str
    header: str
    keep: int = 0
    flex: bool = False
    min_width: int = 8
    right: bool = False


def terminal_width() -> int:
    """``COLUMNS`` when set, else the terminal's width, else wide (a pipe or a file)."""
    value = os.environ.get("COLUMNS", "")
    if value.isdigit() and int(value) >= 20:
        return int(value)
    if sys.stdout.isatty():
        return max(20, shutil.get_terminal_size((80, 24)).columns)
    return WIDE


def text_width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def layout(
    rows: Sequence[Sequence[str]], columns: Sequence[Column], width: int
) -> list[tuple[int, int]]:
    """(column index, width) of the columns that fit, in their order."""
    natural = [
        max([text_width(c.header), *(text_width(row[i]) for row in rows)])
        for i, c in enumerate(columns)
    ]

    def floor(i: int) -> int:
        c = columns[i]
        # A header word is never split: no column is narrower than its header.
        return max(text_width(c.header), min(natural[i], c.min_width)) if c.flex else natural[i]

    shown = list(range(len(columns)))
    while True:
        needed = sum(floor(i) for i in shown) + GAP * (len(shown) - 1)
        droppable = [i for i in shown if columns[i].keep > 0]
        if needed <= width or not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].keep, i)))
    widths = {i: floor(i) for i in shown}
    extra = width - sum(widths.values()) - GAP * (len(shown) - 1)
    flexible = [i for i in shown if columns[i].flex]
    # Flexible columns get the room left over, in equal shares; one that needs less than its
    # share leaves the rest to the others.
    for count, i in enumerate(sorted(flexible, key=lambda i: natural[i] - widths[i])):
        share = max(0, extra) // (len(flexible) - count)
        grow = min(natural[i] - widths[i], share)
        widths[i] += grow
        extra -= grow
    return [(i, widths[i]) for i in shown]


def render(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    width: int,
    format_cell: Any,
) -> list[str]:
    """The table as plain lines, none wider than ``width`` (unless even the fixed columns
    are wider: then they are cut rather than wrapped)."""
    cells = [[format_cell(row.get(c.key)) for c in columns] for row in rows]
    chosen = layout(cells, columns, width)
    lines = [_line([columns[i].header for i, _ in chosen], chosen, columns)]
    lines += [_line([row[i] for i, _ in chosen], chosen, columns) for row in cells]
    return [line.rstrip()[: max(width, 1)] if text_width(line) > width else line for line in lines]


def _line(
    values: Sequence[str], chosen: Sequence[tuple[int, int]], columns: Sequence[Column]
) -> str:
    parts = []
    for value, (i, w) in zip(values, chosen, strict=True):
        text = _cut(" ".join(value.split()), w)
        pad = " " * (w - text_width(text))
        parts.append(pad + text if columns[i].right else text + pad)
    return (" " * GAP).join(parts).rstrip()


def _cut(text: str, width: int) -> str:
    if text_width(text) <= width:
        return text
    out = ""
    for ch in text:
        if text_width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def detail_lines(label: str, text: str, width: int, indent: int = 2) -> list[str]:
    """``label: text`` wrapped to the width, continuation lines indented."""
    return textwrap.wrap(
        f"{label}: {' '.join(text.split())}",
        width=max(width, 20),
        subsequent_indent=" " * indent,
        break_long_words=True,
        break_on_hyphens=False,
    )
