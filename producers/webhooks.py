"""Billomat webhooks: a push producer that records what Billomat sends exactly as a poll would.

``POST /billomat/{account}`` (the account name URL-encoded) takes one Billomat webhook for that
import account, checks its HTTP Basic credentials, puts the document into the ledger through
:meth:`ImportPoller.record` and has the outbox publish it, answering within Billomat's 10 s.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote
from xml.parsers import expat

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from producers.outbox import Outbox
from producers.pollers import ImportPoller, PollReport, is_draft
from shared.accounts import AccountService, import_rules
from shared.billomat import KINDS, BillomatDocument, parse_document
from shared.bootstrap import topology
from shared.broker import Broker, PublishError
from shared.crypto import SecretBox
from shared.db import Database, SyncAccount
from shared.domain import Direction
from shared.errors import BelegsyncError, BrokerUnavailableError
from shared.metrics import Metrics
from shared.quota import QuotaBook
from shared.settings import Settings

log = logging.getLogger(__name__)

PATH_PREFIX = "/billomat/"
# Webhook bodies are single records without files; anything bigger is not from Billomat.
MAX_BODY_BYTES = 1_000_000
# A refused oversized body is still read up to here: closing a socket with unread data resets
# the connection, and the client would never see the 413.
DISCARD_LIMIT_BYTES = 16_000_000
# Billomat gives up on an answer after 10 s.  A slow client may use at most this much of that
# per read, and the broker at most PUBLISH_WAIT, so the answer always leaves in time.
READ_TIMEOUT_SECONDS = 4.0
PUBLISH_WAIT_SECONDS = 4.0
# How often the publisher retries accounts whose messages the broker did not confirm, and how
# long after a failed connect it answers "not now" at once instead of trying again.
REPUBLISH_EVERY_SECONDS = 10.0
RECONNECT_PAUSE_SECONDS = 5.0
MAX_XML_DEPTH = 32

# Actions after which the record may hold a new or newly finished document.  "send",
# "delete" and the rest never make a document importable that was not importable before.
RECORDING_ACTIONS = frozenset({"create", "update", "status"})
# Event resources use underscores (credit_note.create); bodies and kinds use dashes.
KIND_BY_RESOURCE: Mapping[str, str] = {
    spec.singular.replace("-", "_"): kind for kind, spec in KINDS.items()
}
_EVENT_RE = re.compile(r"^([a-z][a-z0-9_-]*)\.([a-z][a-z0-9_]*)$")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


class BodyError(ValueError):
    """The webhook body cannot be read; the message is the reason the 400 answer gives."""


# ---------------------------------------------------------------------------------------------
# Bodies: {"invoice": {...}} or <invoice>...</invoice>, both to the same (root, record) shape


def parse_body(body: bytes, content_type: str | None) -> tuple[str, Mapping[str, Any]]:
    """The body's single root name and its record, from JSON or XML."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return _single_root(_json_body(body))
    if media in ("application/xml", "text/xml") or media.endswith("+xml"):
        return _single_root(xml_to_dict(body))
    if not media:
        # Billomat always declares its format; a hand-made request may not, and the first
        # character tells the two apart without guessing anything else.
        start = body.lstrip()[:1]
        if start == b"{":
            return _single_root(_json_body(body))
        if start == b"<":
            return _single_root(xml_to_dict(body))
    raise BodyError(
        f"unsupported Content-Type {media or '(none)'!r}: send application/json or application/xml"
    )


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise BodyError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError:
        raise BodyError("malformed JSON: not UTF-8") from None
    except RecursionError:
        raise BodyError("malformed JSON: nested too deeply") from None


