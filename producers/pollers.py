"""The two pollers: what is new in GMI (export) and in Billomat (import), into the ledger.

A poller lists, compares with the ledger and records; it never publishes.  The ledger decides
what is new, so overlapping windows cost nothing but a few known rows.  Two nets catch what a
listing may never show (both unconfirmed API behaviours): documents waiting for approval are
looked at directly now and then, because approving may not change what GMI's "updated since"
filter reads; and an import poll lists everything once in a while (a deep sweep), because a
Billomat document dated further back than the overlap is otherwise never seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from shared import ledger
from shared.accounts import export_rules, import_rules
from shared.billomat import BillomatDocument
from shared.clients import AccountClients
from shared.db import Database, Document, SyncAccount
from shared.domain import GMI_APPLICATION, Direction, DocState, ExportRules
from shared.errors import NotFoundError, RateLimitedError
from shared.findings import APPROVAL_TOUCHES_MTIME, Findings
from shared.gmi import GmiDocument
from shared.ledger import Detected
from shared.recognition import TargetScan, scan_inbox

log = logging.getLogger(__name__)

# GMI's clock and ours differ a little; list a bit further back than the last poll started.
EXPORT_OVERLAP = timedelta(minutes=2)
GMI_KIND = "documents"
DEFAULT_APPROVAL_RECHECK = timedelta(hours=6)
DEFAULT_APPROVAL_BATCH = 20
KNOWN_SILENT_APPROVAL_RECHECK = timedelta(hours=1)
DEFAULT_DEEP_SWEEP = timedelta(days=1)
# The history line of a document the listing never reported as approved: doctor counts these.
APPROVED_BY_RECHECK = "approved in GMI (found by the approval re-check; not listed as changed)"
REQUEUED_BY_LISTING = "changed in GMI; approval is checked again"
SWEPT = "deep_sweep"  # cursor key: kind -> when it was last listed in full


@dataclass
class PollReport:
    account: str
    direction: Direction
    listed: int = 0
    new: int = 0
    requeued: int = 0
    calls: int = 0
    rechecked: int = 0  # documents waiting for approval looked at directly
    swept: bool = False  # an import poll that listed everything (deep sweep)
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
    nothing changed, plus ``approval_batch`` direct looks at most at documents that waited
    longer than ``approval_recheck`` for approval (one GMI call each).
    """

    def __init__(
        self,
        db: Database,
        *,
        approval_recheck: timedelta = DEFAULT_APPROVAL_RECHECK,
        approval_batch: int = DEFAULT_APPROVAL_BATCH,
    ) -> None:
        self._db = db
        self._findings = Findings(db)
        self._recheck_after = approval_recheck
        self._recheck_batch = approval_batch

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
            # Each page passes the account's quota gate like every call (a poll's may use the
            # window's reserve).
            scan = scan_inbox(clients.billomat)
            report.calls += scan.calls
            report.scan_calls = scan.calls
        started = _now()
        since: datetime | None = None
        if cursor.get("updated_since"):
            # A listing that lags new documents (seen live by other clients) needs more overlap.
            lag = timedelta(seconds=2 * self._findings.listing_lag(account_id))
            since = datetime.fromisoformat(cursor["updated_since"]) - max(EXPORT_OVERLAP, lag)
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
        if rules.require_approval:
            self._recheck_approvals(account_id, clients, report)

    def _recheck_approvals(
        self, account_id: int, clients: AccountClients, report: PollReport
    ) -> None:
        """Look directly at the documents that waited longest for approval.

        Whether approving changes the modification time is unconfirmed; if it does not, the
        listing never shows an approved document again. One GMI call per document, at most
        ``approval_batch`` per poll, each document at most once per ``approval_recheck``.
        """
        if self._recheck_batch <= 0:
            return
        recheck_after = self._recheck_after
        if self._findings.value(account_id, APPROVAL_TOUCHES_MTIME) is False:
            # Known: the listing never shows an approval. Look more often.
            recheck_after = min(recheck_after, KNOWN_SILENT_APPROVAL_RECHECK)
        due_before = _now() - recheck_after
        with self._db.session() as session:
            rows = session.execute(
                select(Document.id, Document.source_id)
                .where(
                    Document.account_id == account_id,
                    Document.state == DocState.WAITING_APPROVAL.value,
                    or_(Document.checked_at.is_(None), Document.checked_at <= due_before),
                )
                .order_by(Document.checked_at.is_not(None), Document.checked_at, Document.id)
                .limit(self._recheck_batch)
            ).all()
        for row_id, source_id in rows:
            try:
                found = clients.gmi.get_document(int(source_id), include_file=False)
            except NotFoundError:
                found = None
            except RateLimitedError:
                # No room left for extras: the listing is done, the rest waits for a later poll.
                if report.rechecked:
                    break
                raise
            report.calls += 1
            report.rechecked += 1
            workflow = found.workflow if found is not None else None
            approved = workflow is not None and workflow.is_completed
            with self._db.session() as session:
                row = session.get(Document, row_id)
                if row is None or row.state != DocState.WAITING_APPROVAL.value:
                    continue
                row.checked_at = _now()
                if found is None:
                    ledger.set_state(session, row, DocState.SKIPPED, "no longer exists in GMI")
                elif approved:
                    ledger.requeue(session, row, APPROVED_BY_RECHECK)
                    report.requeued += 1

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
                    ledger.requeue(session, row, REQUEUED_BY_LISTING)
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
    Each list call passes the account's quota gate (a poll may use the window's reserve).
    """

    def __init__(
        self,
        db: Database,
        *,
        overlap_days: int,
        deep_sweep: timedelta | None = DEFAULT_DEEP_SWEEP,
    ) -> None:
        self._db = db
        self._overlap = timedelta(days=overlap_days)
        self._deep_sweep = deep_sweep

    def poll(self, account_id: int, clients: AccountClients, report: PollReport) -> None:
        with self._db.session() as session:
            account = session.get(SyncAccount, account_id)
            if account is None:
                return
            rules = import_rules(account)
            cursor = dict(account.poll_state.cursor if account.poll_state else {})
        swept = dict(cursor.get(SWEPT, {}))
        for kind in rules.document_kinds:
            since = date.fromisoformat(cursor[kind]) - self._overlap if cursor.get(kind) else None
            sweep = since is not None and self._sweep_due(swept.get(kind))
            if sweep:
                # Everything, whatever its date: a document created today may be dated back
                # further than the overlap reaches.
                since = None
                report.swept = True
            newest: date | None = None
            page_no = 1
            while True:
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
            if since is None:  # a full listing: a first poll or a deep sweep
                swept[kind] = _now().isoformat()
                cursor[SWEPT] = dict(swept)
            # Save per kind: a later kind running out of quota must not undo this one.
            report.cursor = dict(cursor)

    def _sweep_due(self, last: str | None) -> bool:
        if self._deep_sweep is None:
            return False
        if last is None:
            return True
        return datetime.fromisoformat(last) + self._deep_sweep <= _now()

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
