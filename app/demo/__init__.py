"""`belegsync demo`: the whole sync loop on in-process simulators, with real producer and
consumer processes on the real RabbitMQ, in a sandbox that is removed afterwards.

No click and no printing in this package: the command passes a ``DemoView`` that shows what happens.
"""

from __future__ import annotations

from app.demo.checks import export_rows, find_problems, import_rows, simulator_state
from app.demo.model import (
    RETRY_DELAYS,
    DemoError,
    DemoOptions,
    DemoReport,
    DemoView,
    RoundResult,
    Tally,
)
from app.demo.rounds import expected_synced, tallies
from app.demo.run import run_demo
from app.demo.sandbox import Sandbox

__all__ = [
    "RETRY_DELAYS",
    "DemoError",
    "DemoOptions",
    "DemoReport",
    "DemoView",
    "RoundResult",
    "Sandbox",
    "Tally",
    "expected_synced",
    "export_rows",
    "find_problems",
    "import_rows",
    "run_demo",
    "simulator_state",
    "tallies",
]