def xml_to_dict(body: bytes) -> dict[str, Any]:
    """``<invoice><id>7</id>…</invoice>`` → ``{"invoice": {"id": "7", …}}``, as Billomat's JSON.

    Leaves become their text, elements with children dicts, repeated children lists;
    attributes (``type="integer"``) carry nothing the JSON form has, so they are dropped.
    Expat is driven directly so that a DOCTYPE or entity declaration, in whatever encoding,
    stops the parse before any entity is expanded.
    """
    parser = expat.ParserCreate()
    # (tag, children, text pieces) of every open element; iterative, so depth cannot recurse.
    stack: list[tuple[str, dict[str, Any], list[str]]] = []
    result: dict[str, Any] = {}

    def start(tag: str, _attributes: dict[str, str]) -> None:
        if len(stack) >= MAX_XML_DEPTH:
            raise BodyError(f"malformed XML: nested deeper than {MAX_XML_DEPTH} elements")
        stack.append((tag, {}, []))

    def end(_tag: str) -> None:
        tag, children, text = stack.pop()
        value: Any = children if children else "".join(text)
        parent = stack[-1][1] if stack else result
        if tag not in parent:
            parent[tag] = value
        elif isinstance(parent[tag], list):
            parent[tag].append(value)
        else:
            # Repeated elements become a list, as in Billomat's JSON for several items.
            parent[tag] = [parent[tag], value]

    def text(data: str) -> None:
        if stack:
            stack[-1][2].append(data)

    def refuse(*_args: object) -> None:
        raise BodyError("XML with a DOCTYPE or entity declarations is not accepted")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(body, True)
    except expat.ExpatError as e:
        reason = expat.ErrorString(e.code)
        raise BodyError(f"malformed XML: {reason} at line {e.lineno} column {e.offset}") from None
    return result


def _single_root(parsed: Any) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(parsed, Mapping):
        raise BodyError('the body must be one object such as {"invoice": {...}}')
    if len(parsed) != 1:
        keys = ", ".join(sorted(map(str, parsed))) or "none"
        raise BodyError(f"the body must have exactly one top-level key, not {keys}")
    ((root, record),) = parsed.items()
    if not isinstance(record, Mapping):
        raise BodyError(f"{root!r} in the body is not an object")
    return str(root), record


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Event:
    resource: str  # invoice, credit_note, client …
    action: str  # create, update, status, send, delete …

    @classmethod
    def parse(cls, text: str | None) -> Event:
        if not text:
            raise BodyError("missing X-Billomat-Webhook-Event header")
        match = _EVENT_RE.match(text.strip().lower())
        if match is None:
            raise BodyError(
                f"X-Billomat-Webhook-Event {clean(text)!r} is not of the form resource.action"
            )
        return cls(match.group(1).replace("-", "_"), match.group(2))

    @property
    def kind(self) -> str | None:
        """The Billomat document kind (``invoices`` …), None for other resources."""
        return KIND_BY_RESOURCE.get(self.resource)

    def __str__(self) -> str:
        return f"{self.resource}.{self.action}"


def clean(text: str, limit: int = 120) -> str:
    """Caller-supplied text made safe for a log line or an answer: one line, bounded."""
    return _UNPRINTABLE.sub("?", text)[:limit]


# ---------------------------------------------------------------------------------------------
# The receiver: plain requests in, answers out (no sockets here)


@dataclass(frozen=True)
class WebhookRequest:
    account: str
    event: str | None
    authorization: str | None
    content_type: str | None
    body: bytes
    request_id: str | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    outcome: str
    reason: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        payload = {"outcome": self.outcome, "reason": self.reason, **self.fields}
        return json.dumps(payload, sort_keys=True).encode() + b"\n"


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="belegsync", charset="UTF-8"'}


@dataclass(frozen=True)
class _Account:
    """What the receiver needs of a sync account, read in one short transaction."""

    id: int
    name: str
    direction: Direction
    enabled: bool
    kinds: tuple[str, ...]
    username: str | None
    password_enc: str | None


def basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from an ``Authorization: Basic …`` header, None when there is none."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


