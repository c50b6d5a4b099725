"""The ledger: filtered, keyset-paginated documents, and one document with its history."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.status import document_detail, document_page
from app.web.app import Console, console_of, page, render
from shared.db import SyncAccount
from shared.domain import Direction, DocState
from shared.errors import UsageError
from shared.settings import Settings


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _accounts(console: Console) -> list[str]:
    with console.db.session() as session:
        return list(
            session.scalars(
                select(SyncAccount.name).where(SyncAccount.live()).order_by(SyncAccount.name)
            )
        )


@page
async def documents(request: Request) -> Response:
    console = console_of(request)
    params = request.query_params
    account = params.get("account") or None
    state = params.get("state") or None
    text = params.get("q") or None
    after = _int(params.get("after"))
    error = None
    try:
        result = await run_in_threadpool(
            document_page, console.db, account=account, state=state, text=text, after=after
        )
        rows, next_after = result.rows, result.next_after
    except UsageError as e:
        rows, next_after, error = [], None, str(e)
    filters = {k: v for k, v in (("account", account), ("state", state), ("q", text)) if v}
    return render(
        request,
        "documents.html",
        {
            "title": "Documents",
            "rows": rows,
            "error": error,
            "filters": filters,
            "accounts": await run_in_threadpool(_accounts, console),
            "states": [s.value for s in DocState],
            "next_url": f"/documents?{urlencode({**filters, 'after': next_after})}"
            if next_after
            else None,
            "first_url": f"/documents?{urlencode(filters)}" if after else None,
        },
    )


def links(settings: Settings, doc: dict[str, Any]) -> dict[str, str | None]:
    """API addresses of the source and the target document (the APIs have no web pages to
    link to that we know of; these are what `curl` with the account's key would read)."""
    gmi = settings.gmi_base_url
    billomat = settings.billomat_base_url.replace("{billomat_id}", doc["billomat_id"])
    if doc["direction"] == Direction.EXPORT.value:
        source = f"{gmi}/documents/{doc['source_id']}"
        target = f"{billomat}/inbox-documents/{doc['target_id']}" if doc["target_id"] else None
    else:
        source = f"{billomat}/{doc['source_kind']}/{doc['source_id']}"
        target = f"{gmi}/documents/{doc['target_id']}" if doc["target_id"] else None
    return {"source": source, "target": target}


@page
async def document(request: Request) -> Response:
    console = console_of(request)
    doc = await run_in_threadpool(
        document_detail, console.db, int(request.path_params["document_id"])
    )
    if doc is None:
        return render(request, "message.html", {"title": "Not found", "message": "Not found"}, 404)
    return render(
        request,
        "document.html",
        {
            "title": doc["document_number"] or doc["source_id"],
            "doc": doc,
            "links": links(console.settings, doc),
        },
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/documents", documents, methods=["GET"]),
        Route("/documents/{document_id:int}", document, methods=["GET"]),
    ]
