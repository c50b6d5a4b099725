"""The quota arithmetic without I/O: windows, the polls' reserve, ETAs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.backlog import describe_backlog, format_duration
from shared.quota_plan import (
    BILLOMAT,
    GMI_DAY,
    GMI_MINUTE,
    GMI_UPLOADS,
    WINDOW_SLACK,
    Capacity,
    Need,
    QuotaLimits,
    QuotaState,
    WindowSpec,
    drain_seconds,
    eta_seconds,
    polls_before,
    typical_need,
)

T0 = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


def test_a_document_needs_one_call_on_each_side_plus_its_archive_update() -> None:
    assert typical_need("export").per_row() == {BILLOMAT: 1, GMI_MINUTE: 1, GMI_DAY: 1}
    assert typical_need("export", archive_after_transfer=True).per_row() == {
        BILLOMAT: 1,
        GMI_MINUTE: 2,
        GMI_DAY: 2,
    }
    assert typical_need("import").per_row() == {
        BILLOMAT: 1,
        GMI_MINUTE: 1,
        GMI_DAY: 1,
        GMI_UPLOADS: 1,
    }
    assert not Need()
    assert Need(billomat=2) - Need(billomat=1) == Need(billomat=1)


def test_gmi_day_starts_at_midnight_in_berlin_in_winter_and_summer() -> None:
    day = WindowSpec(2500, 86400.0)
    start, end = day.bounds(datetime(2026, 1, 15, 22, 30, tzinfo=UTC))  # 23:30 in Berlin
    assert (start, end) == (
        datetime(2026, 1, 14, 23, 0, tzinfo=UTC),
        datetime(2026, 1, 15, 23, 0, tzinfo=UTC),
    )
    start, end = day.bounds(datetime(2026, 7, 15, 22, 30, tzinfo=UTC))  # 00:30 the next day
    assert (start, end) == (
        datetime(2026, 7, 15, 22, 0, tzinfo=UTC),
        datetime(2026, 7, 16, 22, 0, tzinfo=UTC),
    )
    minute = WindowSpec(100, 60.0)
    assert minute.bounds(T0 + timedelta(seconds=59.5)) == (T0, T0 + timedelta(minutes=1))


def test_a_counted_window_starts_afresh_at_its_boundary() -> None:
    limits = QuotaLimits(gmi_minute=WindowSpec(100, 60.0))
    state = QuotaState(GMI_MINUTE)
    assert state.roll(T0 + timedelta(seconds=10), limits)
    assert (state.remaining, state.reset_at) == (100, T0 + timedelta(minutes=1))
    state.remaining = 0
    assert not state.roll(T0 + timedelta(seconds=59), limits)
    assert state.room(T0 + timedelta(seconds=59), limits, work=False) == 0
    assert state.free_at(T0 + timedelta(seconds=59)) == T0 + timedelta(minutes=1)
    assert state.roll(T0 + timedelta(seconds=60), limits)
    assert state.remaining == 100


def test_billomats_window_moves_on_only_after_its_reset_and_the_slack() -> None:
    limits = QuotaLimits(billomat_window_seconds=10)
    reset = T0 + timedelta(seconds=10)
    state = QuotaState(BILLOMAT, remaining=0, reset_at=reset, in_flight=2, window_limit=30)
    assert not state.roll(reset, limits)  # our clock may be ahead of Billomat's
    assert state.free_at(reset) == reset + WINDOW_SLACK
    assert state.roll(reset + WINDOW_SLACK, limits)
    assert (state.remaining, state.in_flight) == (30, 0)
    assert state.reset_at == reset + timedelta(seconds=10)
    # several windows without a call: straight to the current one
    state.roll(reset + timedelta(seconds=45), limits)
    assert state.reset_at == reset + timedelta(seconds=50)


def test_work_leaves_the_polls_reserve_a_poll_may_take_it() -> None:
    limits = QuotaLimits()
    state = QuotaState(BILLOMAT, remaining=3, reset_at=T0 + timedelta(minutes=5), keep=2)
    assert state.room(T0, limits, work=True) == 1
    assert state.room(T0, limits, work=False) == 3
    unknown = QuotaState(BILLOMAT)
    assert unknown.room(T0, limits, work=True) == 300  # Billomat's documented default
    assert unknown.room(T0, QuotaLimits(billomat_default=1000), work=True) == 1000


def test_polls_before_a_reset_count_every_interval() -> None:
    end = T0 + timedelta(hours=1)
    assert polls_before(T0, 900, T0, end) == 4  # 12:00, 12:15, 12:30, 12:45
    assert polls_before(T0 + timedelta(minutes=50), 900, T0, end) == 1
    assert polls_before(end, 900, T0, end) == 0
    assert polls_before(None, 900, T0, end) == 4  # not scheduled yet: due now
    assert polls_before(T0 - timedelta(hours=2), 900, T0, end) == 4  # overdue: due now


def test_drain_time_is_the_start_of_the_window_of_the_last_call() -> None:
    capacity = Capacity(left_now=10, per_window=30, reset_in=5.0, seconds=10.0)
    assert drain_seconds(10, capacity) == 0.0
    assert drain_seconds(11, capacity) == 5.0
    assert drain_seconds(40, capacity) == 5.0
    assert drain_seconds(41, capacity) == 15.0
    assert drain_seconds(100, capacity) == 25.0  # 10 now, then 30 + 30 + 30
    assert drain_seconds(100, Capacity(0, 0, 5.0, 10.0)) is None


def test_eta_of_accounts_that_share_a_quota_take_turns() -> None:
    capacities = {BILLOMAT: Capacity(left_now=10, per_window=30, reset_in=5.0, seconds=10.0)}
    sharing = {BILLOMAT: [(100, 1), (5, 1)]}
    # the big one waits for the small one's 5 calls as well; the small one for 5 of the big's
    assert eta_seconds(100, {BILLOMAT: 1}, sharing, capacities) == 35.0
    assert eta_seconds(5, {BILLOMAT: 1}, sharing, capacities) == 0.0
    # the slowest window decides
    capacities[GMI_DAY] = Capacity(left_now=0, per_window=2400, reset_in=3600.0, seconds=86400.0)
    assert eta_seconds(100, {BILLOMAT: 1, GMI_DAY: 1}, sharing, capacities) == 3600.0
    capacities[GMI_DAY] = None
    assert eta_seconds(100, {BILLOMAT: 1, GMI_DAY: 1}, sharing, capacities) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "~0 s"),
        (44.2, "~45 s"),
        (60, "~1 min"),
        (61, "~2 min"),
        (3600, "~1 h"),
        (5520, "~1 h 32 min"),
        (2 * 86400 + 3 * 3600, "~2 d 3 h"),
    ],
)
def test_durations_read_like_a_person_would_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_backlog_line() -> None:
    assert describe_backlog(1840, 5520) == "1,840 waiting, done in ~1 h 32 min at the current quota"
    assert describe_backlog(5, 0) == "5 waiting, all within the current quota window"
    assert describe_backlog(5, None).startswith("5 waiting, no estimate yet")
    assert describe_backlog(5, 60, enabled=False) == "5 waiting, account paused"
    assert describe_backlog(0, None) is None
