"""The two pollers: what is new in GMI (export) and in Billomat (import), into the ledger.

A poller lists, compares with the ledger and records; it never publishes.  The ledger decides
what is new, so overlapping windows cost nothing but a few known rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared import ledger
from shared.accounts import export_rules, import_rules
from shared.billomat import BillomatDocument
from shared.clients import AccountClients
from shared.db import Database, Document, SyncAccount
from shared.domain import GMI_APPLICATION, Direction, DocState, ExportRules
from shared.gmi import GmiDocument
from shared.ledger import Detected
from shared.quota import QuotaBook
from shared.recognition import TargetScan, scan_inbox

log = logging.getLogger(__name__)

# GMI's clock and ours differ a little; list a bit further back than the last poll started.
EXPORT_OVERLAP = timedelta(minutes=2)
GMI_KIND = "documents"


@dataclass
class PollReport:
    account: str
    direction: Direction
    listed: int = 0
    new: int = 0
    requeued: int = 0
    calls: int = 0
    published: int = 0
    result: str = "ok"  # ok | error | rate_limited | skipped_quota
    error: str | None = None
    cursor: dict[str, Any] = field(default_factory=dict)
    # first poll of an account: documents found already in the target, and what looking cost
    found: int = 0
    scan_calls: int | None = None

    @property
    def detected(self) -> int:
        return self.new + self.requeued


class Poller(Protocol):
    def poll(self, account_id: int, clients: AccountClients, report: PollReport) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Export: GMI -> Billomat


# Rows whose document is on its way or known to be in the target: a target scan leaves them be.
SETTLED = frozenset({DocState.SYNCED.value, DocState.UPLOADED.value, DocState.UPLOADING.value})


class ExportPoller:
    """Lists GMI documents changed since the cursor, with the account's filters pushed down.

    An account's first poll (``target_scan`` not set: just added, re-added, or its database
    restored) reads the Billomat inbox first and adopts every document already there instead
    of uploading it again (``shared.recognition``); every later poll costs one GMI call when
    nothing changed.
    """

    def __init__(self, db: Database, quota: QuotaBook | None = None, *, reserve: int = 0) -> None:
        self._db = db
        self._quota = quota
        self._reserve = reserve

    @staticmethod
    def api_filters(rules: ExportRules) -> dict[str, Any]:
        """The filters GMI can apply itself; the rest is checked here."""
        filters: dict[str, Any] = {"archived": 0}
        if len(rules.document_types) == 1:
            (filters["document_type"],) = rules.document_types
        # tagFilter[] may AND several tags (unconfirmed); the account means "any of", so only a
        # single tag is safe to push down.
        if len(rules.tags) == 1:
            filters["tags"] = tuple(rules.tags)
        if rules.date_from:
            filters["start_date"] = rules.date_from
        if rules.date_to:
            filters["end_date"] = rules.date_to
        return filters

    def poll(self, account_id: int, clients: AccountClients, report: PollReport) -> None:
        with self._db.session() as session:
            account = session.get(SyncAccount, account_id)
            if account is None:
                return
            rules = export_rules(account)
            cursor = dict(account.poll_state.cursor if account.poll_state else {})
            needs_scan = account.target_scan is None
        scan: TargetScan | None = None
        if needs_scan:
            # Before anything is recorded: a row never becomes publishable before it was
            # compared with the target.
            scan = scan_inbox(clients.billomat, before_call=lambda: self._reserve_call(clients))
            report.calls += scan.calls
            report.scan_calls = scan.calls
        started = _now()
        since: datetime | None = None
        if cursor.get("updated_since"):
            since = datetime.fromisoformat(cursor["updated_since"]) - EXPORT_OVERLAP
        filters = self.api_filters(rules)
        page_no = 1
        while True:
            page = clients.gmi.list_documents_page(page=page_no, updated_since=since, **filters)
            report.calls += 1
            report.listed += len(page.records)
            self._record(account_id, rules, page.records, report, scan)
            if not page.has_more or not page.records:
                break
            page_no += 1
        if scan is not None:
            self._settle_scan(account_id, rules, scan, report)
        cursor["updated_since"] = started.isoformat()
        report.cursor = cursor

    def _reserve_call(self, clients: AccountClients) -> None:
        if self._quota is not None:
            self._quota.reserve("billomat", clients.billomat_scope, keep=self._reserve)

    @staticmethod
    def _adopt_if_found(
        session: Session, row: Document, rules: ExportRules, scan: TargetScan | None
    ) -> bool:
        found = scan.found.get(row.source_id) if scan is not None else None
        if found is None or row.target_id is not None or row.state in SETTLED:
            return False
        ledger.adopt(
            session,
            row,
            str(found.id),
            f"already in the Billomat inbox as {found.id} (an earlier upload); not uploaded again",
            follow_up=rules.archive_after_transfer,
        )
        return True

    def _settle_scan(
        self, account_id: int, rules: ExportRules, scan: TargetScan, report: PollReport
    ) -> None:
        """Rows the listing did not touch (a restored ledger), then: the scan is done."""
        with self._db.session() as session:
            account = session.get(SyncAccount, account_id)
            if account is None:
                return
            # Rows without a target are few (the ledger's unfinished work); the inbox may
            # hold many thousands, too many for one IN (...).
            open_rows = list(
                session.scalars(
                    select(Document).where(
                        Document.account_id == account_id,
                        Document.source_kind == GMI_KIND,
                        Document.target_id.is_(None),
                        Document.state.not_in(SETTLED),
                    )
                )
            )
            for row in open_rows:
                report.found += self._adopt_if_found(session, row, rules, scan)
            account.target_scan = scan.summary(report.found)
        # (the poll's own line reports found and calls; this adds how much was listed)
        log.debug(
            "account %s: %d document(s) already in the Billomat inbox (%d listed, %d call(s))",
            report.account,
            report.found,
            scan.listed,
            scan.calls,
        )

    def _record(
        self,
        account_id: int,
        rules: ExportRules,
        records: list[GmiDocument],
        report: PollReport,
        scan: TargetScan | None = None,
    ) -> None:
        if not records:
            return
        with self._db.session() as session:
            account = session.get(SyncAccount, account_id)
            assert account is not None
            uids = [str(r.uid) for r in records]
            known = ledger.find_many(session, account_id, GMI_KIND, uids)
            imported = ledger.import_targets(session, uids)
            for record in records:
                detected = Detected(
                    GMI_KIND,
                    str(record.uid),
                    record.document_type,
                    record.document_number or None,
                    record.document_date,
                )
                row = known.get(detected.source_id)
                rejection = rules.rejection(
                    document_type=record.document_type,
                    tags=record.tags,
                    document_date=record.document_date,
                    is_archived=record.is_archived,
                    source=GMI_APPLICATION if detected.source_id in imported else record.source,
                )
                if rejection is not None:
                    if row is not None and (
                        row.state == DocState.WAITING_APPROVAL.value
                        or (row.state == DocState.PENDING.value and row.published_at is None)
                    ):
                        ledger.set_state(session, row, DocState.SKIPPED, rejection)
                    continue
                if row is None:
                    row, _ = ledger.insert_detected(
                        session, account, detected, DocState.PENDING, "detected in GMI",
                        looked_up=True,
                    )  # fmt: skip
                    if self._adopt_if_found(session, row, rules, scan):
                        report.found += 1
                    else:
                        report.new += 1
                    continue
                ledger.refresh_details(row, detected)
                if self._adopt_if_found(session, row, rules, scan):
                    report.found += 1
                    continue
                if row.state == DocState.WAITING_APPROVAL.value:
                    # It changed in GMI since it was checked: look at its approval again.
                    ledger.requeue(session, row, "changed in GMI; approval is checked again")
                    report.requeued += 1
                elif row.state == DocState.SKIPPED.value:
                    ledger.requeue(session, row, "matches the account's filters again")
                    report.requeued += 1


# ---------------------------------------------------------------------------------------------
# Import: Billomat -> GMI


def _details(doc: BillomatDocument) -> dict[str, str]:
    def amount(value: Decimal | None) -> str:
        return "" if value is None else str(value)

    return {
        "status": doc.status,
        "total_net": amount(doc.total_net),
        "total_gross": amount(doc.total_gross),
        "currency_code": doc.currency_code,
        "title": doc.title,
    }


def is_draft(doc: BillomatDocument) -> bool:
    return doc.status.upper() == "DRAFT"


class ImportPoller:
    """Lists each selected Billomat kind from the cursor's document date minus an overlap.

    Billomat has no "updated since" filter, only the document date.  The cursor never moves
    past the oldest document that is still a draft, so a draft finished months later is seen.
    Each list call is reserved in the shared quota book first, keeping ``reserve`` calls of the
    window for the uploads.
    """

    def __init__(self, db: Database, quota: QuotaBook, *, reserve: int, overlap_days: int) -> None:
        self._db = db
        self._quota = quota
        self._reserve = reserve
        self._overlap = timedelta(days=overlap_days)

    def poll(self, account_id: int, clients: AccountClients, report: PollReport) -> None:
        with self._db.session() as session:
            account = session.get(SyncAccount, account_id)
            if account is None:
                return
            rules = import_rules(account)
            cursor = dict(account.poll_state.cursor if account.poll_state else {})
        for kind in rules.document_kinds:
            since = date.fromisoformat(cursor[kind]) - self._overlap if cursor.get(kind) else None
            newest: date | None = None
            page_no = 1
            while True:
                self._quota.reserve("billomat", clients.billomat_scope, keep=self._reserve)
                page = clients.billomat.documents_page(
                    kind, page=page_no, per_page=1000, date_from=since, order_by="id ASC"
                )
                report.calls += 1
                report.listed += len(page.items)
                page_newest = self.record(account_id, kind, page.items, report)
                if page_newest and (newest is None or page_newest > newest):
                    newest = page_newest
                if not page.has_more or not page.items:
                    break
                page_no += 1
            if newest is not None:
                # A document dated in the future must not carry the window past today's ones.
                newest = min(newest, datetime.now(UTC).date())
            floor = self._oldest_draft(account_id, kind)
            candidates = [d for d in (newest, floor) if d is not None]
            if candidates:
                cursor[kind] = min(candidates).isoformat()
            # Save per kind: a later kind running out of quota must not undo this one.
            report.cursor = dict(cursor)

    def _oldest_draft(self, account_id: int, kind: str) -> date | None:
        with self._db.session() as session:
            return session.scalar(
                select(func.min(Document.document_date)).where(
                    Document.account_id == account_id,
                    Document.source_kind == kind,
                    Document.state == DocState.DRAFT.value,
                )
            )

    def record(
        self, account_id: int, kind: str, docs: list[BillomatDocument], report: PollReport
    ) -> date | None:
        """Put what Billomat showed (a list page, or a webhook's record) into the ledger.

        Returns the newest document date of the finished documents seen.
        """
        newest: date | None = None
        if not docs:
            return newest
        with self._db.session() as session:
            account = session.get(SyncAccount, account_id)
            assert account is not None
            known = ledger.find_many(session, account_id, kind, [str(d.id) for d in docs])
            for doc in docs:
                detected = Detected(
                    kind, str(doc.id), None, doc.number or None, doc.date
                )  # fmt: skip
                draft = is_draft(doc)
                if not draft and doc.date and (newest is None or doc.date > newest):
                    newest = doc.date
                row = known.get(detected.source_id)
                if row is None:
                    row, _ = ledger.insert_detected(
                        session,
                        account,
                        detected,
                        DocState.DRAFT if draft else DocState.PENDING,
                        "a draft in Billomat; imported once finished"
                        if draft
                        else "detected in Billomat",
                        looked_up=True,
                    )
                    row.details = _details(doc)
                    if not draft:
                        report.new += 1
                    continue
                ledger.refresh_details(row, detected)
                if draft:
                    continue
                if row.state in (DocState.DRAFT.value, DocState.SKIPPED.value):
                    row.details = _details(doc)
                    ledger.requeue(session, row, f"finished in Billomat ({doc.status})")
                    report.requeued += 1
        return newest
