"""The sync overview and the per-document ledger, as plain data for the CLI and the console."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from app.backlog import backlog_of, quota_view
from shared.db import AccountEvent, Database, Document, PollState, SyncAccount
from shared.domain import DocState
from shared.errors import UsageError
from shared.ledger import counts_by_state
from shared.quota_plan import QuotaLimits
from shared.recognition import UNMARKED_KEY

if TYPE_CHECKING:
    from shared.broker import Broker
    from shared.metrics import Metrics


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def overview(
    db: Database, *, now: datetime | None = None, limits: QuotaLimits | None = None
) -> list[dict[str, Any]]:
    """One entry per account: direction, polls, how many documents are in which state, the
    backlog with its ETA at the current quota (``backlog``, ``eta_seconds``, ``backlog_text``)
    and every quota window the account draws on (``quota``)."""
    result = _accounts(db)
    quota_view(db, result, now=now, limits=limits)
    return result


class BacklogMetrics:
    """Puts every account's backlog and ETA, as ``overview`` has them, into a producer's
    metrics (``Producer.observe_backlogs``), and forgets the series of accounts that are gone."""

    def __init__(self, db: Database, metrics: Metrics, limits: QuotaLimits | None = None) -> None:
        self._db, self._metrics, self._limits = db, metrics, limits
        self._shown: set[str] = set()

    def __call__(self) -> None:
        rows = overview(self._db, limits=self._limits)
        for row in rows:
            self._metrics.set_backlog(row["account"], row["backlog"], row["eta_seconds"])
        names = {row["account"] for row in rows}
        for gone in self._shown - names:
            self._metrics.forget_account(gone)
        self._shown = names


def _accounts(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        counts = counts_by_state(session)
        rows = session.execute(
            select(SyncAccount, PollState)
            .outerjoin(PollState, PollState.account_id == SyncAccount.id)
            .where(SyncAccount.live())
            .order_by(SyncAccount.name)
        ).all()
        result = []
        for account, state in rows:
            by_state = {s.value: 0 for s in DocState}
            by_state.update(counts.get(account.id, {}))
            result.append(
                {
                    "account": account.name,
                    "direction": account.direction,
                    "enabled": account.enabled,
                    "attention": account.attention_reason,
                    "last_poll_at": _iso(state.last_finished_at if state else None),
                    "last_poll_result": state.last_result if state else None,
                    "last_poll_error": state.last_error if state else None,
                    "last_success_at": _iso(state.last_success_at if state else None),
                    "next_poll_at": _iso(state.next_due_at if state else None)
                    if account.enabled
                    else None,
                    "counts": by_state,
                    "total": sum(by_state.values()),
                    # what the first poll found already in the target, and what it cost
                    "target_scan": scan_view(account.target_scan),
                    "backlog": backlog_of(by_state),
                    # for quota_view; removed there
                    "_scopes": (account.id, account.billomat_id, account.gmi_scope),
                    "_archive": bool(account.archive_after_transfer),
                }
            )
        return result


def scan_view(target_scan: dict[str, Any] | None) -> dict[str, Any] | None:
    """The first poll's scan as people see it: the consumer's size index only as a count."""
    if target_scan is None:
        return None
    view = {k: v for k, v in target_scan.items() if k != UNMARKED_KEY}
    view["unmarked"] = sum(len(ids) for ids in (target_scan.get(UNMARKED_KEY) or {}).values())
    return view


def document_view(doc: Document, account: SyncAccount) -> dict[str, Any]:
    return {
        "account": account.name,
        "direction": account.direction,
        "source_kind": doc.source_kind,
        "source_id": doc.source_id,
        "document_type": doc.document_type,
        "document_number": doc.document_number,
        "document_date": _iso(doc.document_date),
        "state": doc.state,
        "target_id": doc.target_id,
        "attempts": doc.attempts,
        "error_class": doc.error_class,
        "last_error": doc.last_error,
        "content_hash": doc.content_hash,
        "detected_at": _iso(doc.detected_at),
        "synced_at": _iso(doc.synced_at),
        "updated_at": _iso(doc.updated_at),
    }


def _ledger_query(
    session: Session, *, account: str | None, state: str | None
) -> Select[Document, SyncAccount]:
    """Ledger rows with their account, of live accounts only, filtered by account and state."""
    if state is not None and state not in {s.value for s in DocState}:
        raise UsageError(
            f"unknown state {state!r}: choose from {', '.join(s.value for s in DocState)}"
        )
    query: Select[Document, SyncAccount] = (
        select(Document, SyncAccount)
        .join(SyncAccount, SyncAccount.id == Document.account_id)
        .where(SyncAccount.live())
    )
    if account is not None:
        account_id = session.scalar(
            select(SyncAccount.id).where(SyncAccount.name == account, SyncAccount.live())
        )
        if account_id is None:
            raise UsageError(f"unknown sync account {account!r} (see `belegsync accounts list`)")
        query = query.where(Document.account_id == account_id)
    if state is not None:
        query = query.where(Document.state == state)
    return query


def _history(doc: Document) -> list[dict[str, Any]]:
    """A document's state changes, oldest first: when, from, to, why, which message, who."""
    return [
        {
            "at": _iso(event.at),
            "from": event.from_state,
            "to": event.to_state,
            "reason": event.reason,
            "message_id": event.message_id,
            "actor": event.actor,
        }
        for event in doc.events
    ]


