"""Local stand-ins for the GetMyInvoices and Billomat APIs, faithful to ../shared/api/*.md.

The names below are loaded on first use, so that `belegsync simulate --help` (which imports
``simulators.cli``) does not start by importing both simulators.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulators.billomat import BillomatSimulator
    from simulators.gmi import GmiSimulator
    from simulators.pdf import make_pdf
    from simulators.suite import Simulators

__all__ = ["BillomatSimulator", "GmiSimulator", "Simulators", "make_pdf"]

_HOMES = {
    "BillomatSimulator": "simulators.billomat",
    "GmiSimulator": "simulators.gmi",
    "Simulators": "simulators.suite",
    "make_pdf": "simulators.pdf",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'simulators' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
