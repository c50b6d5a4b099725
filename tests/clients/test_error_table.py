"""The one error table: every documented answer of both APIs maps to the right action."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.errors import (
    ApiError,
    ConfigurationError,
    DuplicateDocumentError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from shared.gmi_parsing import Failure, rate_limit_reset, read_failure
from shared.http import ERROR_TABLE, lookup_rule


@pytest.mark.parametrize(
    ("api", "status", "code", "expected"),
    [
        ("billomat", 400, None, PermanentError),
        ("billomat", 401, None, ConfigurationError),
        ("billomat", 403, None, ConfigurationError),
        ("billomat", 404, None, NotFoundError),
        ("billomat", 422, None, PermanentError),
        ("billomat", 429, None, RateLimitedError),
        ("billomat", 500, None, TransientError),
        ("billomat", 502, None, TransientError),
        ("billomat", 503, None, TransientError),
        ("gmi", 403, 403, ConfigurationError),
        ("gmi", 403, 407, ConfigurationError),
        ("gmi", 403, 429, RateLimitedError),
        ("gmi", 403, 430, ConfigurationError),
        ("gmi", 403, 431, ConfigurationError),
        ("gmi", 403, None, ConfigurationError),  # confirmed first; see test_unknowns
        ("gmi", 429, None, RateLimitedError),
        ("gmi", 415, 415, PermanentError),
        ("gmi", 422, 127, DuplicateDocumentError),
        ("gmi", 422, 105, RateLimitedError),
        ("gmi", 422, 106, NotFoundError),
        ("gmi", 422, 135, NotFoundError),
        ("gmi", 422, 139, NotFoundError),
        ("gmi", 422, 100, TransientError),
        ("gmi", 422, 102, PermanentError),
        ("gmi", 422, 146, PermanentError),
        ("gmi", 422, 147, PermanentError),
        ("gmi", 422, None, PermanentError),
        ("gmi", 503, 503, TransientError),
        ("gmi", 500, None, TransientError),
        ("gmi", 504, None, TransientError),
    ],
)
def test_documented_answers_map_to_their_action(
    api: str, status: int, code: int | None, expected: type[ApiError]
) -> None:
    assert lookup_rule(api, status, code).error is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (418, PermanentError),
        (409, PermanentError),
        (401, ConfigurationError),
        (408, TransientError),
        (429, RateLimitedError),
        (599, TransientError),
        (302, ConfigurationError),
        (999, TransientError),
    ],
)
def test_unknown_combinations_fall_back_by_status_class(
    status: int, expected: type[ApiError]
) -> None:
    assert lookup_rule("billomat", status, 12345).error is expected
    assert lookup_rule("gmi", status, 99999).error is expected


def test_gmi_422_with_an_unlisted_code_is_permanent_not_transient() -> None:
    assert lookup_rule("gmi", 422, 132).error is PermanentError  # virus check failed


def test_every_row_has_a_reason_and_a_sane_status_range() -> None:
    for rule in ERROR_TABLE:
        assert rule.reason
        assert 100 <= rule.status_from <= rule.status_to <= 599
        assert rule.api in ("gmi", "billomat", "*")


def test_no_two_rows_claim_the_same_answer() -> None:
    keys = [
        (r.api, r.status_from, r.status_to, r.code, r.detail and r.detail.pattern, r.origin)
        for r in ERROR_TABLE
    ]
    assert len(keys) == len(set(keys))


def test_writes_may_have_landed_after_a_server_error_but_not_after_503_or_4xx() -> None:
    assert lookup_rule("billomat", 500, None).may_have_landed
    assert lookup_rule("billomat", 504, None).may_have_landed
    assert not lookup_rule("gmi", 503, None).may_have_landed
    assert not lookup_rule("billomat", 503, None).may_have_landed
    assert not lookup_rule("gmi", 422, 127).may_have_landed


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"success": False, "detail": "Invalid document type.", "error_code": 146},
            Failure(146, "Invalid document type."),
        ),
        (
            {"success": False, "errors": [{"code": 127, "detail": "Document already exists."}]},
            Failure(127, "Document already exists."),
        ),
        (
            {
                "success": False,
                "errors": [{"code": "104", "detail": "a"}, {"code": 137, "detail": "b"}],
            },
            Failure(104, "a; b"),
        ),
        ({"code": 403, "detail": "API Key does not exist"}, Failure(403, "API Key does not exist")),
        ({}, Failure(None, "")),
        ("not an object", Failure(None, "")),
    ],
)
def test_gmi_failure_bodies_of_every_shape_are_read(body: object, expected: Failure) -> None:
    assert read_failure(body) == expected


def test_gmi_rate_limit_reset_is_estimated_from_the_detail_text() -> None:
    import requests

    response = requests.Response()
    now = datetime(2026, 11, 2, 22, 30, 15, tzinfo=UTC)  # 23:30 in Berlin (CET)
    per_minute = rate_limit_reset(Failure(429, "Per minute limit exceeded"), response, now)
    daily = rate_limit_reset(Failure(429, "Daily API call limit exceeded"), response, now)
    uploads = rate_limit_reset(Failure(105, "Hourly upload limit reached."), response, now)
    unknown = rate_limit_reset(Failure(429, "Too many"), response, now)
    assert per_minute == datetime(2026, 11, 2, 22, 31, tzinfo=UTC)
    assert daily == datetime(2026, 11, 2, 23, 0, tzinfo=UTC)  # midnight Berlin
    assert uploads == datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    assert unknown is None  # the transport's 60 s default applies
