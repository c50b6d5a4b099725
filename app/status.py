"""The sync overview and the per-document ledger, as plain data for the CLI (and anyone else)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shared.db import Database, Document, PollState, SyncAccount
from shared.domain import DocState
from shared.errors import UsageError
from shared.ledger import counts_by_state

if TYPE_CHECKING:
    from shared.broker import Broker


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def overview(db: Database) -> list[dict[str, Any]]:
    """One entry per account: direction, polls, and how many documents are in which state."""
    with db.session() as session:
        counts = counts_by_state(session)
        rows = session.execute(
            select(SyncAccount, PollState)
            .outerjoin(PollState, PollState.account_id == SyncAccount.id)
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
                }
            )
        return result


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


def documents(
    db: Database,
    *,
    account: str | None = None,
    state: str | None = None,
    source_id: str | None = None,
    limit: int | None = None,
    with_history: bool = False,
) -> list[dict[str, Any]]:
    if state is not None and state not in {s.value for s in DocState}:
        raise UsageError(
            f"unknown state {state!r}: choose from {', '.join(s.value for s in DocState)}"
        )
    with db.session() as session:
        query = select(Document, SyncAccount).join(
            SyncAccount, SyncAccount.id == Document.account_id
        )
        if account is not None:
            if session.scalar(select(SyncAccount.id).where(SyncAccount.name == account)) is None:
                raise UsageError(
                    f"unknown sync account {account!r} (see `belegsync accounts list`)"
                )
            query = query.where(SyncAccount.name == account)
        if state is not None:
            query = query.where(Document.state == state)
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
                    {
                        "at": _iso(event.at),
                        "from": event.from_state,
                        "to": event.to_state,
                        "reason": event.reason,
                        "message_id": event.message_id,
                    }
                    for event in doc.events
                ]
            result.append(view)
        return result


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
