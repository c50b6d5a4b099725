"""The document ledger: what is known about each document, and every change with its reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db import Document, DocumentEvent, SyncAccount
from shared.domain import Direction, DocState


def now() -> datetime:
    return datetime.now(UTC)


def source_system_for(direction: Direction) -> str:
    return "gmi" if direction is Direction.EXPORT else "billomat"


def set_state(
    session: Session,
    doc: Document,
    state: DocState,
    reason: str,
    *,
    message_id: str | None = None,
    actor: str | None = None,
) -> None:
    """Change a row's state and write the history entry in the same transaction.

    ``actor``: the console user who caused the change (None: the pipeline itself).
    """
    previous = doc.state
    doc.state = state.value
    doc.updated_at = now()
    session.add(
        DocumentEvent(
            document_id=doc.id,
            at=doc.updated_at,
            from_state=previous,
            to_state=state.value,
            reason=reason[:2000],
            message_id=message_id,
            actor=actor,
        )
    )


@dataclass(frozen=True)
class Detected:
    """A document as a poll or a webhook saw it."""

    source_kind: str
    source_id: str
    document_type: str | None
    document_number: str | None
    document_date: date | None


def find(session: Session, account_id: int, source_kind: str, source_id: str) -> Document | None:
    return session.scalar(
        select(Document).where(
            Document.account_id == account_id,
            Document.source_kind == source_kind,
            Document.source_id == source_id,
        )
    )


def find_many(
    session: Session, account_id: int, source_kind: str, source_ids: Sequence[str]
) -> dict[str, Document]:
    """Rows for many source ids in few queries (a poll page can hold 1,000 documents)."""
    found: dict[str, Document] = {}
    for start in range(0, len(source_ids), 500):
        chunk = source_ids[start : start + 500]
        rows = session.scalars(
            select(Document).where(
                Document.account_id == account_id,
                Document.source_kind == source_kind,
                Document.source_id.in_(chunk),
            )
        )
        found.update({row.source_id: row for row in rows})
    return found


def import_targets(session: Session, gmi_uids: Sequence[str]) -> set[str]:
    """Which of these GMI documents belegsync itself imported from Billomat."""
    found: set[str] = set()
    for start in range(0, len(gmi_uids), 500):
        chunk = list(gmi_uids[start : start + 500])
        found.update(
            session.scalars(
                select(Document.target_id).where(
                    Document.source_system == "billomat", Document.target_id.in_(chunk)
                )
            )
        )
    return found


def insert_detected(
    session: Session,
    account: SyncAccount,
    detected: Detected,
    state: DocState,
    reason: str,
    *,
    looked_up: bool = False,
) -> tuple[Document, bool]:
    """Insert a ledger row unless it exists; (row, created).  Safe against a racing insert.

    ``looked_up``: the caller has just found no row (e.g. with ``find_many``), so skip the
    lookup; a row inserted meanwhile by someone else is still caught by the constraint.
    """
    if not looked_up:
        existing = find(session, account.id, detected.source_kind, detected.source_id)
        if existing is not None:
            return existing, False
    doc = Document(
        account_id=account.id,
        source_system=source_system_for(Direction(account.direction)),
        source_kind=detected.source_kind,
        source_id=detected.source_id,
        document_type=detected.document_type,
        document_number=detected.document_number,
        document_date=detected.document_date,
        state=state.value,
        attempts=0,
        detected_at=now(),
    )
    try:
        with session.begin_nested():
            session.add(doc)
            session.flush()
    except IntegrityError:
        # Another producer (or the webhook receiver) recorded it a moment ago.
        existing = find(session, account.id, detected.source_kind, detected.source_id)
        if existing is None:
            raise
        return existing, False
    session.add(
        DocumentEvent(
            document_id=doc.id, at=doc.detected_at, from_state=None, to_state=state.value,
            reason=reason,
        )
    )  # fmt: skip
    return doc, True


def refresh_details(doc: Document, detected: Detected) -> None:
    """Keep number, date and type current (a GMI document can be re-typed after upload)."""
    doc.document_type = detected.document_type or doc.document_type
    doc.document_number = detected.document_number or doc.document_number
    doc.document_date = detected.document_date or doc.document_date


def adopt(session: Session, doc: Document, target_id: str, reason: str, *, follow_up: bool) -> None:
    """The document is already in the target as ``target_id``: record it, upload nothing.

    ``follow_up``: a step after the upload is still due (archiving in GMI); the row goes back
    to the consumers, which see the target id and do only that step.
    """
    doc.target_id = target_id
    doc.attempt_started_at = None
    doc.error_class = None
    doc.last_error = None
    if follow_up:
        doc.published_at = None
        doc.message_id = None
        set_state(session, doc, DocState.PENDING, reason)
    else:
        doc.synced_at = now()
        set_state(session, doc, DocState.SYNCED, reason)


def requeue(session: Session, doc: Document, reason: str) -> None:
    """Mark a row for (re)publishing: the outbox publishes every pending row without a confirm."""
    doc.published_at = None
    doc.message_id = None
    set_state(session, doc, DocState.PENDING, reason)


def unpublished(session: Session, account_id: int, *, limit: int = 1000) -> list[Document]:
    """Rows whose message the broker has not confirmed yet (or that wait for a resume)."""
    return list(
        session.scalars(
            select(Document)
            .where(
                Document.account_id == account_id,
                or_(
                    (Document.state == DocState.PENDING.value) & Document.published_at.is_(None),
                    Document.state == DocState.HELD.value,
                ),
            )
            .order_by(Document.id)
            .limit(limit)
        )
    )


def counts_by_state(session: Session) -> dict[int, dict[str, int]]:
    rows = session.execute(
        select(Document.account_id, Document.state, func.count()).group_by(
            Document.account_id, Document.state
        )
    )
    result: dict[int, dict[str, int]] = {}
    for account_id, state, count in rows:
        result.setdefault(account_id, {})[state] = count
    return result
