"""What a failed message writes into the ledger: the reason on its row, held rows, a paused account.

Each write is its own short transaction and looks at the row again inside it: a row that is no
longer the message's own (removed, its id reused) or that is synced by now is left as it is —
a synced row keeps its story.
"""

from __future__ import annotations

import logging
from datetime import UTC

from consumers.intake import owns
from shared import ledger
from shared.db import Database, Document, SyncAccount
from shared.domain import DocState
from shared.errors import ApiError, ErrorClass, RateLimitedError
from shared.messages import SyncMessage, printable

log = logging.getLogger(__name__)


def note(
    db: Database,
    msg: SyncMessage,
    error: ApiError,
    *,
    state: DocState | None,
    attempt: int | None = None,
    waiting: bool = False,
) -> None:
    """Record why handling failed and, with ``state``, move the row there (with history)."""
    with db.session() as session:
        doc = session.get(Document, msg.document_id)
        if doc is None or not owns(doc, msg) or doc.state == DocState.SYNCED.value:
            return
        reason = str(error)
        if waiting:
            assert isinstance(error, RateLimitedError)
            until = error.reset_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            reason = f"waiting for the {error.api} quota until {until}: {error.message}"
        elif attempt is not None:
            reason = f"attempt {attempt} failed: {error}"
        doc.error_class = error.error_class.value
        doc.last_error = reason[:2000]
        if state is None:
            return
        if waiting:
            # Back in the backlog: the producer releases it when the window resets.  A wait is
            # one history entry each time (released at most once per window).
            doc.published_at = None
        ledger.set_state(session, doc, state, reason, message_id=msg.message_id)


def hold(db: Database, msg: SyncMessage, reason: str) -> None:
    """The document waits for its account; the producer publishes it again on resume."""
    with db.session() as session:
        doc = session.get(Document, msg.document_id)
        if doc is None or not owns(doc, msg) or doc.state == DocState.SYNCED.value:
            return
        doc.published_at = None  # the producer republishes it once the account is resumed
        doc.error_class = ErrorClass.CONFIGURATION.value
        doc.last_error = reason
        ledger.set_state(session, doc, DocState.HELD, reason, message_id=msg.message_id)


def pause_account(db: Database, msg: SyncMessage, reason: str) -> None:
    with db.session() as session:
        account = session.get(SyncAccount, msg.account_id)
        if account is None or not account.enabled:
            return
        account.enabled = False
        account.attention_reason = f"paused: {reason}"
    log.error("account %s paused: %s", printable(msg.account), reason)
