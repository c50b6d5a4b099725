"""Logging in and out, and the language switch."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.web import i18n
from app.web.app import console_of, forbidden, local_path, page, redirect, render, session_of
from app.web.security import LOGIN_COOKIE, SESSION_COOKIE
from app.web.throttle import Keys

log = logging.getLogger(__name__)

LANG_COOKIE_SECONDS = 365 * 86400


def _cookie_flags(request: Request) -> dict[str, object]:
    secure = console_of(request).settings.web_secure_cookies
    return {"httponly": True, "samesite": "strict", "secure": secure, "path": "/"}


def _address(request: Request) -> str:
    # uvicorn already replaced it with X-Forwarded-For's when the peer is a trusted proxy.
    return request.client.host if request.client else "unknown"


def _login_form(
    request: Request, *, error: str | None = None, name: str = "", status: int = 200
) -> Response:
    tokens = console_of(request).login_tokens
    # Keep the nonce the browser has: a second tab, or the favicon's request, must not make
    # the form of the first one stale.
    nonce = request.cookies.get(LOGIN_COOKIE) or ""
    if not (16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum()):
        nonce = tokens.nonce()
    response = render(
        request,
        "login.html",
        {
            "title": "Log in",
            "login_token": tokens.token(nonce),
            "error": error,
            "name": name,
            "next": local_path(request.query_params.get("next")),
        },
        status,
    )
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, **_cookie_flags(request))  # type: ignore[arg-type]
    return response


async def login_page(request: Request) -> Response:
    return _login_form(request)


async def login(request: Request) -> Response:
    console = console_of(request)
    form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    if not console.login_tokens.valid(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
        return forbidden(request)
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    keys = Keys.of(name, _address(request))
    wait = await run_in_threadpool(console.throttle.wait_seconds, keys)
    if wait > 0:
        log.warning("login for %r from %s refused: throttled", name[:100], _address(request))
        t = i18n.translator(
            i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
        )
        seconds = int(wait) + 1
        response = _login_form(
            request,
            error=t("Too many failed logins. Try again in {seconds} seconds.", seconds=seconds),
            name=name,
            status=429,
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user_id = await run_in_threadpool(console.users.verify, name, password)
    if user_id is None:
        await run_in_threadpool(console.throttle.failed, keys)
        log.warning("failed login for %r from %s", name[:100], _address(request))
        t = i18n.translator(
            i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
        )
        return _login_form(request, error=t("Wrong user name or password."), name=name, status=401)
    await run_in_threadpool(console.throttle.succeeded, keys)
    token = await run_in_threadpool(console.sessions.open, user_id)
    log.info("%s logged in from %s", name, _address(request))
    response = redirect(local_path(str(form.get("next") or "/")))
    response.set_cookie(SESSION_COOKIE, token, **_cookie_flags(request))  # type: ignore[arg-type]
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@page
async def logout(request: Request) -> Response:
    current = session_of(request)
    await run_in_threadpool(console_of(request).sessions.close, current.id)
    log.info("%s logged out", current.user)
    response = redirect("/login?bye=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def language(request: Request) -> Response:
    """The language switch: a preference cookie, then back where the user was."""
    lang = request.path_params["lang"]
    response = redirect(local_path(request.query_params.get("next")))
    if lang in i18n.LANGUAGES:
        response.set_cookie(
            i18n.COOKIE, lang, max_age=LANG_COOKIE_SECONDS, samesite="strict", path="/",
            secure=console_of(request).settings.web_secure_cookies,
        )  # fmt: skip
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang/{lang}", language, methods=["GET"]),
    ]
