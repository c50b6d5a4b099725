"""Publishing from the ledger: every pending row without a broker confirm gets (re)published.

The ledger row is written before the message is published, and marked published only after the
broker confirmed it.  A crash or a broker outage in between leaves the row unpublished, so the
next poll publishes it again: a detection is never lost, at worst a message is duplicated, which
the consumers' ledger check absorbs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from shared import ledger
from shared.broker import Broker
from shared.db import Database, Document, SyncAccount
from shared.domain import Direction, DocState
from shared.messages import ATTEMPT_HEADER, SyncMessage

log = logging.getLogger(__name__)

BATCH = 100


def message_for(account: SyncAccount, doc: Document) -> SyncMessage:
    return SyncMessage(
        direction=Direction(account.direction),
        account_id=account.id,
        account=account.name,
        document_id=doc.id,
        source_kind=doc.source_kind,
        source_id=doc.source_id,
        detected_at=doc.detected_at,
        document_type=doc.document_type,
        document_number=doc.document_number,
        document_date=doc.document_date,
        details={k: str(v) for k, v in (doc.details or {}).items()},
    )


class Outbox:
    def __init__(self, db: Database, broker: Broker) -> None:
        self._db = db
        self._broker = broker

    def flush(self, account_id: int) -> int:
        """Publish every unconfirmed row of an enabled account; returns how many were published.

        Raises PublishError when the broker does not confirm; rows confirmed so far stay marked.
        """
        published = 0
        while True:
            with self._db.session() as session:
                account = session.get(SyncAccount, account_id)
                if account is None or not account.enabled:
                    return published
                rows = ledger.unpublished(session, account_id, limit=BATCH)
                if not rows:
                    return published
                try:
                    for doc in rows:
                        self.publish_one(session, account, doc)
                        published += 1
                finally:
                    # Commit what the broker confirmed, even if a later publish failed.
                    session.commit()
            if len(rows) < BATCH:
                return published

    def publish_one(self, session: Session, account: SyncAccount, doc: Document) -> None:
        message = message_for(account, doc)
        self._broker.publish_work(
            message.to_json(),
            Direction(account.direction),
            headers={ATTEMPT_HEADER: 0},
            message_id=message.message_id,
        )
        if doc.state == DocState.HELD.value:
            ledger.set_state(session, doc, DocState.PENDING, "account resumed; queued again")
        doc.published_at = datetime.now(UTC)
        doc.message_id = message.message_id
