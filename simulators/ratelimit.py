"""Fixed, clock-aligned rate-limit windows, as both APIs count them.

A window of ``s`` seconds starts at every epoch multiple of ``s`` (Billomat documents 15-minute
windows at XX:00, XX:15, …). Tests compress windows to a second or two and wait for the next one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass

from simulators.clock import Clock


@dataclass(frozen=True)
class WindowState:
    """A counter's view of the current window after (or instead of) taking one call."""

    allowed: bool
    used: int
    limit: int
    window_start: float
    window_end: float
    now: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def reset_epoch(self) -> int:
        """UTC epoch seconds of the next window start (``X-Rate-Limit-Reset``)."""
        return math.ceil(self.window_end)

    @property
    def retry_after(self) -> int:
        """Whole seconds until the next window, at least 1 (the text "Try again in N seconds")."""
        return max(1, math.ceil(self.window_end - self.now))


class FixedWindowCounter:
    """Counts calls per key in clock-aligned windows; thread-safe."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[Hashable, float], tuple[int, int]] = {}

    def _current(self, key: Hashable, seconds: float, now: float) -> tuple[int, int]:
        index = math.floor(now / seconds)
        stored = self._counts.get((key, seconds))
        if stored is None or stored[0] != index:
            return index, 0
        return stored

    def peek(self, key: Hashable, limit: int, seconds: float) -> WindowState:
        """The state if one more call came now, without counting it."""
        with self._lock:
            now = self._clock()
            index, used = self._current(key, seconds, now)
        return _state(used < limit, used, limit, index, seconds, now)

    def take(self, key: Hashable, limit: int, seconds: float) -> WindowState:
        """Count one call if the window has room; ``allowed`` says whether it had."""
        with self._lock:
            now = self._clock()
            index, used = self._current(key, seconds, now)
            allowed = used < limit
            if allowed:
                used += 1
                self._counts[(key, seconds)] = (index, used)
        return _state(allowed, used, limit, index, seconds, now)

    def add(self, key: Hashable, seconds: float, n: int = 1) -> None:
        """Count ``n`` calls unconditionally (after a separate check decided they pass)."""
        with self._lock:
            now = self._clock()
            index, used = self._current(key, seconds, now)
            self._counts[(key, seconds)] = (index, used + n)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def _state(
    allowed: bool, used: int, limit: int, index: int, seconds: float, now: float
) -> WindowState:
    start = index * seconds
    return WindowState(allowed, used, limit, start, start + seconds, now)


def describe_window(seconds: float) -> str:
    """``15 minutes`` / ``2 seconds``: the window as Billomat's 429 message words it."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
    whole = int(seconds) if float(seconds).is_integer() else seconds
    return f"{whole} second" if whole == 1 else f"{whole} seconds"
