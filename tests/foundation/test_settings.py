"""Every BELEGSYNC_* variable is checked when the settings load: a wrong one ends any command
with exit code 2 and one line naming the variable and what is expected, and nothing is written
(no database file, no key file).  Wrong broker or database credentials are configuration too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from shared.crypto import generate_key
from shared.settings import QUOTA_SETTINGS, Settings
from tests.conftest import BROKER_URL, POSTGRES_ADMIN_URL, make_settings
from tests.helpers import Cli

ADD = (
    "accounts", "add", "export", "acme", "--gmi-api-key", "gmi-key-1234",
    "--billomat-id", "acme", "--billomat-api-key", "bm-key-5678",
)  # fmt: skip

RULES = [
    # (variable, value, what the line must say)
    ("DATABASE_URL", "nonsense", "expected sqlite:///PATH or postgresql+psycopg://"),
    ("DATABASE_URL", "postgres://u:pw@db/belegsync", "postgres:// is not supported"),
    ("DATABASE_URL", "postgresql://u:pw@db/belegsync", "use postgresql+psycopg://"),
    ("DATABASE_URL", "postgresql+psycopg://u:pw@/belegsync", "host and database name"),
    ("DATABASE_URL", "postgresql+psycopg://u:pw@db:port/belegsync", "host and database name"),
    ("DATABASE_URL", "sqlite://", "expected sqlite:///PATH"),
    ("DATABASE_URL", "sqlite:///no/such/folder/belegsync.db", "of the SQLite file does not exist"),
    ("BROKER_URL", "http://guest:guest@127.0.0.1:5672//", "http:// is not a RabbitMQ URL"),
    ("BROKER_URL", "guest@127.0.0.1", "is not a RabbitMQ URL"),
    ("BROKER_URL", "amqp://guest:guest@127.0.0.1:amqp//", "a host is required"),
    ("QUEUE_PREFIX", "my queues", "a word of letters, digits"),
    ("QUEUE_PREFIX", "amq.belegsync", "reserved by RabbitMQ"),
    ("SECRET_KEY", "garbage", "not a valid Fernet key"),
    ("SECRET_KEY", "x" * 44, "not a valid Fernet key"),
    ("SECRET_KEY_FILE", ".", "is a folder"),
    ("GMI_BASE_URL", "api.getmyinvoices.com/accounts/v3", "expected an http(s) URL"),
    ("GMI_BASE_URL", "ftp://api.getmyinvoices.com", "expected an http(s) URL"),
    ("BILLOMAT_BASE_URL", "https://acme.billomat.net/api", "must contain {billomat_id}"),
    ("BILLOMAT_BASE_URL", "https://{billomat_id}.billomat.net/{user}", "only placeholder"),
    ("BILLOMAT_BASE_URL", "{billomat_id}.billomat.net", "expected an http(s) URL"),
    ("RETRY_DELAYS", "10s,5x", "invalid duration '5x'"),
    ("RETRY_DELAYS", "0s", "too short: at least 1s"),
    ("RETRY_DELAYS", "10s,30d", "too long: at most 7d"),
    ("MAX_ATTEMPTS", "0", "a whole number from 1 to 1000"),
    ("MAX_ATTEMPTS", "many", "a whole number from 1 to 1000"),
    ("LOG_FORMAT", "xml", "text or json"),
    ("LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("METRICS_PORT", "70000", "a port number from 0 (off) to 65535"),
    ("METRICS_PORT", "http", "a port number"),
    ("PUBLISH_TIMEOUT", "0", "a number of seconds above 0"),
    ("PUBLISH_TIMEOUT", "soon", "a number of seconds above 0"),
    ("PREFETCH", "0", "a whole number from 1 to 100"),
    ("PREFETCH", "1.5", "a whole number from 1 to 100"),
    ("BILLOMAT_QUOTA_RESERVE", "-1", "a whole number from 0 to 1000"),
    ("IMPORT_OVERLAP_DAYS", "99999", "a whole number of days from 0 to 3650"),
    ("BILLOMAT_APP_SECRET", "two words", "the secret of a registered Billomat app"),
    ("WEB_SESSION_SECRET", "short", "at least 16 characters"),
    ("WEB_SECURE_COOKIES", "maybe", "true or false"),
    ("WEB_SESSION_IDLE_MINUTES", "0", "a whole number of minutes from 1"),
    ("WEB_TRUSTED_PROXIES", "127.0.0.1,proxy.local", "'proxy.local' is not an IP address"),
]


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder as the working directory and an environment without BELEGSYNC_*."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in list(os.environ):
        if name.startswith("BELEGSYNC_"):
            monkeypatch.delenv(name)
    return folder


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    RULES,
    ids=[f"{v.lower()}-{n}" for n, (v, _, _) in enumerate(RULES)],
)
@pytest.mark.parametrize("command", [ADD, ("status",)], ids=["accounts-add", "status"])
def test_a_wrong_setting_ends_the_command_with_one_line_and_writes_nothing(
    empty_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    expected: str,
    command: tuple[str, ...],
) -> None:
    if variable == "BILLOMAT_APP_SECRET":
        monkeypatch.setenv("BELEGSYNC_BILLOMAT_APP_ID", "app-1")
    monkeypatch.setenv(f"BELEGSYNC_{variable}", value)

    code, out, err = run(capsys, *command)

    assert code == 2
    assert out == ""
    assert err.startswith(f"belegsync: error: BELEGSYNC_{variable}: "), err
    assert err.count("\n") == 1, err
    assert expected in err
    assert list(empty_folder.iterdir()) == []  # no database file, no key file


def test_secrets_and_passwords_in_urls_are_never_repeated(
    empty_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable, value in (
        ("SECRET_KEY", "s3cr3t-but-no-fernet-key"),
        ("DATABASE_URL", "mysql://user:Pa55word@db/x"),
        ("BROKER_URL", "http://user:Pa55word@mq//"),
        ("BILLOMAT_APP_SECRET", "Pa55 word"),
    ):
        monkeypatch.setenv("BELEGSYNC_BILLOMAT_APP_ID", "app-1")
        monkeypatch.setenv(f"BELEGSYNC_{variable}", value)
        code, _, err = run(capsys, "status")
        monkeypatch.delenv(f"BELEGSYNC_{variable}")
        assert code == 2
        assert variable in err
        assert "Pa55" not in err
        assert "s3cr3t" not in err


def test_app_id_without_app_secret_names_both(
    empty_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BELEGSYNC_BILLOMAT_APP_ID", "app-1")
    code, _, err = run(capsys, "status")
    assert code == 2
    assert err == (
        "belegsync: error: BELEGSYNC_BILLOMAT_APP_ID and BELEGSYNC_BILLOMAT_APP_SECRET go "
        "together: set both (a registered Billomat app) or neither\n"
    )


def test_an_empty_variable_counts_as_unset(
    empty_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BELEGSYNC_MAX_ATTEMPTS", "")
    monkeypatch.setenv("BELEGSYNC_SECRET_KEY", "")
    code, _, err = run(capsys, "status")
    assert "BELEGSYNC_MAX_ATTEMPTS" not in err
    assert "no database at belegsync.db" in err  # got as far as the database
    assert code == 2


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("documents",),
        ("accounts", "list"),
        ("accounts", "show", "x"),
        ("replay", "--all"),
    ],
)
def test_read_only_commands_on_a_missing_database_say_how_to_create_it(
    empty_folder: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, *command)
    assert code == 2
    assert err == (
        "belegsync: error: no database at belegsync.db: create it with `belegsync db upgrade` "
        "(or point BELEGSYNC_DATABASE_URL at an existing one)\n"
    )
    assert list(empty_folder.iterdir()) == []


def test_a_refused_add_creates_no_key_file(
    empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    before = sorted(p.name for p in empty_folder.iterdir())
    for bad in (("--interval", "99999d"), ("--date-from", "2026-02-30")):
        code, _, err = run(capsys, *ADD, *bad)
        assert code == 2, err
    code, _, err = run(capsys, "accounts", "add", "export", "a b/c", *ADD[4:])
    assert code == 2
    assert "invalid account name 'a b/c'" in err
    assert sorted(p.name for p in empty_folder.iterdir()) == before
    assert not (empty_folder / "belegsync.key").exists()

    assert run(capsys, *ADD)[0] == 0  # a good one creates it, once
    assert (empty_folder / "belegsync.key").exists()


def test_the_console_script_says_it_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELEGSYNC_")}
    env["BELEGSYNC_PREFETCH"] = "lots"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "status"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        "belegsync: error: BELEGSYNC_PREFETCH: expected a whole number from 1 to 100 (got 'lots')\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_wrong_broker_credentials_are_configuration_not_an_outage(
    sqlite_database_url: str,
    tmp_path: Path,
    broker_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(sqlite_database_url, tmp_path)
    assert Cli(settings, capsys)(*ADD).code == 0
    wrong = BROKER_URL.replace("guest:guest@", "nosuchuser:Pa55word@")
    cli = Cli(make_settings(sqlite_database_url, tmp_path, broker_url=wrong), capsys)
    for command in (("produce", "--once"), ("consume", "--metrics-port", "0")):
        result = cli(*command)
        assert result.code == 2, result.err
        lines = [line for line in result.err.splitlines() if line.startswith("belegsync: error")]
        assert lines == [result.err.splitlines()[-1]]
        assert "BELEGSYNC_BROKER_URL: RabbitMQ at" in lines[0]
        assert "ACCESS_REFUSED" in lines[0]
        assert "Pa55word" not in result.err
        assert "retrying" not in result.err


def test_a_wrong_database_login_is_configuration_not_an_outage(
    tmp_path: Path, postgres_databases: object, capsys: pytest.CaptureFixture[str]
) -> None:
    if postgres_databases is None:
        pytest.skip("PostgreSQL is not reachable")
    url = POSTGRES_ADMIN_URL.split("://", 1)[1].split("@", 1)[1]
    wrong = f"postgresql+psycopg://nosuchuser:Pa55word@{url}"
    cli = Cli(make_settings(wrong, tmp_path, secret_key=generate_key()), capsys)
    for command in (("status",), ("db", "upgrade"), ("produce", "--once")):
        result = cli(*command)
        assert result.code == 2, result.err
        assert result.err.count("\n") == 1, result.err
        assert result.err.startswith(
            "belegsync: error: BELEGSYNC_DATABASE_URL: the database refused the connection"
        )
        assert "nosuchuser" in result.err
        assert "Pa55word" not in result.err


def test_the_quota_environment_gives_another_process_the_same_quotas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in QUOTA_SETTINGS:
        monkeypatch.delenv(f"BELEGSYNC_{name.upper()}", raising=False)
    ours = Settings(gmi_calls_per_minute=7, gmi_minute_seconds=2.5, billomat_calls_per_window=42)
    env = ours.quota_environment()
    assert env["BELEGSYNC_GMI_CALLS_PER_MINUTE"] == "7"
    assert env["BELEGSYNC_BILLOMAT_CALLS_PER_WINDOW"] == "42"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    theirs = Settings()
    assert {n: getattr(theirs, n) for n in QUOTA_SETTINGS} == {
        n: getattr(ours, n) for n in QUOTA_SETTINGS
    }
    # an unset optional limit stays unset rather than becoming the string "None"
    assert (
        "BELEGSYNC_BILLOMAT_CALLS_PER_WINDOW"
        not in Settings().model_copy(update={"billomat_calls_per_window": None}).quota_environment()
    )
