"""What a re-added account takes over from its removed predecessors: the ledger's knowledge of
what already landed in the target, so that nothing is uploaded a second time.

"The same account" is the same direction, the same Billomat ID and the same GMI API key.  A
removed account keeps its ledger (see ``AccountService.remove``); a new account that matches it
gets a row per document that is already in the target, in state ``synced`` with the target id,
and a history entry naming where the knowledge came from.  Documents that had not landed are
left to the new account's polls, and its first poll still looks in the target itself (a
database restored from a backup knows less than the target does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.crypto import SecretBox
from shared.db import Document, DocumentEvent, SyncAccount, utcnow
from shared.domain import DocState
from shared.errors import SecretKeyError

log = logging.getLogger(__name__)

# Rows that say "this document is in the target as target_id".
LANDED = (DocState.SYNCED.value, DocState.UPLOADED.value)


@dataclass
class Adoption:
    adopted: int = 0
    removed_accounts: list[str] = field(default_factory=list)


def predecessors(session: Session, account: SyncAccount, box: SecretBox) -> list[SyncAccount]:
    """Removed accounts with the same direction, Billomat ID and GMI API key, newest first."""
    candidates = session.scalars(
        select(SyncAccount)
        .where(
            SyncAccount.removed_at.is_not(None),
            SyncAccount.direction == account.direction,
            SyncAccount.billomat_id == account.billomat_id,
        )
        .order_by(SyncAccount.removed_at.desc())
    )
    gmi_key = box.decrypt(account.gmi_api_key_enc)
    found = []
    for candidate in candidates:
        try:
            same = box.decrypt(candidate.gmi_api_key_enc) == gmi_key
        except SecretKeyError:
            # Stored under another key: it cannot be shown to be the same GMI account.
            continue
        if same:
            found.append(candidate)
    return found


def adopt_landed(session: Session, account: SyncAccount, box: SecretBox) -> Adoption:
    """Give ``account`` a synced row for every document its predecessors saw land."""
    result = Adoption()
    seen: set[tuple[str, str]] = set()
    for old in predecessors(session, account, box):
        rows = session.scalars(
            select(Document).where(
                Document.account_id == old.id,
                Document.state.in_(LANDED),
                Document.target_id.is_not(None),
            )
        )
        taken = 0
        for row in rows:
            key = (row.source_kind, row.source_id)
            if key in seen:
                continue
            seen.add(key)
            _copy(session, account, row, old)
            taken += 1
        if taken:
            result.adopted += taken
            result.removed_accounts.append(old.name)
    if result.adopted:
        log.info(
            "account %s adopted %d document(s) already in the target from removed %s",
            account.name,
            result.adopted,
            ", ".join(result.removed_accounts),
        )
    return result


def _copy(session: Session, account: SyncAccount, row: Document, old: SyncAccount) -> None:
    now = utcnow()
    # An upload whose follow-up (archiving in GMI) was still due goes through the consumer
    # once more; it sees the target id and only archives.
    state = DocState.SYNCED if row.state == DocState.SYNCED.value else DocState.PENDING
    doc = Document(
        account_id=account.id,
        source_system=row.source_system,
        source_kind=row.source_kind,
        source_id=row.source_id,
        document_type=row.document_type,
        document_number=row.document_number,
        document_date=row.document_date,
        content_hash=row.content_hash,
        details=row.details,
        state=state.value,
        target_id=row.target_id,
        attempts=0,
        detected_at=now,
        synced_at=row.synced_at if state is DocState.SYNCED else None,
    )
    session.add(doc)
    session.flush()
    session.add(
        DocumentEvent(
            document_id=doc.id,
            at=now,
            from_state=None,
            to_state=state.value,
            reason=(
                f"already in the target as {row.target_id} (known from the removed account "
                f"{old.name!r}); not uploaded again"
            ),
        )
    )
