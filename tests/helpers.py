"""Small helpers shared by tests: running the CLI in-process, snapshotting the database."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from app.cli import main
from app.cli.app import App
from shared.settings import Settings


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """Runs `belegsync` in-process with explicit settings, capturing what it prints."""

    def __init__(self, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
        self.settings = settings
        self.capsys = capsys

    def __call__(self, *args: str) -> CliResult:
        self.capsys.readouterr()
        app = App(self.settings)
        try:
            code = main(list(args), app=app)
        finally:
            app.close()
        captured = self.capsys.readouterr()
        return CliResult(code, captured.out, captured.err)


def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for "nothing changed" assertions."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            return {
                table: sorted(
                    (
                        tuple(str(v) for v in row)
                        for row in conn.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608 - names from the inspector
                    ),
                )
                for table in tables
            }
    finally:
        engine.dispose()


def table_text(database_url: str, tables: Sequence[str] | None = None) -> str:
    """All table contents as one string, for "this secret is nowhere" assertions."""
    return json.dumps(
        snapshot(database_url)
        if tables is None
        else {k: v for k, v in snapshot(database_url).items() if k in tables}
    )
