"""What belegsync knows about an account's APIs where their documentation is silent.

``belegsync doctor`` records findings, and so does the running service when an answer shows
one (a refused sort order, an upload found without its marker, a listing that lagged). The
clients read them to adapt: a sort field Billomat accepts, whether to look for the marker at
all, how long GMI's listing may lag. A finding never decides whether a document is uploaded:
every safety net runs whatever the findings say.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from shared.db import AccountFinding, Database

log = logging.getLogger(__name__)

# Keys, one per open question (see README "Assumptions and how each is guarded").
INBOX_METADATA = "billomat.inbox_metadata"  # "kept" | "dropped" | "rewritten"
SORT_PREFIX = "billomat.sort."  # + list family ("inbox-documents", "documents"): a field or ""
GMI_LIMIT_BODY = "gmi.limit_body"  # "code" | "text" | "empty"
APPROVAL_TOUCHES_MTIME = "gmi.approval_touches_mtime"  # bool
LISTING_LAG = "gmi.listing_lag_seconds"  # float, the longest lag seen
PROBE_PENDING = "probe.pending"  # a doctor write probe that may still be in a customer system


@dataclass(frozen=True)
class Finding:
    key: str
    value: Any
    answer: str
    source: str
    observed_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


class Findings:
    """Reads and writes findings; writes never fail the caller (bookkeeping, not business)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self, account_id: int) -> dict[str, Finding]:
        with self._db.session() as session:
            rows = session.scalars(
                select(AccountFinding).where(AccountFinding.account_id == account_id)
            )
            return {r.key: Finding(r.key, r.value, r.answer, r.source, r.observed_at) for r in rows}

    def value(self, account_id: int, key: str) -> Any:
        with self._db.session() as session:
            row = session.get(AccountFinding, (account_id, key))
            return None if row is None else row.value

    def record(
        self, account_id: int, key: str, value: Any, answer: str = "", *, source: str = "runtime"
    ) -> bool:
        """Insert or replace one finding; False if it could not be written (logged)."""
        try:
            with self._db.session() as session:
                row = session.get(AccountFinding, (account_id, key))
                if row is None:
                    row = AccountFinding(account_id=account_id, key=key)
                    session.add(row)
                row.value = value
                row.answer = answer[:1000]
                row.source = source
                row.observed_at = _now()
        except IntegrityError:
            # Another process recorded the same key a moment ago (or the account is gone).
            log.info("finding %s for account %s was recorded concurrently", key, account_id)
            return False
        except SQLAlchemyError:
            log.warning("could not record finding %s", key, exc_info=True)
            return False
        return True

    def forget(self, account_id: int, key: str) -> None:
        with self._db.session() as session:
            session.execute(
                delete(AccountFinding).where(
                    AccountFinding.account_id == account_id, AccountFinding.key == key
                )
            )

    # --- typed readers for the clients -----------------------------------------------------

    def sort_fields(self, account_id: int) -> dict[str, str]:
        """List family -> the sort field Billomat accepted ("" for none)."""
        return {
            key[len(SORT_PREFIX) :]: str(f.value)
            for key, f in self.all(account_id).items()
            if key.startswith(SORT_PREFIX) and isinstance(f.value, str)
        }

    def listing_lag(self, account_id: int) -> float:
        value = self.value(account_id, LISTING_LAG)
        return float(value) if isinstance(value, int | float) else 0.0

    def note_listing_lag(self, account_id: int, seconds: float) -> None:
        """Remember the longest GMI listing lag seen (only ever grows)."""
        if seconds <= self.listing_lag(account_id):
            return
        self.record(
            account_id,
            LISTING_LAG,
            round(seconds, 1),
            f"GMI listed an upload only about {seconds:.0f} s after it was stored",
        )
