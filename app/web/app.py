"""The console's ASGI app: routes, the login wall, CSRF, security headers, rendering.

Every page but ``/healthz``, ``/readyz``, ``/metrics``, ``/login`` and the static files needs a
session; every POST needs the session's CSRF token (403 and no change without it).  Blocking
work (database, broker, argon2) runs in Starlette's thread pool, never on the event loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.users import UserService
from app.web import i18n
from app.web.security import SESSION_COOKIE, CurrentSession, LoginTokens, Sessions, csrf_ok
from app.web.throttle import LoginThrottleBook
from shared.accounts import AccountService
from shared.broker import Broker
from shared.crypto import SecretBox
from shared.db import Database
from shared.metrics import Metrics
from shared.settings import Settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# No inline script or style anywhere: everything the pages run or wear comes from /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Forms are small: a settings page, a login, a selection of ledger rows.
MAX_FORM_FIELDS = 5000
MAX_FORM_PART = 64 * 1024
# Any body bigger than this is refused (413) before a form parser sees it, logged in or not.
MAX_BODY_BYTES = 1_000_000
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/static/")

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Console:
    """Everything the pages use, built once by the composition root (``build_console``)."""

    settings: Settings
    db: Database
    box: SecretBox
    accounts: AccountService
    users: UserService
    sessions: Sessions
    throttle: LoginThrottleBook
    login_tokens: LoginTokens
    metrics: Metrics
    broker: Callable[[], Broker]  # a new, unconnected broker for one replay
    templates: Jinja2Templates


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def session_of(request: Request) -> CurrentSession:
    current: CurrentSession = request.state.session
    return current


def form_of(request: Request) -> FormData:
    form: FormData = request.state.form
    return form


# ---------------------------------------------------------------------------------------------
# Rendering


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> Response:
    console = console_of(request)
    lang = i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
    current: CurrentSession | None = getattr(request.state, "session", None)
    values: dict[str, Any] = {
        "lang": lang,
        "_": i18n.translator(lang),
        "user": current.user if current else None,
        "csrf": current.csrf_token if current else None,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "path": request.url.path,
    }
    values.update(context or {})
    return console.templates.TemplateResponse(request, template, values, status_code=status)


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site, else ``default`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def redirect(to: str) -> Response:
    return RedirectResponse(to, status_code=303)


# ---------------------------------------------------------------------------------------------
# The login wall and CSRF


def page(handler: Handler) -> Handler:
    """A console page: logged in, and for POST the form read and its CSRF token checked."""

    async def wrapped(request: Request) -> Response:
        console = console_of(request)
        current = await run_in_threadpool(
            console.sessions.current, request.cookies.get(SESSION_COOKIE)
        )
        if current is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                here = "/"
            return redirect("/login?next=" + quote(here, safe=""))
        request.state.session = current
        if request.method == "POST":
            form = await request.form(
                max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART
            )
            if not csrf_ok(current.csrf_token, form.get("csrf")):
                log.warning("refused a %s %s without a valid CSRF token", request.method,
                            request.url.path)  # fmt: skip
                return forbidden(request)
            request.state.form = form
        return await handler(request)

    return wrapped


def forbidden(request: Request) -> Response:
    lang = i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
    text = i18n.translator(lang)(
        "The form's security token is missing or outdated. Reload the page and try again."
    )
    return PlainTextResponse(text + "\n", status_code=403)


# ---------------------------------------------------------------------------------------------
# Security headers


class SecurityHeaders:
    """Adds CSP and friends to every answer; HTML and JSON are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---------------------------------------------------------------------------------------------
# Health and metrics (open, like every other belegsync process's)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    console = console_of(request)
    checks = {"database": await run_in_threadpool(console.db.ping)}
    body = json.dumps(checks, sort_keys=True) + "\n"
    return Response(body, status_code=200 if all(checks.values()) else 503,
                    media_type="application/json")  # fmt: skip


async def metrics(request: Request) -> Response:
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(console_of(request).metrics.registry), media_type=content_type)


async def not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith(OPEN_PATHS):
        return PlainTextResponse("not found\n", status_code=404)
    current = await run_in_threadpool(
        console_of(request).sessions.current, request.cookies.get(SESSION_COOKIE)
    )
    if current is None:
        return redirect("/login")
    request.state.session = current
    return render(request, "message.html", {"title": "Not found", "message": "Not found"}, 404)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("console request %s %s failed", request.method, request.url.path, exc_info=exc)
    return HTMLResponse("internal error; see the console's log\n", status_code=500)


# ---------------------------------------------------------------------------------------------
# The app


def create_app(console: Console) -> Starlette:
    from app.web.views import accounts, auth, documents, failed, overview

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *auth.routes(),
        *overview.routes(),
        *accounts.routes(),
        *documents.routes(),
        *failed.routes(),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={404: not_found, 500: server_error},
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.console = console
    return app


def templates() -> Jinja2Templates:
    env_templates = Jinja2Templates(directory=HERE / "templates")
    env = env_templates.env
    env.filters["when"] = i18n.when
    env.filters["clock"] = i18n.clock
    env.globals["state_label"] = i18n.state_label
    return env_templates


def build_console(
    settings: Settings, db: Database, box: SecretBox, fernet_key: str | None, metrics: Metrics
) -> Console:
    """The console's composition root."""
    from app.bootstrap import broker
    from app.web.security import derive_secret

    return Console(
        settings=settings,
        db=db,
        box=box,
        accounts=AccountService(db, lambda: box),
        users=UserService(db),
        sessions=Sessions(db, timedelta(minutes=settings.web_session_idle_minutes)),
        throttle=LoginThrottleBook(db),
        login_tokens=LoginTokens(derive_secret(settings, fernet_key)),
        metrics=metrics,
        broker=lambda: broker(settings),
        templates=templates(),
    )
