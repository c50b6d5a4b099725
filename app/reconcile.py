"""``belegsync reconcile``: compare source, target and ledger of one account.

It reports documents *missing* in the target (source ids), documents *present twice* there
(lists of target ids) and ledger rows that claim a target that no longer exists (*dangling*,
source ids). Its API cost is stated before it starts; every Billomat call is reserved in the
shared quota book and a refusal is waited out, so it never spends what the sync needs. With
``fix`` the missing documents are queued through the ledger and the outbox — exactly once, since
a second run finds them queued — and nothing is ever deleted in a customer's system. Dangling
rows are reported only: a person removed that target (booked, or deleted it) on purpose.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import select

from app.doctor_report import CallCounter, clock
from producers.outbox import Outbox
from producers.pollers import GMI_KIND, ExportPoller, is_draft
from shared import ledger
from shared.accounts import Credentials, export_rules, import_rules
from shared.billomat import BillomatDocument, InboxDocument
from shared.broker import Broker
from shared.clients import AccountClients, ClientFactory
from shared.db import Database, Document, SyncAccount
from shared.domain import GMI_APPLICATION, MARKER_KEY, Direction, DocState, export_marker
from shared.errors import NotFoundError, RateLimitedError
from shared.findings import Findings
from shared.gmi import MAX_PER_PAGE as GMI_PAGE
from shared.gmi import GmiDocument
from shared.ledger import Detected
from shared.quota import QuotaBook
from shared.settings import Settings

T = TypeVar("T")

BILLOMAT_PAGE = 1000
MAX_WAIT = timedelta(minutes=30)  # longest it waits for quota before it gives up
# States in which a document's message is on its way: missing in the target, but not a gap.
ON_THE_WAY = frozenset(
    {DocState.PENDING, DocState.UPLOADING, DocState.UPLOADED, DocState.RETRYING, DocState.HELD}
)
# States in which nothing is expected in the target yet.
NOT_EXPECTED = frozenset({DocState.WAITING_APPROVAL, DocState.SKIPPED, DocState.DRAFT})


class QuotaExhausted(RuntimeError):
    """Waiting for the quota would take longer than ``MAX_WAIT``."""


@dataclass(frozen=True)
class Estimate:
    gmi_calls: int
    billomat_calls: int
    source_documents: int
    target_documents: int
    extra: str
    quota: str

    def text(self, account: str) -> str:
        return (
            f"reconcile {account}: about {self.gmi_calls} GMI and {self.billomat_calls} Billomat "
            f"calls ({self.source_documents} source, {self.target_documents} target documents), "
            f"{self.extra}; {self.quota}"
        )


@dataclass
class ReconcileReport:
    account: str
    direction: str
    since: date | None
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    dangling: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "direction": self.direction,
            "since": self.since.isoformat() if self.since else None,
            "checked": self.checked,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "dangling": self.dangling,
            "in_progress": self.in_progress,
            "queued": self.queued,
            "calls": dict(self.calls),
        }


def _pages(total: int, size: int) -> int:
    return max(1, math.ceil(total / size))


class Reconciliation:
    """One account's comparison; ``estimate`` first (cheap), then ``run``."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        account: SyncAccount,
        credentials: Credentials,
        since: date | None,
        *,
        on_wait: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = db
        self._account = account
        self._since = since
        self._direction = Direction(account.direction)
        self._quota = QuotaBook(db)
        self._reserve = settings.billomat_quota_reserve
        self._counter = CallCounter()
        self._factory = ClientFactory(settings, self._quota, None, Findings(db))
        self._clients: AccountClients = self._factory.for_account(
            account, credentials, hooks=self._counter
        )
        self._on_wait = on_wait
        self._sleep = sleep
        self._waited = timedelta(0)

    def close(self) -> None:
        self._factory.close()

    # --- calls within the quota -------------------------------------------------------------

    def _wait(self, error: RateLimitedError) -> None:
        seconds = max(1.0, error.seconds_left())
        self._waited += timedelta(seconds=seconds)
        if self._waited > MAX_WAIT:
            raise QuotaExhausted(f"the {error.api} quota would keep reconcile waiting: {error}")
        self._on_wait(f"waiting {seconds:.0f} s for the {error.api} quota: {error.message}")
        self._sleep(seconds)

    def _billomat(self, call: Callable[[], T]) -> T:
        scope = self._clients.billomat_scope
        while True:
            try:
                self._quota.reserve("billomat", scope, keep=self._reserve)
                return call()
            except RateLimitedError as e:
                if e.status is not None:
                    self._quota.block("billomat", scope, e.reset_at, str(e))
                self._wait(e)

    def _gmi(self, call: Callable[[], T]) -> T:
        scope = self._clients.gmi_scope
        while True:
            try:
                self._quota.check("gmi", scope)
                return call()
            except RateLimitedError as e:
                if e.status is not None:
                    self._quota.block("gmi", scope, e.reset_at, str(e))
                self._wait(e)

    # --- the estimate -----------------------------------------------------------------------

    def estimate(self) -> Estimate:
        if self._direction is Direction.EXPORT:
            sources = self._gmi(lambda: self._gmi_page(1, 1)).total_count
            targets = self._billomat(lambda: self._clients.billomat.inbox_page(1, 1)).total
            gmi_calls, billomat_calls = _pages(sources, GMI_PAGE), _pages(targets, BILLOMAT_PAGE)
            extra = "plus one Billomat call per inbox document sharing its size with one of ours"
        else:
            sources = billomat_calls = 0
            for kind in import_rules(self._account).document_kinds:
                page = self._billomat(
                    partial(
                        self._clients.billomat.documents_page,
                        kind,
                        per_page=1,
                        date_from=self._since,
                        order_by=None,
                    )
                )
                sources += page.total
                billomat_calls += _pages(page.total, BILLOMAT_PAGE)
            targets = self._gmi(lambda: self._gmi_page(1, 1, imported=True)).total_count
            gmi_calls = _pages(targets, GMI_PAGE)
            extra = "plus one GMI call per ledger target not in that listing"
        remaining, reset_at = self._quota.snapshot("billomat", self._clients.billomat_scope)
        quota = (
            f"Billomat quota now: {remaining} left until {clock(reset_at)}"
            if remaining is not None and reset_at is not None
            else "Billomat quota: not known yet"
        )
        return Estimate(gmi_calls, billomat_calls, sources, targets, extra, quota)

    # --- the comparison ---------------------------------------------------------------------

    def run(self, *, fix: bool = False, broker: Broker | None = None) -> ReconcileReport:
        report = ReconcileReport(
            self._account.name, self._direction.value, self._since, calls=self._counter.calls
        )
        if self._direction is Direction.EXPORT:
            found = self._export(report)
        else:
            found = self._import(report)
        if fix:
            self._fix(report, found, broker)
        return report

    def _rows(self) -> dict[tuple[str, str], Document]:
        with self._db.session() as session:
            rows = session.scalars(select(Document).where(Document.account_id == self._account.id))
            return {(r.source_kind, r.source_id): r for r in rows}

    def _gmi_page(self, page: int, per_page: int, *, imported: bool = False) -> Any:
        filters: dict[str, Any] = (
            {} if imported else ExportPoller.api_filters(export_rules(self._account))
        )
        filters["archived"] = 1  # archived after transfer, or by a person: still there
        start = filters.get("start_date")
        if self._since is not None and (start is None or self._since > start):
            filters["start_date"] = self._since
        return self._clients.gmi.list_documents_page(page=page, per_page=per_page, **filters)

    def _all_gmi(self, *, imported: bool = False) -> Iterator[GmiDocument]:
        page_no = 1
        while True:
            page = self._gmi(partial(self._gmi_page, page_no, GMI_PAGE, imported=imported))
            yield from page.records
            if not page.has_more:
                return
            page_no += 1

    def _inbox(self, floor: datetime | None) -> list[InboxDocument]:
        items: list[InboxDocument] = []
        billomat = self._clients.billomat
        page_no = 1
        while True:
            page = self._billomat(
                partial(billomat.inbox_page, page_no, BILLOMAT_PAGE, order_by="id DESC")
            )
            items.extend(page.items)
            older = floor is not None and any(i.created and i.created < floor for i in page.items)
            if (older and billomat.sort_field("inbox-documents") != "") or not page.has_more:
                return items
            page_no += 1

    def _export(self, report: ReconcileReport) -> dict[str, Detected]:
        account, rules = self._account, export_rules(self._account)
        sources = {str(d.uid): d for d in self._all_gmi()}
        rows = {sid: r for (kind, sid), r in self._rows().items() if kind == GMI_KIND}
        synced = [r.synced_at for r in rows.values() if r.target_id and r.synced_at]
        floor = None
        if self._since is not None:
            since = datetime(self._since.year, self._since.month, self._since.day, tzinfo=UTC)
            floor = min([since, *synced]) - timedelta(days=1)
        inbox = self._inbox(floor)
        by_id = {str(i.id): i for i in inbox}
        by_marker: dict[str, list[str]] = defaultdict(list)
        for item in inbox:
            ref = item.metadata.get(MARKER_KEY)
            if ref:
                by_marker[ref].append(str(item.id))
        with self._db.session() as session:
            imported = ledger.import_targets(session, list(sources))
        found: dict[str, Detected] = {}
        for uid, doc in sources.items():
            row = rows.get(uid)
            landed = row is not None and row.target_id is not None
            rejection = rules.rejection(
                document_type=doc.document_type,
                tags=doc.tags,
                document_date=doc.document_date,
                is_archived=doc.is_archived and not landed,
                source=GMI_APPLICATION if uid in imported else doc.source,
            )
            if rejection is not None or (row is not None and DocState(row.state) in NOT_EXPECTED):
                continue
            report.checked += 1
            if row is not None and row.target_id is not None:
                if row.target_id not in by_id:
                    report.dangling.append(uid)
                continue
            if by_marker.get(export_marker(account.ref, uid)):
                continue  # there, though the ledger does not know it yet
            report.missing.append(uid)
            if row is not None and DocState(row.state) in ON_THE_WAY:
                report.in_progress.append(uid)
            found[uid] = Detected(
                GMI_KIND, uid, doc.document_type, doc.document_number or None, doc.document_date
            )
        ours = {r.target_id for r in rows.values() if r.target_id and r.target_id in by_id}
        prefix = export_marker(account.ref, "")
        groups = [ids for ref, ids in by_marker.items() if len(ids) > 1 and ref.startswith(prefix)]
        groups += self._same_bytes(inbox, ours)
        report.duplicates = _merge(groups)
        return found

    def _same_bytes(self, inbox: list[InboxDocument], ours: set[str]) -> list[list[str]]:
        """Groups of inbox items with one of our uploads' bytes (only same-size ones fetched)."""
        by_size: dict[int, list[InboxDocument]] = defaultdict(list)
        for item in inbox:
            by_size[item.filesize].append(item)
        groups: list[list[str]] = []
        billomat = self._clients.billomat
        for size, items in by_size.items():
            if len(items) < 2 or size == 0 or not any(str(i.id) in ours for i in items):
                continue
            by_hash: dict[str, list[str]] = defaultdict(list)
            for item in items:
                full = self._billomat(partial(billomat.get_inbox_document, item.id))
                if full.content is not None:
                    by_hash[_sha(full.content)].append(str(item.id))
            groups += [ids for ids in by_hash.values() if len(ids) > 1]
        return groups

    def _import(self, report: ReconcileReport) -> dict[str, Detected]:
        rules = import_rules(self._account)
        billomat = self._clients.billomat
        sources: dict[tuple[str, str], BillomatDocument] = {}
        for kind in rules.document_kinds:
            page_no = 1
            while True:
                page = self._billomat(
                    partial(
                        billomat.documents_page,
                        kind,
                        page=page_no,
                        per_page=BILLOMAT_PAGE,
                        date_from=self._since,
                    )
                )
                sources.update({(kind, str(d.id)): d for d in page.items if not is_draft(d)})
                if not page.has_more:
                    break
                page_no += 1
        targets = {str(d.uid): d for d in self._all_gmi(imported=True)}
        rows = self._rows()
        found: dict[str, Detected] = {}
        for (kind, sid), doc in sources.items():
            row = rows.get((kind, sid))
            if row is not None and DocState(row.state) in (DocState.SKIPPED,):
                continue
            report.checked += 1
            if row is not None and row.target_id is not None:
                if row.target_id != "unidentified" and not self._gmi_exists(row.target_id, targets):
                    report.dangling.append(sid)
                continue
            report.missing.append(sid)
            if row is not None and DocState(row.state) in ON_THE_WAY:
                report.in_progress.append(sid)
            found[f"{kind}/{sid}"] = Detected(kind, sid, None, doc.number or None, doc.date)
        numbers = {d.number for d in sources.values() if d.number}
        by_number: dict[str, list[str]] = defaultdict(list)
        for uid, target in targets.items():
            if target.source.casefold() == GMI_APPLICATION and target.document_number in numbers:
                by_number[f"{target.document_type}/{target.document_number}"].append(uid)
        report.duplicates = _merge([ids for ids in by_number.values() if len(ids) > 1])
        return found

    def _gmi_exists(self, uid: str, listed: dict[str, GmiDocument]) -> bool:
        if uid in listed:
            return True
        try:
            self._gmi(lambda: self._clients.gmi.get_document(int(uid), include_file=False))
        except NotFoundError:
            return False
        return True

    # --- closing the gaps -------------------------------------------------------------------

    def _fix(
        self, report: ReconcileReport, found: dict[str, Detected], broker: Broker | None
    ) -> None:
        """Queue each missing document once: new rows for unseen ones, requeue the others."""
        waiting = set(report.in_progress)
        with self._db.session() as session:
            account = session.get(SyncAccount, self._account.id)
            assert account is not None
            for detected in found.values():
                if detected.source_id in waiting:
                    continue
                row, created = ledger.insert_detected(
                    session,
                    account,
                    detected,
                    DocState.PENDING,
                    "missing in the target (reconcile)",
                )
                if not created:
                    ledger.requeue(session, row, "missing in the target; queued by reconcile")
                report.queued.append(detected.source_id)
        if broker is not None and report.queued:
            Outbox(self._db, broker).flush(self._account.id)


def _merge(groups: list[list[str]]) -> list[list[str]]:
    """Groups sharing an id become one; each sorted, no group twice."""
    merged: list[set[str]] = []
    for group in groups:
        current = set(group)
        for other in [m for m in merged if m & current]:
            current |= other
            merged.remove(other)
        merged.append(current)
    return sorted(sorted(g, key=lambda i: (len(i), i)) for g in merged)


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
