"""Log output: JSON lines, text lines, masked secrets and the per-document outcome line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.errors import PermanentError
from shared.logs import configure_logging, log_outcome, mask, redact, register_secret

pytestmark = pytest.mark.usefixtures("restore_logging")

SECRET = "bm_key_7f3c9a1e5d2b8f4a6c0e"
log = logging.getLogger("belegsync.test")


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_json_format_writes_one_parsable_object_per_line_with_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "DEBUG")
    log.info("published %d messages", 3, extra={"account": "acme", "direction": "export"})
    log.debug("second line")
    first, second = json_lines(capsys)
    assert first["message"] == "published 3 messages"
    assert first["level"] == "INFO"
    assert first["logger"] == "belegsync.test"
    assert first["account"] == "acme"
    assert first["direction"] == "export"
    assert first["time"].endswith("Z")
    assert second["level"] == "DEBUG"


def test_json_logs_go_to_stderr_so_stdout_stays_free_for_command_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json")
    log.warning("careful")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "careful" in captured.err


def test_level_filters_lower_records(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "warning")
    log.info("hidden")
    log.error("shown")
    assert [e["message"] for e in json_lines(capsys)] == ["shown"]


def test_extra_fields_cannot_overwrite_the_fixed_keys(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    log.info("real message", extra={"level": "FAKE", "time": "then", "logger": "other"})
    (entry,) = json_lines(capsys)
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "INFO",
        "belegsync.test",
        "real message",
    )


def test_exception_is_included_in_the_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    try:
        raise ValueError("broken pdf")
    except ValueError:
        log.exception("handling failed")
    (entry,) = json_lines(capsys)
    assert "ValueError: broken pdf" in entry["exception"]


def test_configuring_twice_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text")
    configure_logging("json")
    log.info("once")
    assert len(json_lines(capsys)) == 1


def test_text_format_shows_context_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text")
    log.info("polled", extra={"account": "acme gmbh", "detected": 2})
    line = capsys.readouterr().err.strip()
    assert "INFO" in line
    assert "belegsync.test: polled" in line
    assert 'account="acme gmbh"' in line
    assert "detected=2" in line


@pytest.mark.parametrize(("fmt", "level"), [("xml", "INFO"), ("json", "LOUD")])
def test_bad_format_or_level_is_refused(fmt: str, level: str) -> None:
    with pytest.raises(ValueError, match="log"):
        configure_logging(fmt, level)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registered_secret_is_masked_in_message_args_extra_and_traceback(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(fmt)
    register_secret(SECRET)
    log.warning(f"key in message {SECRET}")
    log.warning("key in args %s", SECRET)
    log.warning("key in dict args %(key)s", {"key": SECRET})
    log.warning("key in extra", extra={"api_key_used": SECRET, "nested": {"keys": [SECRET]}})
    log.warning("key in object arg %r", PermanentError(f"rejected {SECRET}", api="gmi"))
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        log.exception("key in traceback")
    err = capsys.readouterr().err
    assert SECRET not in err
    assert SECRET[:-4] not in err
    assert err.count("***6c0e") >= 7


def test_secret_is_masked_for_handlers_of_any_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    register_secret(SECRET)
    logging.getLogger("kombu.connection").error("login with %s failed", SECRET)
    (entry,) = json_lines(capsys)
    assert entry["message"] == "login with ***6c0e failed"


def test_passwords_in_urls_and_named_keys_are_masked_without_registration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json")
    log.info("connecting to amqp://belegsync:hunter22@rabbitmq:5672//")
    log.info("GET https://acme.billomat.net/api/invoices?api_key=abcdef0123456789xyz&per_page=100")
    log.info("headers X-BillomatApiKey: abcdef0123456789xyz")
    first, second, third = (e["message"] for e in json_lines(capsys))
    assert first == "connecting to amqp://belegsync:***@rabbitmq:5672//"
    assert "abcdef0123456789xyz" not in second + third
    assert "api_key=***9xyz&per_page=100" in second


def test_mask_shows_the_last_four_characters_only_of_long_values() -> None:
    assert mask("0123456789abcdef") == "***cdef"
    assert mask("short1") == "***"  # the tail of a short secret would be most of it


def test_short_registered_secret_is_masked_whole() -> None:
    register_secret("pw12345")
    assert redact("login pw12345 ok") == "login *** ok"


def test_outcome_line_carries_every_field_and_a_level_by_outcome(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json")
    common: dict[str, Any] = {
        "account": "acme",
        "direction": "export",
        "message_id": "m-1",
        "duration_s": 1.23456,
    }
    log_outcome(log, source_id="u-1", target_id=991, outcome="synced", **common)
    log_outcome(
        log,
        source_id="u-2",
        target_id=None,
        outcome="parked",
        error=PermanentError("file type not allowed", api="billomat", status=400),
        **common,
    )
    log_outcome(log, source_id="u-3", target_id=None, outcome="retried", error="timeout", **common)
    synced, parked, retried = json_lines(capsys)
    assert synced["level"] == "INFO"
    assert {k: synced[k] for k in ("account", "direction", "source_id", "target_id")} == {
        "account": "acme",
        "direction": "export",
        "source_id": "u-1",
        "target_id": 991,
    }
    assert (synced["message_id"], synced["outcome"], synced["duration_s"]) == (
        "m-1",
        "synced",
        1.235,
    )
    assert "error" not in synced
    assert parked["level"] == "ERROR"
    assert parked["error"] == "billomat HTTP 400: file type not allowed"
    assert parked["error_class"] == "permanent"
    assert "file type not allowed" in parked["message"]
    assert retried["level"] == "WARNING"
    assert retried["error"] == "timeout"


def test_outcome_line_names_the_callers_location(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        log_outcome(
            log,
            account="a",
            direction="import",
            source_id=1,
            target_id="x",
            message_id="m",
            outcome="skipped",
            duration_s=0.0,
        )
    (record,) = caplog.records
    assert record.filename == "test_logs.py"
