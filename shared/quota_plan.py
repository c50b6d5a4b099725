"""The arithmetic of API quotas, without I/O: windows, what a document needs, room, and ETAs.

Every quota is a row ``(api, scope)`` in the quota book (``shared.quota``):

- ``billomat`` per Billomat account: Billomat *announces* its window after every call
  (``X-Rate-Limit-Remaining``/``-Reset``); we learn the window's size and length from it.
- ``gmi.min``, ``gmi.day``, ``gmi.upl`` per GMI key: GMI announces nothing, so these windows
  are *counted* by us against the documented limits (100 calls/minute, 2,500/day, 100
  uploads/hour).  Every GMI call counts in the minute and the day; an upload also in the hour.
- ``gmi`` per GMI key: only a refusal's block (GMI said no; nobody calls before the reset).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

BILLOMAT = "billomat"
GMI = "gmi"
GMI_MINUTE = "gmi.min"
GMI_DAY = "gmi.day"
GMI_UPLOADS = "gmi.upl"
GMI_WINDOWS = (GMI_MINUTE, GMI_DAY, GMI_UPLOADS)

# Our clock and Billomat's may differ a little: an announced window counts as over only this
# long after its reset time.  Half a second keeps a held document's wake within a second of the
# reset, and NTP keeps real clocks far closer than that.
WINDOW_SLACK = timedelta(milliseconds=500)

# What Billomat allows before we have seen an answer (billomat.md §2): 300 calls per
# 15-minute window, 1,000 with a registered app.
BILLOMAT_DEFAULT_LIMIT = 300
BILLOMAT_APP_LIMIT = 1000
BILLOMAT_WINDOW_SECONDS = 900.0

BERLIN = ZoneInfo("Europe/Berlin")
DAY = 86400.0


# ---------------------------------------------------------------------------------------------
# what a document needs


@dataclass(frozen=True)
class Need:
    """Calls a document's next step makes, per quota."""

    billomat: int = 0
    gmi: int = 0  # GMI calls; each counts in the minute and the day window
    gmi_uploads: int = 0  # of those, uploads (they count in the hourly upload window, too)

    def __bool__(self) -> bool:
        return bool(self.billomat or self.gmi or self.gmi_uploads)

    def __add__(self, other: Need) -> Need:
        return Need(
            self.billomat + other.billomat,
            self.gmi + other.gmi,
            self.gmi_uploads + other.gmi_uploads,
        )

    def __sub__(self, other: Need) -> Need:
        return Need(
            self.billomat - other.billomat,
            self.gmi - other.gmi,
            self.gmi_uploads - other.gmi_uploads,
        )

    def per_row(self) -> dict[str, int]:
        """Calls per quota row name (``billomat``, ``gmi.min`` …), the zeros left out."""
        counts = {
            BILLOMAT: self.billomat,
            GMI_MINUTE: self.gmi,
            GMI_DAY: self.gmi,
            GMI_UPLOADS: self.gmi_uploads,
        }
        return {name: n for name, n in counts.items() if n > 0}


def typical_need(direction: str, *, archive_after_transfer: bool = False) -> Need:
    """What one document of a direction costs when nothing goes wrong.

    Export: one GMI download and one Billomat upload (plus the GMI archive update).
    Import: one Billomat PDF download and one GMI upload.
    """
    if direction == "export":
        return Need(billomat=1, gmi=2 if archive_after_transfer else 1)
    return Need(billomat=1, gmi=1, gmi_uploads=1)


# ---------------------------------------------------------------------------------------------
# windows


