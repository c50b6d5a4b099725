"""``python -m simulators``: the same as ``belegsync simulate``."""

from __future__ import annotations

from simulators.cli import simulate

simulate()