def documents(
    db: Database,
    *,
    account: str | None = None,
    state: str | None = None,
    source_id: str | None = None,
    limit: int | None = None,
    with_history: bool = False,
) -> list[dict[str, Any]]:
    with db.session() as session:
        query = _ledger_query(session, account=account, state=state)
        if source_id is not None:
            query = query.where(Document.source_id == source_id)
        if with_history:
            query = query.options(selectinload(Document.events))
        query = query.order_by(SyncAccount.name, Document.id)
        if limit is not None:
            query = query.limit(limit)
        result = []
        for doc, acc in session.execute(query).all():
            view = document_view(doc, acc)
            if with_history:
                view["history"] = [
                    {k: v for k, v in event.items() if k != "actor"} for event in _history(doc)
                ]
            result.append(view)
        return result


# ---------------------------------------------------------------------------------------------
# Pages of the ledger (the console; `belegsync documents --after/--search`)

PAGE_SIZE = 50


@dataclass(frozen=True)
class DocumentPage:
    """Newest first; ``next_after`` is the keyset cursor of the following page (None: last)."""

    rows: list[dict[str, Any]]
    next_after: int | None


def document_page(
    db: Database,
    *,
    account: str | None = None,
    state: str | None = None,
    text: str | None = None,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> DocumentPage:
    """One page of the ledger, filtered; keyset-paginated on the row id (no OFFSET scans).

    ``text`` matches a document number (contained, any case) or a source or target id (exact).
    """
    with db.session() as session:
        query = _ledger_query(session, account=account, state=state)
        text = (text or "").strip()
        if text:
            pattern = (
                "%"
                + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            query = query.where(
                or_(
                    func.lower(Document.document_number).like(pattern, escape="\\"),
                    Document.source_id == text,
                    Document.target_id == text,
                )
            )
        if after is not None:
            query = query.where(Document.id < after)
        rows = session.execute(query.order_by(Document.id.desc()).limit(limit + 1)).all()
        views = [{"id": doc.id, **document_view(doc, acc)} for doc, acc in rows[:limit]]
        next_after = rows[limit - 1][0].id if len(rows) > limit else None
        return DocumentPage(views, next_after)


def document_detail(db: Database, document_id: int) -> dict[str, Any] | None:
    """One ledger row with its account and its whole history (who, when, why)."""
    with db.session() as session:
        row = session.execute(
            select(Document, SyncAccount)
            .join(SyncAccount, SyncAccount.id == Document.account_id)
            .where(Document.id == document_id)
            .options(selectinload(Document.events))
        ).first()
        if row is None:
            return None
        doc, account = row
        view = {"id": doc.id, "account_id": account.id, **document_view(doc, account)}
        view["billomat_id"] = account.billomat_id
        view["history"] = _history(doc)
        return view


def account_history(db: Database, account_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest changes of one account's settings, with who made them."""
    with db.session() as session:
        events = session.scalars(
            select(AccountEvent)
            .where(AccountEvent.account_id == account_id)
            .order_by(AccountEvent.id.desc())
            .limit(limit)
        )
        return [
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "details": e.details,
            }
            for e in events
        ]


def parked_groups(db: Database, *, per_group: int = 200) -> list[dict[str, Any]]:
    """Parked documents grouped by why (error class and message), biggest group first."""
    with db.session() as session:
        groups = session.execute(
            select(Document.error_class, Document.last_error, func.count())
            .join(SyncAccount, SyncAccount.id == Document.account_id)
            .where(Document.state == DocState.PARKED.value, SyncAccount.live())
            .group_by(Document.error_class, Document.last_error)
            .order_by(func.count().desc())
        ).all()
        result = []
        for error_class, last_error, count in groups:
            members = session.execute(
                select(Document, SyncAccount)
                .join(SyncAccount, SyncAccount.id == Document.account_id)
                .where(
                    Document.state == DocState.PARKED.value,
                    SyncAccount.live(),
                    Document.error_class.is_(None)
                    if error_class is None
                    else Document.error_class == error_class,
                    Document.last_error.is_(None)
                    if last_error is None
                    else Document.last_error == last_error,
                )
                .order_by(Document.id)
                .limit(per_group)
            ).all()
            result.append(
                {
                    "key": group_key(error_class, last_error),
                    "error_class": error_class,
                    "reason": last_error,
                    "count": count,
                    "documents": [
                        {"id": doc.id, **document_view(doc, acc)} for doc, acc in members
                    ],
                }
            )
        return result


def group_key(error_class: str | None, reason: str | None) -> str:
    """A short stable name for a parked group, for forms and links."""
    raw = f"{error_class or ''}\0{reason or ''}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def replay_pairs(
    db: Database, document_ids: Iterable[int] = (), group: str | None = None
) -> frozenset[tuple[str, str]]:
    """(account name, source id) of these ledger rows and of a parked group, for a replay."""
    ids = {int(i) for i in document_ids}
    with db.session() as session:
        pairs: set[tuple[str, str]] = set()
        base = (
            select(SyncAccount.name, Document.source_id, Document.error_class)
            .join(SyncAccount, SyncAccount.id == Document.account_id)
            .where(SyncAccount.live())
        )
        for start in range(0, len(ids), 500):
            chunk = sorted(ids)[start : start + 500]
            for name, source_id, _ in session.execute(base.where(Document.id.in_(chunk))):
                pairs.add((name, source_id))
        if group is not None:
            rows = session.execute(
                base.add_columns(Document.last_error).where(Document.state == DocState.PARKED.value)
            )
            for name, source_id, error_class, last_error in rows:
                if group_key(error_class, last_error) == group:
                    pairs.add((name, source_id))
        return frozenset(pairs)


def unaccounted_parked(
    db: Database, broker: Broker, *, limit: int = 1000
) -> tuple[list[dict[str, Any]], int]:
    """Parked messages the ledger shows nowhere: undecodable ones (with the decoder's reason and
    their size) and ones naming no row of theirs; and how many parked messages were looked at.

    The parked messages of real documents are in ``documents(state="parked")`` already.
    """
    # Here, not at the top: `status` and `documents` need neither kombu nor the consumer.
    from app.parked import parked_messages
    from consumers.intake import Mismatch, resolve

    looked_at = parked_messages(broker, limit=limit)
    rows = []
    for parked in looked_at:
        problem = parked.undecodable and f"undecodable: {parked.undecodable}"
        if parked.message is not None:
            target = resolve(db, parked.message)
            if not isinstance(target, Mismatch):
                continue
            problem = target.reason
        rows.append({**parked.as_dict(), "problem": problem})
    return rows, len(looked_at)
