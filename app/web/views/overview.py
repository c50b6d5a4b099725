"""The overview ("Synchronisieren"): every account, its state, polls, documents and quota."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.status import overview as status_overview
from app.web.app import Console, console_of, page, render
from app.web.i18n import when
from shared.db import AccountEvent, SyncAccount
from shared.quota import limits_from

REFRESH_SECONDS = 10
API_NAMES = {"billomat": "Billomat", "gmi": "GMI"}
# Columns of the "documents by state" cell, in the order a person reads them.
SHOWN_STATES = ("synced", "pending", "waiting", "retrying", "parked", "skipped")


def _state(row: dict[str, Any], paused_by: str | None) -> tuple[str, str | None]:
    """(active | paused | needs attention, why)."""
    if row.get("attention"):
        return "needs attention", str(row["attention"])
    if not row["enabled"]:
        return "paused", paused_by
    if row["counts"].get("parked"):
        return "needs attention", "parked documents"
    if row.get("last_poll_result") not in (None, "ok", "skipped_quota", "rate_limited"):
        return "needs attention", row.get("last_poll_error") or "last poll failed"
    return "active", None


def _grouped(counts: dict[str, int]) -> dict[str, int]:
    return {
        "synced": counts.get("synced", 0),
        "pending": sum(counts.get(s, 0) for s in ("pending", "uploading", "uploaded", "held")),
        "waiting": counts.get("waiting_approval", 0) + counts.get("draft", 0),
        "retrying": counts.get("retrying", 0),
        "parked": counts.get("parked", 0),
        "skipped": counts.get("skipped", 0),
    }


def _known_windows(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The quota windows the account draws on that something is known of (as `status` shows
    them): what is left of the limit and when it resets, or until when the API blocks."""
    return [
        {**window, "api": API_NAMES.get(window["api"], window["api"])}
        for window in windows
        if window["limit"] is not None or window["blocked_until"]
    ]


def rows(console: Console) -> list[dict[str, Any]]:
    with console.db.session() as session:
        ids: dict[str, int] = dict(
            session.execute(
                select(SyncAccount.name, SyncAccount.id).where(SyncAccount.live())
            ).all()
        )
        # Who paused an account, and when: the newest "paused" entry of its history.
        paused_by: dict[int | None, str] = {}
        for event in session.scalars(
            select(AccountEvent).where(AccountEvent.action == "paused").order_by(AccountEvent.id)
        ):
            paused_by[event.account_id] = f"{event.actor}, {when(event.at.isoformat())}"
    result = []
    now = datetime.now(UTC)
    for row in status_overview(console.db, now=now, limits=limits_from(console.settings)):
        state, why = _state(row, paused_by.get(ids.get(row["account"])))
        next_at = row.get("next_poll_at")
        overdue = next_at is not None and datetime.fromisoformat(str(next_at)) <= now
        result.append(
            {
                **row,
                "id": ids.get(row["account"]),
                "state": state,
                "why": why,
                "grouped": _grouped(row["counts"]),
                "quota": _known_windows(row["quota"]),
                "next_due_now": overdue,
                "backlog": row["backlog"],
                "eta_seconds": row["eta_seconds"],
            }
        )
    return result


@page
async def overview(request: Request) -> Response:
    accounts = await run_in_threadpool(rows, console_of(request))
    fragment = request.query_params.get("fragment") == "1"
    return render(
        request,
        "overview_table.html" if fragment else "overview.html",
        {
            "title": "Overview",
            "accounts": accounts,
            "refresh": REFRESH_SECONDS,
            "shown_states": SHOWN_STATES,
        },
    )


def routes() -> list[BaseRoute]:
    return [Route("/", overview, methods=["GET"])]
