"""Injected failures: random errors, gateway HTML pages, latency, connections dropped after a write.

One :class:`FaultInjector` per simulator; the simulator asks it before handling a request
(``failure_for``) and after a successful write (``should_drop``). Control paths never ask.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from simulators.http import WRITE_METHODS


@dataclass(frozen=True)
class Failure:
    """Answer with ``status``; ``html``: an nginx error page instead of the API's error body."""

    status: int
    html: bool


@dataclass
class _FailRule:
    remaining: int
    status: int
    html: bool
    methods: frozenset[str] | None
    path_contains: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass
class _DropRule:
    remaining: int
    path_contains: str | None


@dataclass
class _HoldRule:
    remaining: int
    seconds: float
    path_contains: str | None


class FaultInjector:
    """Thread-safe fault settings; ``error_status`` is what a random error answers with."""

    def __init__(self, error_status: int) -> None:
        self._error_status = error_status
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._error_rate = 0.0
        self._html_502_rate = 0.0
        self._latency = 0.0
        self._drop_rate = 0.0
        self._fail_rules: list[_FailRule] = []
        self._drop_rules: list[_DropRule] = []
        self._hold_rules: list[_HoldRule] = []

    def set_faults(
        self,
        *,
        error_rate: float = 0.0,
        html_502_rate: float = 0.0,
        latency: float = 0.0,
        drop_after_write_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Replace the random faults (queued ``fail_next``/``drop_after_next_write`` stay)."""
        for name, rate in (
            ("error_rate", error_rate),
            ("html_502_rate", html_502_rate),
            ("drop_after_write_rate", drop_after_write_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if latency < 0:
            raise ValueError("latency must not be negative")
        with self._lock:
            self._error_rate = error_rate
            self._html_502_rate = html_502_rate
            self._latency = latency
            self._drop_rate = drop_after_write_rate
            self._rng = random.Random(seed)

    def fail_next(
        self,
        n: int,
        *,
        status: int = 503,
        html: bool = False,
        methods: Iterable[str] | None = None,
        path_contains: str | None = None,
    ) -> None:
        """The next ``n`` matching requests fail with ``status`` before they are handled."""
        if n < 0:
            raise ValueError("n must not be negative")
        wanted = None if methods is None else frozenset(m.upper() for m in methods)
        with self._lock:
            self._fail_rules.append(_FailRule(n, status, html, wanted, path_contains))

    def drop_after_next_write(self, n: int = 1, *, path_contains: str | None = None) -> None:
        """The next ``n`` successful matching writes are stored, then the connection is closed."""
        if n < 0:
            raise ValueError("n must not be negative")
        with self._lock:
            self._drop_rules.append(_DropRule(n, path_contains))

    def hold_after_next_write(
        self, n: int = 1, *, seconds: float, path_contains: str | None = None
    ) -> None:
        """The next ``n`` successful matching writes are stored, then answered ``seconds`` late.

        Lets a test kill a client while its write has landed but before it saw the answer.
        """
        if n < 0 or seconds < 0:
            raise ValueError("n and seconds must not be negative")
        with self._lock:
            self._hold_rules.append(_HoldRule(n, seconds, path_contains))

    def clear(self) -> None:
        with self._lock:
            self._error_rate = self._html_502_rate = self._latency = self._drop_rate = 0.0
            self._fail_rules.clear()
            self._drop_rules.clear()
            self._hold_rules.clear()

    @property
    def latency(self) -> float:
        with self._lock:
            return self._latency

    def failure_for(self, method: str, path: str) -> Failure | None:
        """Whether this request fails before it is handled, consuming a ``fail_next`` slot."""
        with self._lock:
            for rule in self._fail_rules:
                if rule.remaining > 0 and rule.matches(method, path):
                    rule.remaining -= 1
                    self._fail_rules = [r for r in self._fail_rules if r.remaining > 0]
                    return Failure(rule.status, rule.html)
            if self._html_502_rate and self._rng.random() < self._html_502_rate:
                return Failure(502, True)
            if self._error_rate and self._rng.random() < self._error_rate:
                return Failure(self._error_status, False)
        return None

    def should_drop(self, method: str, path: str) -> bool:
        """Whether a write that just succeeded loses its answer."""
        if method not in WRITE_METHODS:
            return False
        with self._lock:
            for rule in self._drop_rules:
                if rule.remaining > 0 and (
                    rule.path_contains is None or rule.path_contains in path
                ):
                    rule.remaining -= 1
                    self._drop_rules = [r for r in self._drop_rules if r.remaining > 0]
                    return True
            return bool(self._drop_rate and self._rng.random() < self._drop_rate)

    def hold_after(self, method: str, path: str) -> float:
        """Seconds to hold back the answer of a write that just succeeded (usually 0)."""
        if method not in WRITE_METHODS:
            return 0.0
        with self._lock:
            for rule in self._hold_rules:
                if rule.remaining > 0 and (
                    rule.path_contains is None or rule.path_contains in path
                ):
                    rule.remaining -= 1
                    self._hold_rules = [r for r in self._hold_rules if r.remaining > 0]
                    return rule.seconds
        return 0.0

    def describe(self) -> dict[str, Any]:
        """The current settings, for the control surface."""
        with self._lock:
            return {
                "error_rate": self._error_rate,
                "html_502_rate": self._html_502_rate,
                "latency": self._latency,
                "drop_after_write_rate": self._drop_rate,
                "fail_next": [
                    {
                        "remaining": r.remaining,
                        "status": r.status,
                        "html": r.html,
                        "methods": sorted(r.methods) if r.methods is not None else None,
                        "path_contains": r.path_contains,
                    }
                    for r in self._fail_rules
                ],
                "drop_after_next_write": [
                    {"remaining": r.remaining, "path_contains": r.path_contains}
                    for r in self._drop_rules
                ],
            }


class FaultControls:
    """The fault switches both simulators offer, handed to their :class:`FaultInjector`."""

    _faults: FaultInjector

    def set_faults(
        self,
        *,
        error_rate: float = 0.0,
        html_502_rate: float = 0.0,
        latency: float = 0.0,
        drop_after_write_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self._faults.set_faults(
            error_rate=error_rate,
            html_502_rate=html_502_rate,
            latency=latency,
            drop_after_write_rate=drop_after_write_rate,
            seed=seed,
        )

    def fail_next(
        self,
        n: int,
        *,
        status: int = 503,
        html: bool = False,
        methods: Iterable[str] | None = None,
        path_contains: str | None = None,
    ) -> None:
        self._faults.fail_next(
            n, status=status, html=html, methods=methods, path_contains=path_contains
        )

    def drop_after_next_write(self, n: int = 1, *, path_contains: str | None = None) -> None:
        self._faults.drop_after_next_write(n, path_contains=path_contains)

    def hold_after_next_write(
        self, n: int = 1, *, seconds: float, path_contains: str | None = None
    ) -> None:
        """Store the next ``n`` matching writes, then answer them ``seconds`` late."""
        self._faults.hold_after_next_write(n, seconds=seconds, path_contains=path_contains)

    def clear_faults(self) -> None:
        self._faults.clear()
