"""Local stand-ins for the GetMyInvoices and Billomat APIs, faithful to ../shared/api/*.md."""

from __future__ import annotations

from simulators.billomat import BillomatSimulator
from simulators.gmi import GmiSimulator
from simulators.pdf import make_pdf
from simulators.suite import Simulators

__all__ = ["BillomatSimulator", "GmiSimulator", "Simulators", "make_pdf"]
