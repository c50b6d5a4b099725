"""``belegsync webhooks``' process: the ASGI app in front of the webhook receiver, and the
composition of receiver, publisher and broker.

``POST /billomat/{account}`` (the account name URL-encoded) takes one Billomat webhook for that
import account, checks its HTTP Basic credentials, puts the document into the ledger through
:meth:`ImportPoller.record` and has the outbox publish it, answering within Billomat's 10 s.
The app runs on uvicorn (``app.web.server``); the receiver itself has no HTTP in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from app.bootstrap import topology
from app.web.server import ServerThread
from producers.outbox import Outbox
from producers.pollers import ImportPoller
from producers.webhooks import (
    PATH_PREFIX,
    PUBLISH_WAIT_SECONDS,
    Publisher,
    Reply,
    WebhookReceiver,
    WebhookRequest,
)
from producers.webhooks.body import clean
from shared.accounts import AccountService
from shared.broker import Broker
from shared.crypto import SecretBox
from shared.db import Database
from shared.metrics import Metrics
from shared.quota import QuotaBook
from shared.settings import Settings

log = logging.getLogger(__name__)

# Webhook bodies are single records without files; anything bigger is not from Billomat.
MAX_BODY_BYTES = 1_000_000
# A refused oversized body is still read up to here: closing a socket with unread data resets
# the connection, and the client would never see the 413.
DISCARD_LIMIT_BYTES = 16_000_000
# Billomat gives up on an answer after 10 s.  A slow client may use at most this much of that
# per read, and the broker at most PUBLISH_WAIT, so the answer always leaves in time.
READ_TIMEOUT_SECONDS = 4.0


# ---------------------------------------------------------------------------------------------
# HTTP


def _send(reply: Reply) -> Response:
    return Response(
        reply.body(), status_code=reply.status, media_type="application/json",
        headers=dict(reply.headers),
    )  # fmt: skip


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    """The body's chunks; TimeoutError when the client stalls longer than one read may take."""
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), READ_TIMEOUT_SECONDS)
        except StopAsyncIteration:
            return
        yield chunk


async def _read_body(request: Request) -> bytes | Reply:
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        return Reply(411, "bad_request", "send the body with a Content-Length")
    raw = request.headers.get("content-length")
    if raw is None:
        return Reply(411, "bad_request", "send the body with a Content-Length")
    try:
        length = int(raw)
    except ValueError:
        return Reply(400, "bad_request", "Content-Length is not a number")
    if length < 0:
        return Reply(400, "bad_request", "Content-Length is negative")
    if length > MAX_BODY_BYTES:
        await _discard(request, length)
        return Reply(413, "too_large", f"a webhook body is at most {MAX_BODY_BYTES} bytes")
    body = bytearray()
    try:
        async for chunk in _chunks(request):
            body += chunk
    except TimeoutError:
        return Reply(408, "bad_request", "the body did not arrive in time")
    except ClientDisconnect:
        return Reply(400, "bad_request", "the body is shorter than its Content-Length")
    if len(body) < length:
        return Reply(400, "bad_request", "the body is shorter than its Content-Length")
    return bytes(body)


async def _discard(request: Request, length: int) -> None:
    """Read and drop a refused body, so the client sees the answer, not a reset socket."""
    if length > DISCARD_LIMIT_BYTES:
        return  # not worth the bandwidth; the client gets a reset, and deserves it
    try:
        async for _chunk in _chunks(request):
            pass
    except (TimeoutError, ClientDisconnect):
        return


def webhook_app(receiver: WebhookReceiver) -> Starlette:
    """The receiver's HTTP surface: ``POST /billomat/{account}`` and ``GET /healthz``."""

    async def healthz(request: Request) -> Response:
        return _send(Reply(200, "ok", "receiving Billomat webhooks"))

    async def webhook(request: Request) -> Response:
        path = request.url.path
        if request.method != "POST":
            return _send(
                Reply(
                    405, "method_not_allowed", "Billomat webhooks are POSTed",
                    headers={"Allow": "POST"},
                )
            )  # fmt: skip
        # The raw path: an account name may hold an encoded "/" or "%".
        raw_path = request.scope.get("raw_path", path.encode()).split(b"?", 1)[0]
        encoded = raw_path[len(PATH_PREFIX) :]
        if not encoded:
            return _send(Reply(404, "not_found", f"POST webhooks to {PATH_PREFIX}<account>"))
        body = await _read_body(request)
        if isinstance(body, Reply):
            return _send(body)
        try:
            account = unquote(encoded.decode("ascii"), errors="strict")
        except UnicodeDecodeError:
            return _send(Reply(404, "not_found", "the account name in the path is not UTF-8"))
        headers = request.headers
        webhook_request = WebhookRequest(
            account=account,
            event=headers.get("x-billomat-webhook-event"),
            authorization=headers.get("authorization"),
            content_type=headers.get("content-type"),
            body=body,
            request_id=headers.get("x-billomat-webhook-request-id"),
        )
        try:
            # The receiver talks to the database and waits for the broker: off the event loop.
            reply = await run_in_threadpool(receiver.handle, webhook_request)
        except Exception:
            # The details go to the log; the caller gets one line and no traceback.
            log.exception("webhook for %s failed", clean(account))
            reply = Reply(500, "error", "internal error; see the receiver's log")
        return _send(reply)

    async def not_found(request: Request) -> Response:
        return _send(Reply(404, "not_found", f"POST webhooks to {PATH_PREFIX}<account>"))

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route(PATH_PREFIX + "{account:path}", webhook, methods=["GET", "POST", "PUT"]),
            Route("/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )


# ---------------------------------------------------------------------------------------------
# Composition


class Webhooks:
    """The receiver process's parts: database, broker, publisher, receiver and HTTP server."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        box: SecretBox,
        metrics: Metrics | None = None,
    ) -> None:
        # The broker's own confirm wait must fit into Billomat's 10 s as well.
        self.broker = Broker(
            settings.broker_url,
            topology(settings),
            publish_timeout=min(settings.publish_timeout, PUBLISH_WAIT_SECONDS),
        )
        self.db = db
        self.publisher = Publisher(Outbox(db, self.broker), self.broker)
        self.receiver = WebhookReceiver(
            db,
            AccountService(db, lambda: box),
            ImportPoller(
                db,
                QuotaBook(db),
                reserve=settings.billomat_quota_reserve,
                overlap_days=settings.import_overlap_days,
            ),
            self.publisher.publish,
            metrics,
        )
        self.app = webhook_app(self.receiver)
        self._server: ServerThread | None = None

    def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the port; OSError if taken."""
        self.publisher.start()
        server = ServerThread(self.app, name=f"webhooks:{port}")
        server.start(host, port)
        self._server = server
        return self.port

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the webhook server is not running")
        return self._server.port

    def stop(self) -> None:
        """Stop taking webhooks, finish publishing, close the broker; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self.publisher.stop()
        self.broker.close()

    def __enter__(self) -> Webhooks:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
