"""Constants and helpers shared by the simulator tests (a unique module name, not ``conftest``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

GMI_KEY = "AAAA-BBBB-CCCC-DDDD"
BILLOMAT_ID = "acme"
BILLOMAT_KEY = "bm-secret-key"


class FakeClock:
    """A clock the test moves by hand, so quota windows and timestamps are deterministic."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def parse_xml(data: bytes) -> ET.Element:
    """Parse a simulator answer (our own output, so the stdlib parser is safe here)."""
    return ET.fromstring(data)  # noqa: S314
