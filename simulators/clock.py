"""German local time: both real services stamp and read times in Europe/Berlin."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], float]
"""Seconds since the epoch, like :func:`time.time`; injectable so tests can move time."""


class _EuBerlin(tzinfo):
    """CET/CEST by the EU rule (last Sunday of March/October, 01:00 UTC).

    Only used where the system has no tz database; the EU rule has been the law since 1996,
    which covers every date a simulator will ever stamp.
    """

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=2) if dt is not None and self._is_summer(dt) else timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1) if dt is not None and self._is_summer(dt) else timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "CEST" if dt is not None and self._is_summer(dt) else "CET"

    def fromutc(self, dt: datetime) -> datetime:
        utc = dt.replace(tzinfo=None)
        summer = _summer_start(utc.year) <= utc < _summer_end(utc.year)
        return (utc + timedelta(hours=2 if summer else 1)).replace(tzinfo=self)

    @staticmethod
    def _is_summer(dt: datetime) -> bool:
        # dt is local wall time; the switch hours are 02:00 (March) and 03:00 (October) local.
        local = dt.replace(tzinfo=None)
        start = _summer_start(local.year) + timedelta(hours=1)
        end = _summer_end(local.year) + timedelta(hours=1)
        return start <= local < end


def _last_sunday_0100(year: int, month: int) -> datetime:
    day = datetime(year, month + 1, 1) - timedelta(days=1)
    day -= timedelta(days=(day.weekday() + 1) % 7)
    return day.replace(hour=1)


def _summer_start(year: int) -> datetime:
    return _last_sunday_0100(year, 3)


def _summer_end(year: int) -> datetime:
    return _last_sunday_0100(year, 10)


def _berlin() -> tzinfo:
    try:
        return ZoneInfo("Europe/Berlin")
    except ZoneInfoNotFoundError:  # pragma: no cover - depends on the host's tz database
        return _EuBerlin()


BERLIN: tzinfo = _berlin()


def now_utc(clock: Clock = time.time) -> datetime:
    """The current instant as an aware UTC datetime, whole seconds (both APIs show no fractions)."""
    return datetime.fromtimestamp(int(clock()), UTC)


def berlin_iso(moment: datetime) -> str:
    """``2026-11-02T10:15:00+01:00``: Billomat's datetime form, DST visible in the offset."""
    return moment.astimezone(BERLIN).replace(microsecond=0).isoformat()


def parse_berlin_local(text: str, fmt: str) -> datetime:
    """A naive wall-clock time read as Europe/Berlin, returned as an aware datetime."""
    return datetime.strptime(text, fmt).replace(tzinfo=BERLIN)
