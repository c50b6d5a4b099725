"""The demo's vocabulary: its sandbox accounts, options, tallies, rounds, report and view."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from shared.domain import Direction, DocState
from shared.errors import BelegsyncError
from shared.settings import Settings

# A throwaway account and tenant that exist only inside the demo's simulators.
GMI_API_KEY = "demo-gmi-key"
BILLOMAT_ID = "demo"
BILLOMAT_API_KEY = "demo-billomat-key"

EXPORT_ACCOUNT = "demo-export"
IMPORT_ACCOUNT = "demo-import"
# Billomat's inbox is for what the business receives; its own sales invoices and credit notes
# travel the other way (the import).  Leaving those types out of the export also keeps the
# documents the import puts into GMI from being sent straight back.
EXPORT_TYPES = ("INCOMING_INVOICE", "RECEIPT", "STATEMENT", "TRAVEL_EXPENSES")
IMPORT_TAGS = ("Billomat", "belegsync-demo")
IMPORT_COMPANY = "Demo GmbH (aus Billomat)"

# Short retry tiers: a transient failure during the demo is retried within seconds.
RETRY_DELAYS = "2s,5s,15s"
# The demo stops its consumers itself; this only ends them should the demo die without it.
CONSUMER_IDLE_EXIT = 120
STOP_GRACE_SECONDS = 10.0
TICK_SECONDS = 0.25
LOG_TAIL_LINES = 12

START_HINT = (
    'start it with "rabbitmq-server -detached" '
    '(or "docker run -d -p 5672:5672 rabbitmq:3.13"), '
    "or point BELEGSYNC_BROKER_URL at a running one"
)

IN_FLIGHT = frozenset({DocState.PENDING, DocState.UPLOADING, DocState.UPLOADED, DocState.RETRYING})
STUCK = frozenset({DocState.PARKED, DocState.HELD})
WAITING = frozenset({DocState.WAITING_APPROVAL, DocState.DRAFT})
LANDED = frozenset({DocState.SYNCED, DocState.UPLOADED})

DIRECTION_LABELS = {
    Direction.EXPORT: "export  GMI → Billomat inbox",
    Direction.IMPORT: "import  Billomat → GMI",
}


class DemoError(BelegsyncError):
    """The demo could not run, or did not end as it should (exit code 1).

    ``details`` are lines worth showing before the one-line reason (e.g. process log tails).
    """

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


@dataclass(frozen=True)
class DemoOptions:
    broker_url: str
    consumers: int = 2
    timeout: float = 60.0
    keep: bool = False
    later_changes: bool = True


@dataclass(frozen=True)
class Tally:
    """One direction's documents at one moment of a round."""

    direction: Direction
    expected: int
    synced: int
    waiting: int
    in_flight: int
    stuck: int

    @property
    def label(self) -> str:
        return DIRECTION_LABELS[self.direction]


@dataclass
class RoundResult:
    name: str
    title: str
    expected: dict[str, int]
    synced: dict[str, int]
    waiting: dict[str, int]
    seconds: float
    producer: list[str]


class DemoView(Protocol):
    """What the command shows while the demo runs (the console, or nothing)."""

    def note(self, label: str, text: str) -> None: ...

    def round_started(self, title: str, tallies: list[Tally]) -> None: ...

    def round_progress(self, tallies: list[Tally]) -> None: ...

    def round_finished(self, result: RoundResult) -> None: ...

    def report(self, report: DemoReport, settings: Settings) -> None: ...


@dataclass
class DemoReport:
    """Everything the demo found out; ``to_json`` is the ``--json`` output."""

    ok: bool
    problems: list[str]
    queue_prefix: str
    broker: str
    database: str
    kept: str | None
    accounts: list[dict[str, Any]]
    rounds: list[RoundResult]
    later_changes: dict[str, list[dict[str, Any]]]
    overview: list[dict[str, Any]]
    export: list[dict[str, Any]]
    import_: list[dict[str, Any]]
    simulator_state: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    cleanup: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # ``import`` is a keyword in Python only; in JSON it sits next to ``export``.
        return {("import" if k == "import_" else k): v for k, v in data.items()}