class WebhookReceiver:
    """Decides what one webhook means, records it in the ledger and has it published."""

    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        poller: ImportPoller,
        publish: Callable[[int], bool | None],
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._poller = poller
        # account id -> True when confirmed, False when the broker failed, None when it did not
        # answer in time; either way the ledger row stays unpublished and is sent again later.
        self._publish = publish
        self._metrics = metrics

    def handle(self, request: WebhookRequest) -> Reply:
        """The answer for one webhook; logs one line about it."""
        try:
            reply, document = self._handle(request)
        except SQLAlchemyError as e:
            # Nothing was committed: a 503 makes Billomat send the webhook again later.
            log.warning("webhook: database unavailable (%s)", str(e).splitlines()[0][:200])
            reply = Reply(503, "unavailable", "the database is unavailable; send it again later")
            document = None
        except BelegsyncError as e:
            # Typically a secret key that cannot decrypt the stored password: an operator's job.
            log.error("webhook for %s: %s", clean(request.account), e)
            reply = Reply(500, "error", "the receiver is misconfigured; see its log")
            document = None
        self._log(request, reply, document)
        return reply

    def _handle(self, request: WebhookRequest) -> tuple[Reply, int | None]:
        account = self._find(request.account)
        if account is None:
            return Reply(404, "not_found", "no sync account of that name"), None
        if account.direction is not Direction.IMPORT:
            return Reply(
                403, "forbidden", "this is an export account; webhooks feed import accounts"
            ), None
        if not account.username or account.password_enc is None:
            return Reply(
                403,
                "forbidden",
                "webhooks are not enabled for this account: set --webhook-username and "
                "--webhook-password",
            ), None
        if not self._authorised(account, request.authorization):
            return Reply(
                401, "unauthorized", "missing or wrong credentials", headers=UNAUTHORIZED_HEADERS
            ), None

        try:
            event = Event.parse(request.event)
        except BodyError as e:
            return Reply(400, "bad_request", str(e)), None
        kind = event.kind
        if kind is None:
            return self._ignored(event, f"{event.resource} events carry no document to import")
        if event.action not in RECORDING_ACTIONS:
            return self._ignored(event, f"{event.action} does not change what is imported")
        if kind not in account.kinds:
            return self._ignored(event, f"the account does not import {kind}")

        try:
            root, record = parse_body(request.body, request.content_type)
            if root.replace("-", "_") != event.resource:
                raise BodyError(f"the body holds {clean(root)!r}, the event says {event}")
            document = parse_document(kind, record)
        except ValueError as e:  # BodyError and the parser's ResponseShapeError
            return Reply(400, "bad_request", clean(str(e), 300)), None

        return self._record(account, event, document), document.id

    def _find(self, name: str) -> _Account | None:
        with self._db.session() as session:
            row = session.scalar(select(SyncAccount).where(SyncAccount.name == name))
            if row is None:
                return None
            return _Account(
                id=row.id,
                name=row.name,
                direction=Direction(row.direction),
                enabled=row.enabled,
                kinds=import_rules(row).document_kinds
                if row.direction == Direction.IMPORT.value
                else (),
                username=row.webhook_username,
                password_enc=row.webhook_password_enc,
            )

    def _authorised(self, account: _Account, header: str | None) -> bool:
        given = basic_credentials(header)
        if given is None or account.username is None or account.password_enc is None:
            return False
        password = self._accounts.box.decrypt(account.password_enc)
        # Both compared in constant time, and both always: a wrong user name must take as long
        # as a wrong password.
        user_ok = hmac.compare_digest(given[0], account.username.encode())
        password_ok = hmac.compare_digest(given[1], password.encode())
        return user_ok and password_ok

    @staticmethod
    def _ignored(event: Event, reason: str) -> tuple[Reply, int | None]:
        # 200, not an error: Billomat would otherwise retry and finally disable the webhook.
        return Reply(200, "ignored", reason, {"event": str(event)}), None

    def _record(self, account: _Account, event: Event, document: BillomatDocument) -> Reply:
        report = PollReport(account.name, Direction.IMPORT)
        self._poller.record(account.id, document.kind, [document], report)
        fields: dict[str, Any] = {"event": str(event), "kind": document.kind, "id": document.id}
        if report.detected == 0:
            if is_draft(document):
                return Reply(200, "draft", "a draft; imported once finished", fields)
            return Reply(200, "known", "already in the ledger; nothing new to import", fields)
        if self._metrics is not None:
            self._metrics.observe_detected(Direction.IMPORT.value, report.detected)
        outcome = "detected" if report.new else "finished"
        if not account.enabled:
            return Reply(
                200, outcome, "recorded; published when the account is resumed",
                {**fields, "published": False},
            )  # fmt: skip
        published = self._publish(account.id)
        if published:
            return Reply(200, outcome, "recorded and queued", {**fields, "published": True})
        # The row is committed, so the document is safe: the publisher and the producers send
        # unpublished rows again.  Answering 2xx keeps Billomat from sending it twice.
        return Reply(
            200, outcome, "recorded; the message is sent once RabbitMQ confirms it",
            {**fields, "published": False},
        )  # fmt: skip

    def _log(self, request: WebhookRequest, reply: Reply, document: int | None) -> None:
        level = logging.WARNING if reply.status >= 400 else logging.INFO
        log.log(
            level,
            "webhook %s %s (request %s) document %s: %d %s — %s",
            clean(request.account),
            clean(request.event or "-"),
            clean(request.request_id or "-"),
            document if document is not None else "-",
            reply.status,
            reply.outcome,
            reply.reason,
            extra={
                "account": clean(request.account),
                "event": clean(request.event or ""),
                "webhook_request_id": clean(request.request_id or ""),
                "source_id": document,
                "status": reply.status,
                "outcome": reply.outcome,
            },
        )


