"""The webhook receiver: what one Billomat webhook means for an import account, recorded in the
ledger exactly as a poll would record it (no sockets here; the HTTP server is an entry point).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from producers.pollers import ImportPoller, PollReport, is_draft
from producers.webhooks.body import (
    RECORDING_ACTIONS,
    BodyError,
    Event,
    clean,
    parse_body,
)
from shared.accounts import AccountService, import_rules
from shared.billomat import BillomatDocument, parse_document
from shared.db import Database, SyncAccount
from shared.domain import Direction
from shared.errors import BelegsyncError
from shared.metrics import Metrics

log = logging.getLogger(__name__)

PATH_PREFIX = "/billomat/"

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
            row = session.scalar(
                select(SyncAccount).where(SyncAccount.name == name, SyncAccount.live())
            )
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
