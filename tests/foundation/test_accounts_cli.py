"""`belegsync accounts …` on SQLite and PostgreSQL: settings, validation, secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.accounts import AccountService
from shared.crypto import SecretBox, generate_key
from shared.db import AccountEvent, Database, sqlite_path
from shared.errors import SetupError
from shared.settings import Settings
from tests.conftest import make_settings
from tests.helpers import Cli, snapshot, table_text

GMI_KEY = "GMI-SECRET-7f3a-91b2-c4d5"
BILLOMAT_KEY = "bm-secret-0c8e9d7f6a5b"

EXPORT_ARGS = (
    "--gmi-api-key",
    GMI_KEY,
    "--billomat-id",
    "acme",
    "--billomat-api-key",
    BILLOMAT_KEY,
)
IMPORT_ARGS = EXPORT_ARGS


@pytest.fixture
def cli(settings: Settings, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(settings, capsys)


def add_export(cli: Cli, name: str = "acme-export", *extra: str) -> None:
    result = cli("accounts", "add", "export", name, *EXPORT_ARGS, *extra)
    assert result.code == 0, result.err


def test_add_export_account_with_every_setting(cli: Cli) -> None:
    result = cli(
        "accounts", "add", "export", "acme-export", *EXPORT_ARGS,
        "--interval", "30m", "--note", "Buchhaltung März",
        "--document-types", "incoming_invoice,RECEIPT", "--tags", "Hosting,Büro",
        "--require-approval", "--archive-after-transfer",
        "--date-from", "2026-01-01", "--date-to", "2026-12-31",
    )  # fmt: skip
    assert result.code == 0, result.err
    shown = cli("accounts", "show", "acme-export", "--json").json()
    assert shown == {
        **shown,
        "direction": "export",
        "enabled": True,
        "billomat_id": "acme",
        "interval": "30m",
        "note": "Buchhaltung März",
        "document_types": ["INCOMING_INVOICE", "RECEIPT"],
        "tags": ["Hosting", "Büro"],
        "require_approval": True,
        "archive_after_transfer": True,
        "date_from": "2026-01-01",
        "date_to": "2026-12-31",
        "gmi_api_key": "***c4d5",
        "billomat_api_key": "***6a5b",
    }


def test_add_import_account_with_defaults_and_every_setting(cli: Cli) -> None:
    assert cli("accounts", "add", "import", "plain", *IMPORT_ARGS).code == 0
    plain = cli("accounts", "show", "plain", "--json").json()
    assert plain["document_kinds"] == ["invoices", "credit-notes"]
    assert plain["default_document_type"] == "MISC"
    assert plain["interval"] == "15m"

    result = cli(
        "accounts", "add", "import", "full", *IMPORT_ARGS,
        "--interval", "1h", "--default-document-type", "sales_invoice",
        "--default-tags", "billomat,import", "--default-company", "Billomat Import",
        "--document-kinds", "invoices,credit-notes,reminders",
    )  # fmt: skip
    assert result.code == 0, result.err
    full = cli("accounts", "show", "full", "--json").json()
    assert full["document_kinds"] == ["invoices", "credit-notes", "reminders"]
    assert full["default_document_type"] == "SALES_INVOICE"
    assert full["default_tags"] == ["billomat", "import"]
    assert full["default_company"] == "Billomat Import"
    assert full["interval"] == "1h"


def test_list_is_a_table_by_default_and_json_on_request(cli: Cli) -> None:
    add_export(cli, "one")
    assert cli("accounts", "add", "import", "two", *IMPORT_ARGS).code == 0
    table = cli("accounts", "list")
    assert table.code == 0
    assert "one" in table.out
    assert "two" in table.out
    assert "dir" in table.out.splitlines()[1]  # the header, below the title
    rows = cli("accounts", "list", "--json").json()
    assert [(r["name"], r["direction"]) for r in rows] == [("one", "export"), ("two", "import")]


def test_update_pause_resume_and_remove(cli: Cli) -> None:
    add_export(cli, "acme")
    result = cli(
        "accounts", "update", "acme", "--interval", "1d", "--tags", "A",
        "--require-approval", "--date-to", "2027-01-01", "--rename", "acme-2",
    )  # fmt: skip
    assert result.code == 0, result.err
    shown = cli("accounts", "show", "acme-2", "--json").json()
    assert (shown["interval"], shown["tags"], shown["require_approval"], shown["date_to"]) == (
        "1d",
        ["A"],
        True,
        "2027-01-01",
    )
    assert (
        cli("accounts", "update", "acme-2", "--no-require-approval", "--date-to", "none").code == 0
    )
    shown = cli("accounts", "show", "acme-2", "--json").json()
    assert (shown["require_approval"], shown["date_to"]) == (False, None)

    assert cli("accounts", "pause", "acme-2").code == 0
    assert cli("accounts", "show", "acme-2", "--json").json()["enabled"] is False
    assert cli("accounts", "resume", "acme-2").code == 0
    assert cli("accounts", "show", "acme-2", "--json").json()["enabled"] is True

    assert cli("accounts", "remove", "acme-2", "--yes").code == 0
    assert cli("accounts", "list", "--json").json() == []


def test_changes_from_the_cli_are_in_the_account_history_with_the_shell_user(
    cli: Cli, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "anna")  # what getpass reads first
    add_export(cli, "acme")
    assert cli("accounts", "update", "acme", "--interval", "1d").code == 0
    assert cli("accounts", "update", "acme", "--gmi-api-key", "GMI-NEW-KEY-0001").code == 0
    assert cli("accounts", "pause", "acme").code == 0
    assert cli("accounts", "resume", "acme").code == 0
    assert cli("accounts", "remove", "acme", "--yes").code == 0

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            events = session.scalars(select(AccountEvent).order_by(AccountEvent.id)).all()
            rows = [(e.account_name, e.actor, e.action, e.details) for e in events]
    finally:
        db.dispose()
    assert [(name, actor, action) for name, actor, action, _ in rows] == [
        ("acme", "anna (CLI)", action)
        for action in ("added", "updated", "updated", "paused", "resumed", "removed")
    ]
    assert "interval" in rows[1][3]
    assert rows[2][3] == "GMI API key changed"  # that it changed, never what to
    assert not any(GMI_KEY in d or "GMI-NEW-KEY-0001" in d or BILLOMAT_KEY in d for *_, d in rows)


def test_api_keys_are_encrypted_at_rest_and_never_printed(
    cli: Cli, settings: Settings, database_url: str
) -> None:
    outputs = []
    outputs.append(cli("accounts", "add", "export", "acme", *EXPORT_ARGS, "--tags", "x"))
    outputs.append(cli("accounts", "add", "import", "imp", *IMPORT_ARGS))
    for args in (
        ("accounts", "list"),
        ("accounts", "list", "--json"),
        ("accounts", "show", "acme"),
        ("accounts", "show", "acme", "--json"),
        ("accounts", "show", "imp", "--json"),
        ("accounts", "update", "acme", "--gmi-api-key", GMI_KEY),
        ("accounts", "pause", "acme"),
        ("accounts", "resume", "acme"),
        ("accounts", "show", "nope"),
    ):
        outputs.append(cli(*args))
    for result in outputs:
        for key in (GMI_KEY, BILLOMAT_KEY):
            assert key not in result.out
            assert key not in result.err
    # The masked form shows only the last four characters.
    assert cli("accounts", "show", "acme", "--json").json()["gmi_api_key"] == "***c4d5"

    contents = table_text(database_url)
    assert "acme" in contents  # the dump really holds the table contents
    for key in (GMI_KEY, BILLOMAT_KEY):
        assert key not in contents
    if settings.is_sqlite:
        db_file = Path(database_url.removeprefix("sqlite:///"))
        for path in db_file.parent.glob(db_file.name + "*"):  # the file, its -wal and -shm
            raw = path.read_bytes()
            for key in (GMI_KEY, BILLOMAT_KEY):
                assert key.encode() not in raw, path

    # ...and yet they decrypt to what was given
    db = Database(settings.database_url)
    try:
        service = AccountService(db, lambda: SecretBox(settings.secret_key.get_secret_value()))  # type: ignore[union-attr]
        with db.session() as session:
            creds = service.credentials(service.get(session, "acme"))
        assert (creds.gmi_api_key, creds.billomat_api_key) == (GMI_KEY, BILLOMAT_KEY)
        assert GMI_KEY not in repr(creds)
    finally:
        db.dispose()


def test_keys_are_read_from_the_environment_when_flags_are_left_out(
    cli: Cli, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BELEGSYNC_GMI_API_KEY", "env-gmi-key-1111")
    monkeypatch.setenv("BELEGSYNC_BILLOMAT_API_KEY", "env-bm-key-2222")
    result = cli("accounts", "add", "export", "from-env", "--billomat-id", "acme")
    assert result.code == 0, result.err
    shown = cli("accounts", "show", "from-env", "--json").json()
    assert (shown["gmi_api_key"], shown["billomat_api_key"]) == ("***1111", "***2222")


BAD_INPUT = [
    pytest.param(
        (
            "add",
            "export",
            "x",
            "--gmi-api-key",
            "k",
            "--billomat-api-key",
            "k",
            "--billomat-id",
            bad,
        ),
        "invalid Billomat ID",
        id=f"billomat-id-{label}",
    )
    for label, bad in [
        ("url", "evil.com/x#"),
        ("dot", "a.b"),
        ("path", "../x"),
        ("empty", ""),
        ("upper", "ACME"),
        ("space", "ac me"),
        ("trailing-hyphen", "acme-"),
    ]
] + [
    pytest.param(
        ("add", "export", "x", *EXPORT_ARGS, "--document-types", "INVOICE"),
        "unknown GMI document type 'INVOICE'",
        id="document-type",
    ),
    pytest.param(
        ("add", "import", "x", *IMPORT_ARGS, "--document-kinds", "invoices,bills"),
        "unknown Billomat document kind 'bills'",
        id="document-kind",
    ),
    pytest.param(
        ("add", "import", "x", *IMPORT_ARGS, "--default-document-type", "FOO"),
        "unknown GMI document type 'FOO'",
        id="default-document-type",
    ),
    pytest.param(
        ("add", "export", "x", *EXPORT_ARGS, "--date-from", "01.02.2026"),
        "invalid --date-from '01.02.2026': use YYYY-MM-DD",
        id="date-format",
    ),
    pytest.param(
        ("add", "export", "x", *EXPORT_ARGS, "--date-to", "2026-02-30"),
        "no such date: --date-to '2026-02-30' (February 2026 has 28 days)",
        id="date-impossible",
    ),
    pytest.param(
        (
            "add",
            "export",
            "x",
            *EXPORT_ARGS,
            "--date-from",
            "2026-05-01",
            "--date-to",
            "2026-04-01",
        ),
        "date range is empty",
        id="date-order",
    ),
    pytest.param(
        ("add", "export", "x", *EXPORT_ARGS, "--interval", "30s"),
        "too short: at least 1m",
        id="interval-short",
    ),
    pytest.param(
        ("add", "export", "x", *EXPORT_ARGS, "--interval", "15x"),
        "invalid duration '15x'",
        id="interval-unit",
    ),
    pytest.param(
        ("add", "export", "x", *EXPORT_ARGS, "--interval", "soon"),
        "invalid duration 'soon'",
        id="interval-word",
    ),
    pytest.param(
        ("add", "export", "existing", *EXPORT_ARGS), "already exists", id="duplicate-name"
    ),
    pytest.param(
        ("update", "other", "--rename", "existing"), "already exists", id="rename-to-taken"
    ),
    pytest.param(("show", "ghost"), "unknown sync account 'ghost'", id="show-unknown"),
    pytest.param(("update", "ghost", "--note", "x"), "unknown sync account", id="update-unknown"),
    pytest.param(("pause", "ghost"), "unknown sync account", id="pause-unknown"),
    pytest.param(("resume", "ghost"), "unknown sync account", id="resume-unknown"),
    pytest.param(("remove", "ghost"), "unknown sync account", id="remove-unknown"),
    pytest.param(
        ("update", "existing", "--default-tags", "a"),
        "--default-tags applies to import accounts only",
        id="option-of-other-direction",
    ),
    pytest.param(("update", "existing", "--interval", "10s"), "too short", id="update-interval"),
    pytest.param(
        ("update", "existing", "--date-from", "2030-01-01", "--date-to", "2029-01-01"),
        "date range is empty",
        id="update-date-order",
    ),
    pytest.param(("update", "existing"), "nothing to update", id="update-nothing"),
    pytest.param(
        ("add", "export", "x", "--billomat-id", "acme", "--billomat-api-key", "k"),
        "a GMI API key is required",
        id="missing-gmi-key",
    ),
    pytest.param(
        ("add", "export", "x", "--gmi-api-key", "k", "--billomat-api-key", "k"),
        "--billomat-id is required",
        id="missing-billomat-id",
    ),
    pytest.param(
        ("add", "export", "x", *EXPORT_ARGS, "--no-such-option"),
        "No such option '--no-such-option'",
        id="unknown-option",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    cli: Cli,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.delenv("BELEGSYNC_GMI_API_KEY", raising=False)
    monkeypatch.delenv("BELEGSYNC_BILLOMAT_API_KEY", raising=False)
    add_export(cli, "existing")
    add_export(cli, "other")
    before = snapshot(database_url)

    result = cli("accounts", *args)

    assert result.code == 2
    assert message in result.err
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("belegsync: error: ")
    assert snapshot(database_url) == before


def test_unmigrated_database_is_named_and_nothing_is_created(
    empty_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(make_settings(empty_database_url, tmp_path), capsys)
    for args in (("accounts", "list"), ("accounts", "add", "export", "x", *EXPORT_ARGS)):
        result = cli(*args)
        assert result.code == 2
        # an empty PostgreSQL database is "not migrated"; a SQLite file is not there at all
        assert "not migrated" in result.err or "no database at" in result.err
        assert "belegsync db upgrade" in result.err
    assert not (tmp_path / "belegsync.key").exists()
    sqlite_file = sqlite_path(empty_database_url)
    if sqlite_file is not None:
        assert not sqlite_file.exists()  # not even an empty file
    else:
        assert "sync_accounts" not in snapshot(empty_database_url)


def test_db_upgrade_command_migrates(
    empty_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(make_settings(empty_database_url, tmp_path), capsys)
    assert cli("db", "upgrade").code == 0
    assert cli("db", "check").code == 0
    assert cli("accounts", "list", "--json").json() == []


def test_secret_key_file_is_created_once_with_mode_0600(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "keys" / "belegsync.key"
    cli = Cli(
        make_settings(database_url, tmp_path, secret_key=None, secret_key_file=key_file), capsys
    )

    first = cli("accounts", "add", "export", "a", *EXPORT_ARGS)
    assert first.code == 0, first.err
    assert "created secret key file" in first.err
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    second = cli("accounts", "add", "export", "b", *EXPORT_ARGS)
    assert second.code == 0
    assert "created secret key file" not in second.err
    assert cli("accounts", "show", "a", "--json").json()["gmi_api_key"] == "***c4d5"


def test_wrong_secret_key_gives_a_clear_error(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_export(Cli(make_settings(database_url, tmp_path), capsys), "acme")
    other = Cli(make_settings(database_url, tmp_path, secret_key=generate_key()), capsys)
    result = other("accounts", "show", "acme")
    assert result.code == 2
    assert result.err == (
        "belegsync: error: BELEGSYNC_SECRET_KEY cannot decrypt the API keys of any of the 1 "
        "sync account(s): it is not the key they were stored with (or restore the key file)\n"
    )
    with pytest.raises(SetupError, match="BELEGSYNC_SECRET_KEY: not a valid Fernet key"):
        make_settings(database_url, tmp_path, secret_key="not-a-key")


def test_keys_are_not_stored_under_a_second_secret_key(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Cli(make_settings(database_url, tmp_path), capsys)
    add_export(first, "acme")
    add_export(first, "acme-2")
    other = Cli(make_settings(database_url, tmp_path, secret_key=generate_key()), capsys)
    before = snapshot(database_url)
    for args in (
        ("accounts", "add", "export", "typo", *EXPORT_ARGS),
        ("accounts", "update", "acme", "--gmi-api-key", "new-gmi-key-9999"),
    ):
        result = other(*args)
        assert result.code == 2
        assert result.err.startswith(
            "belegsync: error: BELEGSYNC_SECRET_KEY cannot decrypt the API keys of any of the"
        )
    assert snapshot(database_url) == before
    # with the right key both work
    assert first("accounts", "update", "acme", "--gmi-api-key", "new-gmi-key-9999").code == 0
