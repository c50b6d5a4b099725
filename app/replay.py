"""Putting parked documents back to work.

A parked document has a message in the parking queue (with headers saying why) and a ledger row
in state ``parked``.  Replay moves matching messages back to their work queue with the attempt
count reset; a parked row whose message is gone (expired, purged) gets a new message rebuilt
from the ledger; a message of a document that has been synced since is dropped.

Anything may be parked, so parked messages are read through ``app.parked``: one that does not
decode, or that names a ledger row of another account, stays parked and is listed with its
reason and size; it never changes a row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.parked import browse, describe
from consumers.intake import Mismatch, owns, resolve
from producers.outbox import message_for
from shared import ledger
from shared.broker import Broker
from shared.db import Database, Document, SyncAccount
from shared.deliveries import Delivery
from shared.domain import Direction, DocState
from shared.errors import UsageError
from shared.messages import ATTEMPT_HEADER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayItem:
    account: str
    direction: str
    source_id: str
    action: str  # moved | rebuilt | dropped (synced since) | would move | would rebuild | kept: …
    reason: str  # why it was parked
    size: int | None = None  # bytes of the parked message (None: rebuilt from the ledger)


@dataclass
class ReplayReport:
    items: list[ReplayItem] = field(default_factory=list)
    malformed_kept: int = 0  # undecodable parked messages: nothing to replay them into
    foreign_kept: int = 0  # messages naming no ledger row of theirs: nothing to replay either
    not_selected: int = 0  # parked messages outside the selection, left where they are

    def count(self, action: str) -> int:
        return sum(1 for item in self.items if item.action == action)


# States whose message is somewhere in the broker (a work or delay queue) while all is well.
IN_FLIGHT = (DocState.RETRYING.value, DocState.PENDING.value, DocState.UPLOADING.value)


@dataclass(frozen=True)
class Selection:
    account: str | None = None
    source_id: str | None = None
    everything: bool = False
    # also rebuild messages of documents in flight that have not moved for this long (their
    # message may have been purged from a queue by hand)
    stuck_for: timedelta | None = None
    # exactly these (account name, source id) pairs (the console's selection)
    documents: frozenset[tuple[str, str]] | None = None

    def check(self) -> None:
        if not (self.account or self.source_id or self.everything or self.documents):
            raise UsageError("choose what to replay: --all, --account NAME or --document SOURCE_ID")

    def matches(self, account: str, source_id: str) -> bool:
        if self.account is not None and account != self.account:
            return False
        if self.documents is not None and (account, source_id) not in self.documents:
            return False
        return self.source_id is None or source_id == self.source_id


class Replayer:
    def __init__(self, db: Database, broker: Broker) -> None:
        self._db = db
        self._broker = broker
        self._actor: str | None = None

    def replay(
        self,
        selection: Selection,
        *,
        dry_run: bool = False,
        on_item: Callable[[ReplayItem], None] | None = None,
        actor: str | None = None,
    ) -> ReplayReport:
        """``actor``: the console user replaying; written into each document's history."""
        selection.check()
        self._actor = actor
        self._check_account(selection)
        report = ReplayReport()

        def add(item: ReplayItem) -> None:
            report.items.append(item)
            if on_item:
                on_item(item)

        handled: set[int] = self._from_queue(selection, dry_run, report, add)
        self._from_ledger(selection, dry_run, handled, add)
        return report

    def _check_account(self, selection: Selection) -> None:
        """Refuse (exit 2) an account or a document the ledger does not know."""
        with self._db.session() as session:
            if selection.account is not None:
                exists = session.scalar(
                    select(SyncAccount.id).where(
                        SyncAccount.name == selection.account, SyncAccount.live()
                    )
                )
                if exists is None:
                    raise UsageError(
                        f"unknown sync account {selection.account!r} "
                        "(see `belegsync accounts list`)"
                    )
            if selection.source_id is None:
                return
            query = (
                select(Document.id)
                .join(SyncAccount, SyncAccount.id == Document.account_id)
                .where(Document.source_id == selection.source_id, SyncAccount.live())
            )
            if selection.account is not None:
                query = query.where(SyncAccount.name == selection.account)
            found = session.execute(query).all()
        where = f" of account {selection.account!r}" if selection.account else ""
        if not found:
            raise UsageError(
                f"no document with source id {selection.source_id!r}{where} in the ledger "
                "(see `belegsync documents`)"
            )

    # -- messages in the parking queue ---------------------------------------------------------

    def _from_queue(
        self,
        selection: Selection,
        dry_run: bool,
        report: ReplayReport,
        add: Callable[[ReplayItem], None],
    ) -> set[int]:
        """Go through the parking queue once; returns the ledger rows it dealt with."""
        handled: set[int] = set()
        # Unacked messages return to the queue when browsing ends: whatever is not acked below
        # stays parked.
        for delivery in browse(self._broker):
            self._one_parked(delivery, selection, dry_run, report, add, handled)
        return handled

    def _one_parked(
        self,
        delivery: Delivery,
        selection: Selection,
        dry_run: bool,
        report: ReplayReport,
        add: Callable[[ReplayItem], None],
        handled: set[int],
    ) -> None:
        parked = describe(delivery)
        size, reason, msg = parked.size, parked.reason, parked.message
        if msg is None:
            report.malformed_kept += 1
            if selection.everything:
                direction = parked.routing_key or "?"
                action = f"kept: undecodable ({parked.undecodable})"
                add(ReplayItem("?", direction, "?", action, reason, size))
            return
        if not selection.matches(msg.account, msg.source_id):
            report.not_selected += 1
            return
        item = ReplayItem(msg.account, msg.direction.value, msg.source_id, "", reason, size)
        target = resolve(self._db, msg)
        if isinstance(target, Mismatch):
            # Nothing to replay it into (its account was removed, or it was never ours).
            report.foreign_kept += 1
            add(replace(item, action=f"kept: {target.reason}"))
            return
        with self._db.session() as session:
            doc = session.get(Document, msg.document_id)
            account = session.get(SyncAccount, msg.account_id)
            if doc is None or account is None or not owns(doc, msg):
                report.foreign_kept += 1  # removed since resolve() looked
                add(replace(item, action="kept: no such ledger row"))
                return
            if doc.id in handled or doc.state == DocState.SYNCED.value:
                action = (
                    "dropped (synced since)"
                    if doc.state == DocState.SYNCED.value
                    else ("dropped (duplicate)")
                )
                if not dry_run:
                    self._broker.ack(delivery)
                add(replace(item, action=action))
                return
            handled.add(doc.id)
            if dry_run:
                add(replace(item, action="would move"))
                return
            self._requeue(session, account, doc, reason="replayed by the operator")
        self._broker.ack(delivery)
        add(replace(item, action="moved"))

    # -- parked rows without a message ---------------------------------------------------------

    def _from_ledger(
        self,
        selection: Selection,
        dry_run: bool,
        handled: set[int],
        add: Callable[[ReplayItem], None],
    ) -> None:
        with self._db.session() as session:
            wanted = Document.state == DocState.PARKED.value
            if selection.stuck_for is not None:
                before = datetime.now(UTC) - selection.stuck_for
                wanted = wanted | (
                    Document.state.in_(IN_FLIGHT)
                    & Document.published_at.is_not(None)
                    & (Document.updated_at < before)
                )
            query = (
                select(Document, SyncAccount)
                .join(SyncAccount, SyncAccount.id == Document.account_id)
                .where(wanted, SyncAccount.enabled.is_(True))
                .order_by(Document.id)
            )
            for doc, account in session.execute(query).all():
                if doc.id in handled or not selection.matches(account.name, doc.source_id):
                    continue
                reason = doc.last_error or "?"
                if doc.state != DocState.PARKED.value:
                    reason = (
                        f"{doc.state} without a change since {doc.updated_at:%Y-%m-%d %H:%M} UTC"
                    )
                if dry_run:
                    add(
                        ReplayItem(
                            account.name, account.direction, doc.source_id, "would rebuild",
                            reason,
                        )
                    )  # fmt: skip
                    continue
                self._requeue(
                    session, account, doc,
                    reason="replayed by the operator (message rebuilt from the ledger)",
                )  # fmt: skip
                session.commit()
                add(ReplayItem(account.name, account.direction, doc.source_id, "rebuilt", reason))

    def _requeue(
        self, session: Session, account: SyncAccount, doc: Document, *, reason: str
    ) -> None:
        """Fresh message, attempts reset, published with a confirm, then the ledger says so."""
        doc.attempts = 0
        doc.error_class = None
        doc.last_error = None
        ledger.set_state(session, doc, DocState.PENDING, reason, actor=self._actor)
        message = message_for(account, doc)  # with a new message id
        self._broker.publish_work(
            message.to_json(),
            Direction(account.direction),
            headers={ATTEMPT_HEADER: 0},
            message_id=message.message_id,
        )
        doc.published_at = datetime.now(UTC)
        doc.message_id = message.message_id
        log.info("replayed %s document %s of %s", account.direction, doc.source_id, account.name)
