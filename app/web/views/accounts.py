"""Sync accounts: the wizard that adds one, its page, editing, pause/resume and removal.

Every change goes through :class:`AccountService` (the CLI's rules) with the user's name as
the actor, so it lands in the account history in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.status import account_history, document_page
from app.web.app import Console, console_of, form_of, page, redirect, render, session_of
from app.web.forms import CHOICES, AccountForm
from shared.crypto import mask
from shared.db import Document, SyncAccount
from shared.domain import DEFAULT_IMPORT_KINDS, Direction, DocState, format_duration
from shared.errors import SecretKeyError, UsageError


def _direction(raw: object) -> Direction | None:
    try:
        return Direction(str(raw))
    except ValueError:
        return None


def _wizard(request: Request, form: AccountForm, status: int = 200) -> Response:
    return render(
        request,
        "account_wizard.html",
        {
            "title": "Add sync account",
            "direction": form.direction.value,
            "form": form.shown(),
            "errors": form.errors,
            "general": form.general,
            "choices_of": CHOICES,
        },
        status,
    )


@page
async def new_account(request: Request) -> Response:
    direction = _direction(request.query_params.get("direction"))
    if direction is None:
        return render(request, "account_start.html", {"title": "Add sync account"})
    return _wizard(request, AccountForm.blank(direction))


@page
async def create_account(request: Request) -> Response:
    console = console_of(request)
    data = form_of(request)
    direction = _direction(data.get("direction"))
    if direction is None:
        return render(request, "account_start.html", {"title": "Add sync account"}, 400)
    form = AccountForm.read(direction, data)
    changes = form.changes()
    if form.errors:
        form.general.append("Please correct the marked fields.")
        return _wizard(request, form, 400)
    if direction is Direction.EXPORT:
        changes.require_approval = bool(changes.require_approval)
        changes.archive_after_transfer = bool(changes.archive_after_transfer)
    try:
        account = await run_in_threadpool(
            console.accounts.add, direction, form.values["name"], changes,
            actor=session_of(request).user,
        )  # fmt: skip
    except UsageError as e:
        form.fail(e)
        return _wizard(request, form, 400)
    return redirect(f"/accounts/{account.id}?added=1")


# -- one account ----------------------------------------------------------------------------


def _load(console: Console, account_id: int) -> SyncAccount | None:
    with console.db.session() as session:
        account = session.get(SyncAccount, account_id)
    # A removed account may keep its row (and ledger) behind the scenes; it has no page.
    if account is None or getattr(account, "removed_at", None) is not None:
        return None
    return account


def _account_view(console: Console, account: SyncAccount) -> dict[str, Any]:
    try:
        creds = console.accounts.credentials(account)
        keys = {
            "gmi_api_key": mask(creds.gmi_api_key),
            "billomat_api_key": mask(creds.billomat_api_key),
        }
    except SecretKeyError:  # stored under another key: the page says so instead of failing
        keys = {"gmi_api_key": "(cannot decrypt)", "billomat_api_key": "(cannot decrypt)"}
    view: dict[str, Any] = {
        "id": account.id,
        "name": account.name,
        "direction": account.direction,
        "enabled": account.enabled,
        "attention": account.attention_reason,
        "billomat_id": account.billomat_id,
        "interval": format_duration(account.interval_seconds),
        "note": account.note,
        **keys,
    }
    if account.direction == Direction.EXPORT.value:
        view.update(
            document_types=list(account.document_types or []),
            tags=list(account.tags or []),
            require_approval=account.require_approval,
            archive_after_transfer=account.archive_after_transfer,
            date_from=account.date_from.isoformat() if account.date_from else None,
            date_to=account.date_to.isoformat() if account.date_to else None,
        )
    else:
        view.update(
            default_document_type=account.default_document_type,
            default_tags=list(account.default_tags or []),
            default_company=account.default_company,
            document_kinds=list(account.document_kinds or DEFAULT_IMPORT_KINDS),
            webhook_username=account.webhook_username,
        )
    return view


def _account_page_data(console: Console, account_id: int) -> dict[str, Any] | None:
    account = _load(console, account_id)
    if account is None:
        return None
    return {
        "account": _account_view(console, account),
        "history": account_history(console.db, account_id),
        "documents": document_page(console.db, account=account.name, limit=20).rows,
    }


@page
async def show_account(request: Request) -> Response:
    console = console_of(request)
    data = await run_in_threadpool(
        _account_page_data, console, int(request.path_params["account_id"])
    )
    if data is None:
        return render(request, "message.html", {"title": "Not found", "message": "Not found"}, 404)
    notice = {
        "added": "Integration complete: the account {name} was added.",
        "saved": "Saved.",
        "unchanged": "Nothing changed.",
        "paused": "Paused.",
        "resumed": "Resumed.",
    }
    shown = [text for key, text in notice.items() if request.query_params.get(key)]
    return render(
        request,
        "account.html",
        {"title": data["account"]["name"], **data, "notices": shown},
    )


def _edit_page(
    request: Request, account: SyncAccount, form: AccountForm, console: Console, status: int = 200
) -> Response:
    creds = console.accounts.credentials(account)
    return render(
        request,
        "account_edit.html",
        {
            "title": account.name,
            "account_id": account.id,
            "account_name": account.name,
            "direction": form.direction.value,
            "form": form.shown(),
            "errors": form.errors,
            "general": form.general,
            "choices_of": CHOICES,
            # the last four characters, as `accounts show` prints them
            "tails": {
                "gmi_api_key": mask(creds.gmi_api_key).removeprefix("***"),
                "billomat_api_key": mask(creds.billomat_api_key).removeprefix("***"),
            },
            "has_webhook_password": account.webhook_password_enc is not None,
        },
        status,
    )


@page
async def edit_account(request: Request) -> Response:
    console = console_of(request)
    account = await run_in_threadpool(_load, console, int(request.path_params["account_id"]))
    if account is None:
        return render(request, "message.html", {"title": "Not found", "message": "Not found"}, 404)
    return await run_in_threadpool(
        _edit_page, request, account, AccountForm.of_account(account), console
    )


@page
async def update_account(request: Request) -> Response:
    console = console_of(request)
    account = await run_in_threadpool(_load, console, int(request.path_params["account_id"]))
    if account is None:
        return render(request, "message.html", {"title": "Not found", "message": "Not found"}, 404)
    direction = Direction(account.direction)
    form = AccountForm.read(direction, form_of(request))
    changes = form.changes(current=AccountForm.of_account(account).values)
    if form.errors:
        form.general.append("Please correct the marked fields.")
        return await run_in_threadpool(_edit_page, request, account, form, console, 400)
    from shared.accounts import AccountChanges

    if changes == AccountChanges():
        return redirect(f"/accounts/{account.id}?unchanged=1")
    try:
        await run_in_threadpool(
            console.accounts.update, account.name, changes, actor=session_of(request).user
        )
    except UsageError as e:
        form.fail(e)
        return await run_in_threadpool(_edit_page, request, account, form, console, 400)
    return redirect(f"/accounts/{account.id}?saved=1")


def _set_enabled(enabled: bool) -> Any:
    @page
    async def handler(request: Request) -> Response:
        console = console_of(request)
        account = await run_in_threadpool(_load, console, int(request.path_params["account_id"]))
        if account is None:
            return render(
                request, "message.html", {"title": "Not found", "message": "Not found"}, 404
            )
        await run_in_threadpool(
            console.accounts.set_enabled, account.name, enabled, actor=session_of(request).user
        )
        return redirect(f"/accounts/{account.id}?{'resumed' if enabled else 'paused'}=1")

    return handler


def _ledger_counts(console: Console, account_id: int) -> tuple[int, int]:
    with console.db.session() as session:
        total = session.scalar(
            select(func.count()).select_from(Document).where(Document.account_id == account_id)
        )
        synced = session.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.account_id == account_id, Document.state == DocState.SYNCED.value)
        )
    return int(total or 0), int(synced or 0)


async def _remove_page(
    request: Request, account: SyncAccount, error: str | None = None, status: int = 200
) -> Response:
    total, synced = await run_in_threadpool(_ledger_counts, console_of(request), account.id)
    return render(
        request,
        "account_remove.html",
        {
            "title": account.name,
            "account_id": account.id,
            "account_name": account.name,
            "total": total,
            "synced": synced,
            "error": error,
        },
        status,
    )


@page
async def confirm_remove(request: Request) -> Response:
    account = await run_in_threadpool(
        _load, console_of(request), int(request.path_params["account_id"])
    )
    if account is None:
        return render(request, "message.html", {"title": "Not found", "message": "Not found"}, 404)
    return await _remove_page(request, account)


@page
async def remove_account(request: Request) -> Response:
    console = console_of(request)
    account = await run_in_threadpool(_load, console, int(request.path_params["account_id"]))
    if account is None:
        return render(request, "message.html", {"title": "Not found", "message": "Not found"}, 404)
    # The CLI asks before it removes; the console asks for the name, which is harder to
    # click through by accident.
    if str(form_of(request).get("confirm_name") or "").strip() != account.name:
        return await _remove_page(request, account, "The name does not match.", 400)
    try:
        await run_in_threadpool(
            console.accounts.remove, account.name, actor=session_of(request).user
        )
    except UsageError as e:
        return await _remove_page(request, account, str(e), 400)
    return render(
        request,
        "message.html",
        {
            "title": "Remove",
            "message": "Removed the account {name}.",
            "values": {"name": account.name},
        },
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/accounts/new", new_account, methods=["GET"]),
        Route("/accounts/new", create_account, methods=["POST"]),
        Route("/accounts/{account_id:int}", show_account, methods=["GET"]),
        Route("/accounts/{account_id:int}/edit", edit_account, methods=["GET"]),
        Route("/accounts/{account_id:int}/edit", update_account, methods=["POST"]),
        Route("/accounts/{account_id:int}/pause", _set_enabled(False), methods=["POST"]),
        Route("/accounts/{account_id:int}/resume", _set_enabled(True), methods=["POST"]),
        Route("/accounts/{account_id:int}/remove", confirm_remove, methods=["GET"]),
        Route("/accounts/{account_id:int}/remove", remove_account, methods=["POST"]),
    ]
