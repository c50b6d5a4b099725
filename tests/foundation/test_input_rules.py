"""The input rules every front end shares (command line, web console): each refusal is one
sentence that names its field, and the account service applies them before touching anything."""

from __future__ import annotations

from datetime import date

import pytest

from shared.accounts import AccountChanges, AccountService
from shared.crypto import SecretBox, generate_key
from shared.db import Database
from shared.domain import (
    Direction,
    check_account_name,
    export_marker,
    parse_date,
    parse_interval,
    parse_marker,
)
from shared.errors import InvalidValue, UsageError
from tests.helpers import snapshot


@pytest.mark.parametrize("name", ["acme", "acme-export", "a", "kunde_42", "0815", "a" * 63])
def test_slug_names_are_accepted(name: str) -> None:
    assert check_account_name(name) == name


@pytest.mark.parametrize(
    "name", ["a b/c", "Acme", "-acme", "_acme", "", "acme.export", "a" * 64, "ümlaut", "a/b"]
)
def test_other_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        check_account_name(name)
    assert refused.value.field == "name"
    assert "1-63 lower-case letters, digits, '-' and '_'" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1m", 60), ("15m", 900), ("1h", 3600), ("1d", 86400)]
)
def test_intervals_from_a_minute_to_a_day(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("99999d", "interval 99999d is too long: at most 1 day (1d)"),
        ("25h", "interval 25h is too long: at most 1 day (1d)"),
        ("30s", "interval 30s is too short: at least 1m"),
        ("15x", "invalid duration '15x'"),
        ("1234567890d", "invalid duration"),
    ],
)
def test_intervals_outside_are_refused_naming_the_interval(text: str, message: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        parse_interval(text)
    assert message in str(refused.value)
    assert refused.value.field == "interval"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-02-30", "February 2026 has 28 days"),
        ("2028-02-30", "February 2028 has 29 days"),
        ("2026-04-31", "April 2026 has 30 days"),
        ("2026-13-01", "there is no month 13"),
        ("2026-00-10", "there is no month 0"),
        ("2026-01-00", "days start at 1"),
    ],
)
def test_impossible_dates_say_no_such_date(text: str, why: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        parse_date(text, "--date-from", field="date_from")
    assert str(refused.value) == f"no such date: --date-from {text!r} ({why})"
    assert refused.value.field == "date_from"


def test_dates_in_another_format_say_the_format() -> None:
    with pytest.raises(InvalidValue, match="use YYYY-MM-DD"):
        parse_date("01.02.2026", "--date-to", field="date_to")
    assert parse_date("2028-02-29") == date(2028, 2, 29)


def test_the_marker_carries_the_account_ref_and_reads_back() -> None:
    marker = export_marker("3fa9c0d1e2b4a6f8", 28715)
    assert marker == "belegsync:a3fa9c0d1e2b4a6f8:gmi:28715"
    parsed = parse_marker(marker)
    assert parsed is not None
    assert (parsed.account_ref, parsed.gmi_uid) == ("3fa9c0d1e2b4a6f8", "28715")
    old = parse_marker("belegsync:a1:gmi:5")  # written before refs existed
    assert old is not None
    assert (old.account_ref, old.gmi_uid) == ("1", "5")
    assert parse_marker("someone else's note") is None
    assert parse_marker(None) is None


CASES = [
    (AccountChanges(interval_seconds=30), "interval"),
    (AccountChanges(interval_seconds=2 * 86400), "interval"),
    (AccountChanges(billomat_id="Acme!"), "billomat_id"),
    (AccountChanges(document_types=["INVOICE"]), "document_types"),
    (AccountChanges(date_from=date(2026, 5, 1), date_to=date(2026, 4, 1)), "date_to"),
    (AccountChanges(note="x" * 2001), "note"),
    (AccountChanges(tags=["y" * 101]), "tags"),
    (AccountChanges(gmi_api_key="two words"), "gmi_api_key"),
    (AccountChanges(default_tags=["x"]), "default_tags"),
    (AccountChanges(name="Not A Slug"), "name"),
]


@pytest.mark.parametrize(("changes", "field"), CASES, ids=[f for _, f in CASES])
def test_the_account_service_names_the_field_and_changes_nothing(
    sqlite_database_url: str, changes: AccountChanges, field: str
) -> None:
    db = Database(sqlite_database_url)
    box = SecretBox(generate_key())
    service = AccountService(db, lambda: box)
    try:
        base = AccountChanges(gmi_api_key="gmi-1", billomat_id="acme", billomat_api_key="bm-1")
        service.add(Direction.EXPORT, "acme", base)
        before = snapshot(sqlite_database_url)
        with pytest.raises(UsageError) as refused:
            service.update("acme", changes)
        assert refused.value.field == field, str(refused.value)
        assert snapshot(sqlite_database_url) == before
    finally:
        db.dispose()