@dataclass(frozen=True)
class WindowSpec:
    """A window we count ourselves: ``limit`` calls per ``seconds``, clock-aligned.

    A window of exactly a day starts at midnight in Berlin (GMI is a German service; the GMI
    client reads a day-limit refusal the same way); others start at multiples of ``seconds``
    since the epoch, which for a minute and an hour is the wall clock.
    """

    limit: int
    seconds: float

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        if self.seconds == DAY:
            local = now.astimezone(BERLIN)
            start = datetime(local.year, local.month, local.day, tzinfo=BERLIN)
            end_day = local.date() + timedelta(days=1)
            end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=BERLIN)
            return start.astimezone(UTC), end.astimezone(UTC)
        epoch = now.timestamp()
        start_s = math.floor(epoch / self.seconds) * self.seconds
        start = datetime.fromtimestamp(start_s, UTC)
        return start, datetime.fromtimestamp(start_s + self.seconds, UTC)


@dataclass(frozen=True)
class QuotaLimits:
    """What the book assumes about the quotas: GMI's limits, Billomat's before an answer."""

    gmi_minute: WindowSpec = WindowSpec(100, 60.0)
    gmi_day: WindowSpec = WindowSpec(2500, DAY)
    gmi_uploads: WindowSpec = WindowSpec(100, 3600.0)
    billomat_default: int = BILLOMAT_DEFAULT_LIMIT
    # Billomat's windows are clock-aligned quarter hours; only tests compress them.
    billomat_window_seconds: float = BILLOMAT_WINDOW_SECONDS

    def spec(self, api: str) -> WindowSpec | None:
        """The spec of a counted window; ``None`` for an announced one (Billomat)."""
        specs = {GMI_MINUTE: self.gmi_minute, GMI_DAY: self.gmi_day, GMI_UPLOADS: self.gmi_uploads}
        return specs.get(api)


@dataclass
class QuotaState:
    """One quota row as the arithmetic sees it (the book copies it from and back to the row).

    ``remaining``: calls left for us in the current window (``None``: unknown until an answer).
    ``in_flight``: Billomat calls admitted in this window whose answer has not come yet.
    ``keep``: calls of the window that document work leaves for the polls due before it ends.
    """

    api: str
    remaining: int | None = None
    reset_at: datetime | None = None
    in_flight: int = 0
    window_limit: int | None = None
    window_seconds: float | None = None
    keep: int = 0
    blocked_until: datetime | None = None

    @property
    def counted(self) -> bool:
        return self.api in GMI_WINDOWS

    def roll(self, now: datetime, limits: QuotaLimits) -> bool:
        """Move to the window ``now`` lies in; True when that changed anything."""
        spec = limits.spec(self.api)
        if spec is not None:
            if self.reset_at is None or now >= self.reset_at:
                _, end = spec.bounds(now)
                self.remaining, self.reset_at, self.in_flight = spec.limit, end, 0
                self.window_limit, self.window_seconds = spec.limit, spec.seconds
                return True
            if self.window_limit != spec.limit and self.remaining is not None:
                # The operator changed the limit: the window grows or shrinks by as much.
                self.remaining += spec.limit - (self.window_limit or spec.limit)
                self.window_limit = spec.limit
                return True
            return False
        if self.api != BILLOMAT or self.reset_at is None or now < self.reset_at + WINDOW_SLACK:
            return False
        seconds = limits.billomat_window_seconds
        periods = math.floor((now - self.reset_at).total_seconds() / seconds) + 1
        self.reset_at += timedelta(seconds=periods * seconds)
        self.remaining, self.in_flight, self.window_seconds = self.window_limit, 0, seconds
        return True

    def blocked(self, now: datetime) -> bool:
        return self.blocked_until is not None and self.blocked_until > now

    def available(self, now: datetime, limits: QuotaLimits) -> int:
        """Calls left in the current window (keep included); assumes the roll happened."""
        if self.blocked(now):
            return 0
        if self.remaining is not None:
            return max(0, self.remaining)
        return self.window_limit if self.window_limit is not None else limits.billomat_default

    def room(self, now: datetime, limits: QuotaLimits, *, work: bool) -> int:
        """Calls that may start now: document work leaves ``keep`` for the polls."""
        return max(0, self.available(now, limits) - (self.keep if work else 0))

    def free_at(self, now: datetime) -> datetime:
        """When a caller that found no room should look again."""
        moments = [now + timedelta(seconds=1)]
        if self.reset_at is not None:
            moments = [self.reset_at + (timedelta(0) if self.counted else WINDOW_SLACK)]
        if self.blocked_until is not None and self.blocked_until > now:
            moments.append(self.blocked_until)
        return max(moments)

    def known(self) -> bool:
        """Whether its size is known (counted windows always; Billomat after an answer)."""
        return self.counted or self.remaining is not None or self.window_limit is not None


