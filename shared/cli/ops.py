"""Operational commands (produce, consume, status, documents, replay, simulate, demo)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Attach the operational commands to the root group."""
