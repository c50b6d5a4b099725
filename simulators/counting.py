"""Request bookkeeping for tests and benchmarks: how many calls each client spent, per endpoint."""

from __future__ import annotations

import threading


class RequestCounter:
    """Requests per (owner, endpoint template) and rate-limit answers per owner; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._limited: dict[str, int] = {}

    def count(self, owner: str, endpoint: str) -> None:
        with self._lock:
            self._counts[(owner, endpoint)] = self._counts.get((owner, endpoint), 0) + 1

    def count_limited(self, owner: str) -> None:
        with self._lock:
            self._limited[owner] = self._limited.get(owner, 0) + 1

    def counts(self, owner: str | None = None) -> dict[str, int]:
        result: dict[str, int] = {}
        with self._lock:
            for (who, endpoint), n in self._counts.items():
                if owner is None or who == owner:
                    result[endpoint] = result.get(endpoint, 0) + n
        return dict(sorted(result.items()))

    def limited(self, owner: str | None = None) -> int:
        with self._lock:
            if owner is None:
                return sum(self._limited.values())
            return self._limited.get(owner, 0)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._limited.clear()
