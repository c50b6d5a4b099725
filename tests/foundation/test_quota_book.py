"""The shared quota book on SQLite and PostgreSQL: admission, answers, refusals, the reserve."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from shared.db import ApiQuota, Database
from shared.errors import RateLimitedError
from shared.quota import QuotaBook, Scopes
from shared.quota_gate import QuotaGate
from shared.quota_plan import (
    BILLOMAT,
    GMI_DAY,
    GMI_MINUTE,
    GMI_UPLOADS,
    Need,
    QuotaLimits,
    WindowSpec,
)

# Counted windows so long that no test run crosses a boundary (2001-09-09 .. 2033-05-18).
LONG = 1e9
SCOPES = Scopes(billomat="acme", gmi="f00dfeedf00dfeed")


def book(db: Database, *, per_minute: int = 100, uploads: int = 100) -> QuotaBook:
    return QuotaBook(
        db,
        QuotaLimits(
            gmi_minute=WindowSpec(per_minute, LONG),
            gmi_day=WindowSpec(2500, LONG),
            gmi_uploads=WindowSpec(uploads, LONG),
        ),
    )


def row(db: Database, api: str, scope: str) -> ApiQuota:
    with db.session() as session:
        found = session.get(ApiQuota, (api, scope))
        assert found is not None
        return found


def soon(seconds: float = 600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_a_step_is_admitted_on_both_sides_or_not_at_all(db: Database) -> None:
    quota = book(db, per_minute=2)
    quota.record(BILLOMAT, "acme", 10, soon())
    step = Need(billomat=1, gmi=1)
    quota.admit(SCOPES, step, work=True)
    quota.admit(SCOPES, step, work=True)
    with pytest.raises(RateLimitedError) as refused:
        quota.admit(SCOPES, step, work=True)
    assert refused.value.api == "gmi"
    assert refused.value.status is None  # our own bookkeeping said no, not the API
    # Billomat had room, yet nothing was taken from it for the step that could not run
    assert row(db, BILLOMAT, "acme").remaining == 8
    assert row(db, GMI_MINUTE, SCOPES.gmi).remaining == 0


def test_calls_admitted_and_not_made_are_given_back(db: Database) -> None:
    quota = book(db)
    quota.record(BILLOMAT, "acme", 10, soon())
    gate = QuotaGate(quota, SCOPES, work=True)
    with gate.admitted(Need(billomat=2, gmi=1)):
        gate.before_call("gmi", "GET /documents/{uid}")  # spends the admitted GMI call
    assert row(db, BILLOMAT, "acme").remaining == 10
    assert row(db, BILLOMAT, "acme").in_flight == 0
    assert row(db, GMI_MINUTE, SCOPES.gmi).remaining == 99
    assert row(db, GMI_DAY, SCOPES.gmi).remaining == 2499


def test_billomat_answers_are_read_against_the_calls_still_in_flight(db: Database) -> None:
    quota = book(db)
    reset = soon()
    quota.record(BILLOMAT, "acme", 29, reset)  # first answer of a window of 30
    for _ in range(4):
        quota.admit(SCOPES, Need(billomat=1), work=True)
    assert (row(db, BILLOMAT, "acme").remaining, row(db, BILLOMAT, "acme").in_flight) == (25, 4)
    quota.record(BILLOMAT, "acme", 28, reset)  # the first of ours: three still on their way
    assert (row(db, BILLOMAT, "acme").remaining, row(db, BILLOMAT, "acme").in_flight) == (25, 3)
    quota.record(BILLOMAT, "acme", 20, reset)  # someone else spent 7 meanwhile
    assert (row(db, BILLOMAT, "acme").remaining, row(db, BILLOMAT, "acme").in_flight) == (18, 2)
    assert row(db, BILLOMAT, "acme").window_limit == 30
    quota.record(BILLOMAT, "acme", 50, reset - timedelta(hours=1))  # a late answer: ignored
    assert row(db, BILLOMAT, "acme").remaining == 18


def test_answers_recorded_out_of_order_lose_no_call(db: Database) -> None:
    quota = book(db)
    reset = soon()
    quota.record(BILLOMAT, "acme", 30, reset)
    for _ in range(4):
        quota.admit(SCOPES, Need(billomat=1), work=True)  # remaining 26, 4 in flight
    # Billomat took call A (29 left), then B (28 left); B's answer is recorded first.
    quota.record(BILLOMAT, "acme", 28, reset)
    assert (row(db, BILLOMAT, "acme").remaining, row(db, BILLOMAT, "acme").in_flight) == (25, 3)
    quota.record(BILLOMAT, "acme", 29, reset)  # A's, late: it was in the 28 already
    assert (row(db, BILLOMAT, "acme").remaining, row(db, BILLOMAT, "acme").in_flight) == (26, 2)
    quota.record(BILLOMAT, "acme", 27, reset)
    quota.record(BILLOMAT, "acme", 26, reset)
    assert (row(db, BILLOMAT, "acme").remaining, row(db, BILLOMAT, "acme").in_flight) == (26, 0)


def test_document_work_leaves_the_polls_reserve_and_a_poll_may_use_it(db: Database) -> None:
    quota = book(db)
    quota.record(BILLOMAT, "acme", 3, soon())
    quota.plan({(BILLOMAT, "acme"): 2})
    quota.admit(SCOPES, Need(billomat=1), work=True)
    with pytest.raises(RateLimitedError):
        quota.admit(SCOPES, Need(billomat=1), work=True)
    quota.admit(SCOPES, Need(billomat=1), work=False)  # a poll
    quota.admit(SCOPES, Need(billomat=1), work=False)
    assert row(db, BILLOMAT, "acme").remaining == 0


def test_a_gmi_upload_refusal_stops_uploads_only(db: Database) -> None:
    quota = book(db)
    until = soon(1800)
    refusal = RateLimitedError(
        "hourly upload limit reached", api="gmi", status=422, code=105, reset_at=until
    )
    quota.refused(refusal, SCOPES)
    quota.admit(SCOPES, Need(gmi=1), work=True)  # a download or a poll still may
    with pytest.raises(RateLimitedError) as refused:
        quota.admit(SCOPES, Need(gmi=1, gmi_uploads=1), work=True)
    assert refused.value.reset_at == until
    assert row(db, GMI_UPLOADS, SCOPES.gmi).blocked_until == until


def test_a_gmi_call_limit_refusal_stops_every_call_of_the_key(db: Database) -> None:
    quota = book(db)
    until = soon(30)
    quota.refused(
        RateLimitedError("per minute", api="gmi", status=403, code=429, reset_at=until), SCOPES
    )
    with pytest.raises(RateLimitedError) as refused:
        quota.admit(SCOPES, Need(billomat=1, gmi=1), work=False)
    assert refused.value.reset_at == until
    quota.admit(SCOPES, Need(billomat=1), work=True)  # Billomat alone is not concerned


def test_a_call_outside_any_admission_is_admitted_on_its_own(db: Database) -> None:
    quota = book(db, uploads=1)
    gate = QuotaGate(quota, SCOPES, work=True)
    gate.before_call("gmi", "GET /companies")
    gate.before_call("gmi", "POST /documents")
    with pytest.raises(RateLimitedError):
        gate.before_call("gmi", "POST /documents")
    assert row(db, GMI_MINUTE, SCOPES.gmi).remaining == 98
    assert row(db, GMI_UPLOADS, SCOPES.gmi).remaining == 0


def test_concurrent_admissions_and_answers_keep_the_count_exact(db: Database) -> None:
    """Six consumers admit and hear back at once; Billomat's count and ours end up equal."""
    quota = book(db)
    reset = soon()
    quota.record(BILLOMAT, "acme", 100, reset)
    server = {"remaining": 100}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def consumer() -> None:
        try:
            for _ in range(10):
                quota.admit(SCOPES, Need(billomat=1), work=True)
                with lock:  # Billomat takes the call
                    server["remaining"] -= 1
                    answer = server["remaining"]
                quota.record(BILLOMAT, "acme", answer, reset)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=consumer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert server["remaining"] == 40
    assert (row(db, BILLOMAT, "acme").remaining, row(db, BILLOMAT, "acme").in_flight) == (40, 0)


def test_reserve_only_asks_for_room_the_gate_takes_each_call(db: Database) -> None:
    quota = book(db, per_minute=2)
    quota.record(BILLOMAT, "acme", 3, soon())
    quota.reserve(BILLOMAT, "acme", 3)  # room for three: nothing taken
    assert row(db, BILLOMAT, "acme").remaining == 3
    with pytest.raises(RateLimitedError):
        quota.reserve(BILLOMAT, "acme", 2, keep=2)
    quota.reserve("gmi", SCOPES.gmi, 2)
    QuotaGate(quota, SCOPES, work=False).before_call("gmi", "GET /documents")
    with pytest.raises(RateLimitedError):
        quota.reserve("gmi", SCOPES.gmi, 2)  # one of the minute's two is spent
