"""Backlogs and when they will be drained at the current quota; the windows each account uses.

``backlog`` counts the documents the pipeline still has to move (pending, uploading, uploaded,
retrying, held); documents waiting for a person (approval, a Billomat draft) or an operator
(parked) are not in it.  ``eta_seconds`` is when the window in which the backlog's last call
may be made begins, with the accounts that share a quota taking turns (``shared.quota_plan``):
a quota-bound estimate, ``None`` while a window's size is unknown (no Billomat answer yet; an
account from before schema 0005 whose GMI key's quota name its next poll records) or the
account is paused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.db import Database
from shared.domain import DocState
from shared.quota import QuotaBook
from shared.quota_plan import (
    BILLOMAT,
    GMI,
    GMI_DAY,
    GMI_MINUTE,
    GMI_UPLOADS,
    Capacity,
    QuotaLimits,
    QuotaState,
    eta_seconds,
    typical_need,
)

Key = tuple[str, str]

BACKLOG_STATES = (
    DocState.PENDING,
    DocState.UPLOADING,
    DocState.UPLOADED,
    DocState.RETRYING,
    DocState.HELD,
)
WINDOW_NAMES = {GMI_MINUTE: "minute", GMI_DAY: "day", GMI_UPLOADS: "upload hour"}


def backlog_of(counts: Mapping[str, int]) -> int:
    return sum(counts.get(state.value, 0) for state in BACKLOG_STATES)


def format_duration(seconds: float) -> str:
    """``~45 s``, ``~12 min``, ``~1 h 32 min``, ``~2 d 3 h``: rounded up, for people."""
    s = max(0, int(-(-seconds // 1)))
    if s < 60:
        return f"~{s} s"
    minutes = -(-s // 60)
    if minutes < 60:
        return f"~{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"~{hours} h {minutes} min" if minutes else f"~{hours} h"
    days, hours = divmod(hours, 24)
    return f"~{days} d {hours} h" if hours else f"~{days} d"


def describe_backlog(backlog: int, eta: float | None, *, enabled: bool = True) -> str | None:
    """``1,840 waiting, done in ~1 h 32 min at the current quota``; ``None`` without backlog."""
    if backlog <= 0:
        return None
    waiting = f"{backlog:,} waiting"
    if not enabled:
        return f"{waiting}, account paused"
    if eta is None:
        return f"{waiting}, no estimate yet (a quota window is not known yet)"
    if eta <= 0:
        return f"{waiting}, all within the current quota window"
    return f"{waiting}, done in {format_duration(eta)} at the current quota"


def quota_view(
    db: Database,
    rows: list[dict[str, Any]],
    *,
    now: datetime | None = None,
    limits: QuotaLimits | None = None,
) -> None:
    """Add ``eta_seconds``, ``backlog_text`` and ``quota`` to the overview's rows (in place).

    Each row comes with ``_scopes`` (account id, Billomat id, GMI scope) and ``_archive``.
    """
    now = now or datetime.now(UTC)
    book = QuotaBook(db, limits)
    states = book.states(now)
    plans = []
    sharing: dict[Key, list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        _, billomat_id, gmi_scope = row.pop("_scopes")
        need = typical_need(row["direction"], archive_after_transfer=row.pop("_archive")).per_row()
        keys = {name: (name, billomat_id if name == BILLOMAT else gmi_scope or "") for name in need}
        plans.append((row, need, keys, gmi_scope))
        if row["enabled"] and row["backlog"] > 0:
            for name, key in keys.items():
                sharing[key].append((row["backlog"], need[name]))
    for row, need, keys, gmi_scope in plans:
        windows = {name: _window(book, states, key, now) for name, key in keys.items()}
        capacities = {
            name: _capacity(state, block, now, book.limits)
            for name, (state, block) in windows.items()
        }
        eta: float | None = None
        gmi_known = bool(gmi_scope) or all(name == BILLOMAT for name in need)
        if row["enabled"] and gmi_known:
            shares = {name: sharing.get(key, []) for name, key in keys.items()}
            eta = eta_seconds(row["backlog"], need, shares, capacities)
        row["eta_seconds"] = None if eta is None else round(eta)
        row["backlog_text"] = describe_backlog(
            row["backlog"], row["eta_seconds"], enabled=row["enabled"]
        )
        row["quota"] = [
            _describe(name, keys[name], state, block, now, book.limits,
                      known=name == BILLOMAT or bool(gmi_scope))
            for name, (state, block) in windows.items()
        ]  # fmt: skip


def _window(
    book: QuotaBook, states: Mapping[Key, QuotaState], key: Key, now: datetime
) -> tuple[QuotaState, QuotaState | None]:
    """The window, and for GMI the key's refusal block."""
    state = book.state(states, *key, now)
    block = book.state(states, GMI, key[1], now) if key[0] != BILLOMAT else None
    return state, block


def _capacity(
    state: QuotaState, block: QuotaState | None, now: datetime, limits: QuotaLimits
) -> Capacity | None:
    capacity = Capacity.of(state, now, limits)
    if capacity is None or block is None or not block.blocked(now):
        return capacity
    assert block.blocked_until is not None
    blocked_for = (block.blocked_until - now).total_seconds()
    return Capacity(0, capacity.per_window, max(capacity.reset_in, blocked_for), capacity.seconds)


def _describe(
    name: str,
    key: Key,
    state: QuotaState,
    block: QuotaState | None,
    now: datetime,
    limits: QuotaLimits,
    *,
    known: bool,
) -> dict[str, Any]:
    """One window for people and for JSON: used and left of the limit, and when it resets."""
    seconds = state.window_seconds or limits.billomat_window_seconds
    window = WINDOW_NAMES.get(name) or format_duration(seconds).lstrip("~")
    size_known = known and state.known()
    limit = state.window_limit if state.window_limit is not None else None
    left = state.available(now, limits) if size_known else None
    blocked_until = state.blocked_until if state.blocked(now) else None
    if block is not None and block.blocked(now):
        left, blocked_until = 0, block.blocked_until
    return {
        "api": name.split(".", 1)[0],
        "window": window,
        "limit": limit if size_known else None,
        "used": limit - left if limit is not None and left is not None else None,
        "left": left,
        "kept_for_polls": state.keep,
        "resets_at": state.reset_at.isoformat() if state.reset_at and size_known else None,
        "blocked_until": blocked_until.isoformat() if blocked_until else None,
        "scope": key[1] if name == BILLOMAT else None,  # the Billomat id; never a GMI key
    }
