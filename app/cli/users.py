"""`belegsync users …`: who may log in to the web console."""

from __future__ import annotations

import os
import sys

import click

from app.cli.app import App
from app.cli.output import print_json, print_table
from shared.errors import UsageError

pass_app = click.make_pass_decorator(App)

PASSWORD_VARIABLE = "BELEGSYNC_WEB_PASSWORD"  # noqa: S105 - a variable name


def read_password() -> str:
    """From BELEGSYNC_WEB_PASSWORD, else stdin: asked twice on a terminal, one line from a pipe."""
    from_env = os.environ.get(PASSWORD_VARIABLE)
    if from_env:
        return from_env
    if sys.stdin is None:
        raise UsageError(f"no password: set {PASSWORD_VARIABLE} or pipe it to stdin")
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageError(f"no password: set {PASSWORD_VARIABLE} or pipe it to stdin")
    return line


@click.group("users")
def users() -> None:
    """Users of the web console (`belegsync web`)."""


@users.command("add")
@click.argument("name")
@pass_app
def add(app: App, /, name: str) -> None:
    """Add a user; the password comes from BELEGSYNC_WEB_PASSWORD or stdin."""
    from app.users import UserService, check_name, check_password

    check_name(name)
    password = check_password(read_password())
    UserService(app.migrated_db()).add(name, password)
    click.echo(f"added user {name!r}; log in at the console (`belegsync web`)")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def list_users(app: App, /, as_json: bool) -> None:
    """List the console's users (never their passwords)."""
    from dataclasses import asdict

    from app.users import UserService

    rows = [asdict(user) for user in UserService(app.migrated_db()).list()]
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        [
            ("name", "name"),
            ("created_at", "created"),
            ("last_login_at", "last login"),
            ("sessions", "open sessions"),
        ],
        title="console users",
    )


@users.command("remove")
@click.argument("name")
@pass_app
def remove(app: App, /, name: str) -> None:
    """Remove a user; their open sessions end at once."""
    from app.users import UserService

    UserService(app.migrated_db()).remove(name)
    click.echo(f"removed user {name!r}")
