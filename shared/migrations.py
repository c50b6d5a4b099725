"""Alembic, driven from code: `belegsync db upgrade` and the tests use these functions."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic import command


def script_location() -> Path:
    """The migration scripts: top-level ``alembic/`` in a checkout, packaged in a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "alembic", here / "_alembic"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("alembic migration scripts not found next to the shared package")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # Alembic's ini interpolation treats % specially; URLs may contain %-escapes.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@cache
def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no alembic revisions found")
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
