"""What ``belegsync doctor`` reports: one line per question, and the calls it cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.http import NullHooks, Quota

OK, WARN, FAIL, UNKNOWN = "ok", "warn", "fail", "unknown"


@dataclass(frozen=True)
class Check:
    """One finding: the question, the answer, and what belegsync does about it."""

    key: str
    question: str
    answer: str
    action: str
    status: str  # ok | warn | fail | unknown


@dataclass
class DoctorReport:
    account: str
    direction: str
    checks: list[Check] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    cleanup: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "direction": self.direction,
            "ok": self.ok,
            "findings": [asdict(c) for c in self.checks],
            "calls": self.calls,
            "cleanup": self.cleanup,
        }


class CallCounter(NullHooks):
    """Counts the calls a command makes, per API, and keeps Billomat's last quota."""

    def __init__(self) -> None:
        self.calls = {"gmi": 0, "billomat": 0}
        self.quota: Quota | None = None

    def on_response(self, api: str, endpoint: str, status: int | None, seconds: float) -> None:
        self.calls[api] = self.calls.get(api, 0) + 1

    def on_quota(self, api: str, quota: Quota) -> None:
        self.quota = quota


def clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M UTC")
