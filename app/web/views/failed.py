"""Failed and parked documents, grouped by reason; replay one, a selection or a whole group
through ``app.replay.Replayer`` (the code of ``belegsync replay``), always a dry run first.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.replay import Replayer, ReplayReport, Selection
from app.status import parked_groups, replay_pairs
from app.web.app import Console, console_of, form_of, page, render, session_of
from shared.errors import BelegsyncError

log = logging.getLogger(__name__)


@page
async def failed(request: Request) -> Response:
    groups = await run_in_threadpool(parked_groups, console_of(request).db)
    return render(request, "failed.html", {"title": "Failed / parked", "groups": groups})


def _selection(console: Console, form: FormData) -> tuple[Selection | None, dict[str, Any]]:
    """The selection a form asks for, and the hidden fields that ask for it again."""
    if form.get("everything") == "1":
        return Selection(everything=True), {"everything": "1"}
    ids = [int(str(v)) for v in form.getlist("doc") if str(v).isdigit()]
    group = str(form.get("group") or "") or None
    if not ids and group is None:
        return None, {}
    pairs = replay_pairs(console.db, ids, group)
    if not pairs:
        return None, {}
    return Selection(documents=pairs), {"doc": ids, "group": group}


def _replay(console: Console, selection: Selection, dry_run: bool, actor: str) -> ReplayReport:
    broker = console.broker()
    broker.connect(retries=1)
    try:
        return Replayer(console.db, broker).replay(selection, dry_run=dry_run, actor=actor)
    finally:
        broker.close()


async def _run(request: Request, dry_run: bool) -> Response:
    console = console_of(request)
    selection, hidden = await run_in_threadpool(_selection, console, form_of(request))
    if selection is None:
        groups = await run_in_threadpool(parked_groups, console.db)
        return render(
            request,
            "failed.html",
            {
                "title": "Failed / parked",
                "groups": groups,
                "error": "Choose at least one document.",
            },
            400,
        )
    user = session_of(request).user
    try:
        report = await run_in_threadpool(_replay, console, selection, dry_run, user)
    except BelegsyncError as e:
        return render(
            request,
            "message.html",
            {"title": "Failed / parked", "message": "RabbitMQ is not reachable: {reason}",
             "values": {"reason": str(e)}},
            503,
        )  # fmt: skip
    if not dry_run:
        log.info("%s replayed %d documents from the console", user,
                 report.count("moved") + report.count("rebuilt"))  # fmt: skip
    return render(
        request,
        "replay.html",
        {
            "title": "Failed / parked",
            "dry_run": dry_run,
            "items": [asdict(item) for item in report.items],
            "would": report.count("would move") + report.count("would rebuild"),
            "done": report.count("moved") + report.count("rebuilt"),
            "not_selected": report.not_selected,
            "hidden": hidden,
        },
    )


@page
async def preview(request: Request) -> Response:
    return await _run(request, dry_run=True)


@page
async def replay(request: Request) -> Response:
    return await _run(request, dry_run=False)


def routes() -> list[BaseRoute]:
    return [
        Route("/failed", failed, methods=["GET"]),
        Route("/failed/preview", preview, methods=["POST"]),
        Route("/failed/replay", replay, methods=["POST"]),
    ]
