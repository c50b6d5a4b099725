"""`belegsync users add|list|remove` on SQLite and PostgreSQL: argon2 hashes, one-line errors."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from app.users import UserService
from shared.db import Database, WebUser
from shared.settings import Settings
from tests.helpers import Cli, snapshot


@pytest.fixture
def cli(settings: Settings, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(settings, capsys)


def test_add_list_remove_with_the_password_from_the_environment(
    cli: Cli, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BELEGSYNC_WEB_PASSWORD", "ein langes Passwort")
    added = cli("users", "add", "anna")
    assert added.code == 0, added.err
    assert "added user 'anna'" in added.out

    listed = cli("users", "list", "--json").json()
    assert [(u["name"], u["last_login_at"], u["sessions"]) for u in listed] == [("anna", None, 0)]
    assert "password" not in str(listed)

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            stored = session.scalar(select(WebUser.password_hash))
        assert stored is not None
        assert stored.startswith("$argon2id$")
        assert "ein langes Passwort" not in stored
        users = UserService(db)
        assert users.verify("anna", "ein langes Passwort") is not None
        assert users.verify("anna", "ein langes passwort") is None
        assert users.verify("bert", "ein langes Passwort") is None
    finally:
        db.dispose()

    removed = cli("users", "remove", "anna")
    assert removed.code == 0, removed.err
    assert cli("users", "list", "--json").json() == []


def test_password_from_stdin(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BELEGSYNC_WEB_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("von der Standardeingabe\n"))
    assert cli("users", "add", "bert").code == 0
    assert [u["name"] for u in cli("users", "list", "--json").json()] == ["bert"]


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (("users", "add", "anna"), "kurz", "the password is too short: at least 10 characters"),
        (("users", "add", "an na"), "lang genug 1234", "invalid user name 'an na'"),
        (("users", "add", "dora"), "lang genug 1234", "a user named 'dora' already exists"),
        (("users", "remove", "ghost"), "", "unknown user 'ghost'"),
    ],
)
def test_bad_input_gets_one_line_and_changes_nothing(
    cli: Cli,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    password: str,
    message: str,
) -> None:
    monkeypatch.setenv("BELEGSYNC_WEB_PASSWORD", "the first one")
    assert cli("users", "add", "dora").code == 0
    monkeypatch.setenv("BELEGSYNC_WEB_PASSWORD", password or "unused password")
    before = snapshot(settings.database_url)
    result = cli(*args)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert message in result.err
    assert "lang genug" not in result.err
    assert snapshot(settings.database_url) == before


def test_users_help_is_listed(cli: Cli) -> None:
    result = cli("--help")
    assert "users" in result.out
    assert "web" in result.out
    web_help = cli("web", "--help")
    assert "--port" in web_help.out
    assert "--host" in web_help.out
