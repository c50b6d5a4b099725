"""``belegsync webhooks``' process: the HTTP server in front of the webhook receiver, and the
composition of receiver, publisher and broker.

``POST /billomat/{account}`` (the account name URL-encoded) takes one Billomat webhook for that
import account, checks its HTTP Basic credentials, puts the document into the ledger through
:meth:`ImportPoller.record` and has the outbox publish it, answering within Billomat's 10 s.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from app.bootstrap import topology
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


class _Server(ThreadingHTTPServer):
    # A stuck request thread must never keep a stopping process alive.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: WebhookReceiver) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.receiver = receiver
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "belegsync-webhooks"
    # Applied to the socket by StreamRequestHandler: a client that stalls is dropped.
    timeout = READ_TIMEOUT_SECONDS

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(Reply(200, "ok", "receiving Billomat webhooks"))
        elif path.startswith(PATH_PREFIX):
            self._send(
                Reply(
                    405,
                    "method_not_allowed",
                    "Billomat webhooks are POSTed",
                    headers={"Allow": "POST"},
                )
            )
        else:
            self._send(Reply(404, "not_found", f"POST webhooks to {PATH_PREFIX}<account>"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX) or len(path) == len(PATH_PREFIX):
            self._send(Reply(404, "not_found", f"POST webhooks to {PATH_PREFIX}<account>"))
            return
        body = self._read_body()
        if isinstance(body, Reply):
            self._send(body)
            return
        try:
            account = unquote(path[len(PATH_PREFIX) :], errors="strict")
        except UnicodeDecodeError:
            self._send(Reply(404, "not_found", "the account name in the path is not UTF-8"))
            return
        request = WebhookRequest(
            account=account,
            event=self.headers.get("X-Billomat-Webhook-Event"),
            authorization=self.headers.get("Authorization"),
            content_type=self.headers.get("Content-Type"),
            body=body,
            request_id=self.headers.get("X-Billomat-Webhook-Request-Id"),
        )
        try:
            reply = self.server.receiver.handle(request)
        except Exception:
            # The details go to the log; the caller gets one line and no traceback.
            log.exception("webhook for %s failed", clean(request.account))
            reply = Reply(500, "error", "internal error; see the receiver's log")
        self._send(reply)

    def _read_body(self) -> bytes | Reply:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return Reply(411, "bad_request", "send the body with a Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return Reply(411, "bad_request", "send the body with a Content-Length")
        try:
            length = int(raw)
        except ValueError:
            return Reply(400, "bad_request", "Content-Length is not a number")
        if length < 0:
            return Reply(400, "bad_request", "Content-Length is negative")
        if length > MAX_BODY_BYTES:
            self._discard(length)
            return Reply(413, "too_large", f"a webhook body is at most {MAX_BODY_BYTES} bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            return Reply(408, "bad_request", "the body did not arrive in time")
        if len(body) < length:
            return Reply(400, "bad_request", "the body is shorter than its Content-Length")
        return body

    def _discard(self, length: int) -> None:
        """Read and drop a refused body, so the client sees the answer, not a reset socket."""
        if length > DISCARD_LIMIT_BYTES:
            return  # not worth the bandwidth; the client gets a reset, and deserves it
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    return
                remaining -= len(chunk)
        except OSError:
            return

    def _send(self, reply: Reply) -> None:
        body = reply.body()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError as e:
            # The caller gave up (Billomat waits 10 s); it sends the webhook again.
            log.info("webhook answer could not be sent: %s", e)

    def log_message(self, format: str, *args: Any) -> None:
        # The receiver logs one line per webhook itself; access lines would only repeat it.
        log.debug("%s - " + format, self.address_string(), *args)


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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the port; OSError if taken."""
        self.publisher.start()
        self._server = _Server((host, port), self.receiver)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"webhooks:{port}",
            daemon=True,
        )
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the webhook server is not running")
        return int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop taking webhooks, finish publishing, close the broker; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
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