# ---------------------------------------------------------------------------------------------
# the day plan: what the polls need before a window resets


def polls_before(
    next_due: datetime | None, interval_s: float, now: datetime, until: datetime
) -> int:
    """How many polls of an account every ``interval_s`` fall into ``[now, until)``."""
    first = now if next_due is None or next_due < now else next_due
    if first >= until or interval_s <= 0:
        return 0
    return math.floor((until - first).total_seconds() / interval_s - 1e-9) + 1


# GMI's day: one call per export poll still due today, plus this many for second pages and
# `produce --once` runs by hand (1 % of 2,500).
DAY_MARGIN = 25


# ---------------------------------------------------------------------------------------------
# ETAs


@dataclass(frozen=True)
class Capacity:
    """A window as an ETA sees it: what document work may use now and in later windows."""

    left_now: int
    per_window: int
    reset_in: float  # seconds until the current window ends
    seconds: float  # window length

    @classmethod
    def of(cls, state: QuotaState, now: datetime, limits: QuotaLimits) -> Capacity | None:
        """``None`` when the window's size is still unknown (no Billomat answer seen)."""
        if not state.known():
            return None
        limit = state.window_limit if state.window_limit is not None else limits.billomat_default
        seconds = state.window_seconds or limits.billomat_window_seconds
        reset_in = (state.reset_at - now).total_seconds() if state.reset_at else seconds
        if state.blocked(now):
            assert state.blocked_until is not None
            reset_in = max(reset_in, (state.blocked_until - now).total_seconds())
        return cls(
            left_now=state.room(now, limits, work=True),
            per_window=max(0, limit - state.keep),
            reset_in=max(0.0, reset_in),
            seconds=seconds,
        )


def drain_seconds(calls: int, capacity: Capacity) -> float | None:
    """Seconds until the window in which the last of ``calls`` may be made begins.

    ``0`` when the current window still holds them all; ``None`` when no later window gives
    document work anything.
    """
    if calls <= capacity.left_now:
        return 0.0
    if capacity.per_window <= 0:
        return None
    windows = math.ceil((calls - capacity.left_now) / capacity.per_window)
    return capacity.reset_in + (windows - 1) * capacity.seconds


def fair_share_calls(own_docs: int, docs_and_needs: Iterable[tuple[int, int]]) -> int:
    """Calls made on one quota until an account's last document ran, when the accounts that
    share the quota take turns (round robin): every account j contributes
    ``min(docs_j, own_docs) * calls_per_doc_j``.  ``docs_and_needs`` includes the account."""
    return sum(min(docs, own_docs) * need for docs, need in docs_and_needs)


def eta_seconds(
    own_docs: int,
    own_need: Mapping[str, int],
    sharing: Mapping[str, list[tuple[int, int]]],
    capacities: Mapping[str, Capacity | None],
) -> float | None:
    """Seconds until an account's backlog is drained at the current quota.

    ``own_need``: calls per document per quota row name; ``sharing[row]``: (documents, calls
    per document) of every account with a backlog on that quota, this one included;
    ``capacities[row]``: the quota's window.  ``None`` when a needed window is unknown.
    """
    if own_docs <= 0:
        return 0.0
    worst = 0.0
    for row, per_doc in own_need.items():
        capacity = capacities.get(row)
        if capacity is None:
            return None
        calls = fair_share_calls(own_docs, sharing.get(row, [(own_docs, per_doc)]))
        seconds = drain_seconds(calls, capacity)
        if seconds is None:
            return None
        worst = max(worst, seconds)
    return worst