# ---------------------------------------------------------------------------------------------
# Publishing: one thread owns the broker connection


@dataclass
class _Ticket:
    account_id: int
    done: threading.Event = field(default_factory=threading.Event)
    confirmed: bool = False


class Publisher:
    """Flushes the outbox of accounts the receiver recorded into, on one thread.

    py-amqp is not thread-safe and a publish waits for the broker's confirm, so the request
    threads hand their account to this thread and wait a bounded time: a slow or absent broker
    delays no answer beyond ``wait`` seconds, and webhooks for one account arriving together
    are published by one flush.  Accounts whose flush failed are tried again every
    ``retry_every`` seconds (the producers' loop would publish them as well).
    """

    def __init__(
        self,
        outbox: Outbox,
        broker: Broker,
        *,
        wait: float = PUBLISH_WAIT_SECONDS,
        retry_every: float = REPUBLISH_EVERY_SECONDS,
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._wait = wait
        self._retry_every = retry_every
        self._tickets: queue.Queue[_Ticket | None] = queue.Queue()
        self._failed: set[int] = set()
        self._next_connect = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-publisher", daemon=True)
        self._thread.start()

    def publish(self, account_id: int) -> bool | None:
        """Flush ``account_id`` now; True once confirmed, False if not, None if too slow."""
        ticket = _Ticket(account_id)
        self._tickets.put(ticket)
        if not ticket.done.wait(self._wait):
            return None
        return ticket.confirmed

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._tickets.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        self._connect()
        running = True
        while running:
            try:
                first = self._tickets.get(timeout=self._retry_every)
            except queue.Empty:
                self._flush_all({}, set(self._failed))
                continue
            batch = [first]
            while True:  # take everything that queued up meanwhile: one flush per account
                try:
                    batch.append(self._tickets.get_nowait())
                except queue.Empty:
                    break
            running = None not in batch
            waiting: dict[int, list[_Ticket]] = {}
            for ticket in batch:
                if ticket is not None:
                    waiting.setdefault(ticket.account_id, []).append(ticket)
            self._flush_all(waiting, set(waiting) | self._failed)

    def _flush_all(self, waiting: Mapping[int, list[_Ticket]], account_ids: set[int]) -> None:
        if not account_ids:
            return
        connected = self._connect()
        for account_id in sorted(account_ids):
            confirmed = connected and self._flush(account_id)
            for ticket in waiting.get(account_id, ()):
                ticket.confirmed = confirmed
                ticket.done.set()

    def _connect(self) -> bool:
        if self._broker.ping():
            return True
        if time.monotonic() < self._next_connect:
            # A refused connect takes seconds; while RabbitMQ is down, webhooks are answered
            # at once (recorded, published later) instead of each waiting for another attempt.
            return False
        try:
            self._broker.connect(retries=0)
        except BrokerUnavailableError as e:
            self._next_connect = time.monotonic() + RECONNECT_PAUSE_SECONDS
            log.warning("webhooks: %s; recorded documents are published later", e)
            return False
        return True

    def _flush(self, account_id: int) -> bool:
        try:
            self._outbox.flush(account_id)
        except PublishError as e:
            log.warning("webhooks: publishing for account %d failed: %s", account_id, e)
        except SQLAlchemyError as e:
            log.warning(
                "webhooks: database unavailable while publishing (%s)",
                str(e).splitlines()[0][:200],
            )
        else:
            self._failed.discard(account_id)
            return True
        self._failed.add(account_id)
        return False


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
