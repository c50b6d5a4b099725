"""The doctor's questions about what the API documentation leaves open.

Each question is answered from the cheapest evidence there is: a finding the running service
recorded, the account's own uploads and ledger history, a direct look, or a write probe; each
answer is recorded so the clients adapt (``shared.findings``).
"""

from __future__ import annotations

from sqlalchemy import func, select

from app.doctor_report import OK, UNKNOWN, WARN, Check
from app.probe import ProbeResult
from producers.pollers import APPROVED_BY_RECHECK
from shared.billomat import DOCUMENTS, INBOX
from shared.clients import AccountClients
from shared.db import Database, Document, DocumentEvent, SyncAccount
from shared.domain import MARKER_KEY, DocState, export_marker
from shared.errors import ApiError, RateLimitedError
from shared.findings import (
    APPROVAL_TOUCHES_MTIME,
    GMI_LIMIT_BODY,
    INBOX_METADATA,
    LISTING_LAG,
    SORT_PREFIX,
    Findings,
)
from shared.quota import QuotaBook
from shared.settings import Settings

LIMIT_PROBE_CALLS = 120  # more than GMI's documented 100 calls per minute
APPROVAL_LOOKS = 3  # waiting documents the doctor looks at directly


class Questions:
    def __init__(
        self, db: Database, settings: Settings, quota: QuotaBook, findings: Findings
    ) -> None:
        self._db = db
        self._settings = settings
        self._quota = quota
        self._findings = findings

    # --- Billomat --------------------------------------------------------------------------

    def sorting(self, account: SyncAccount, clients: AccountClients, checks: list[Check]) -> None:
        billomat = clients.billomat
        try:
            self._quota.reserve("billomat", clients.billomat_scope, 3)
            billomat.inbox_page(1, 1, order_by="id DESC")
            billomat.documents_page("invoices", per_page=1, order_by="id ASC")
        except ApiError as e:
            checks.append(
                Check(
                    "billomat.sort",
                    "Does Billomat sort lists by id?",
                    f"could not tell: {e}",
                    "falls back when refused",
                    UNKNOWN,
                )
            )
            return
        fields = {family: billomat.sort_field(family) or "" for family in (INBOX, DOCUMENTS)}
        for family, used in fields.items():
            self._findings.record(
                account.id,
                SORT_PREFIX + family,
                used,
                f"{family} sort by {used or 'nothing'}",
                source="doctor",
            )
        if all(used == "id" for used in fields.values()):
            answer, action, status = "yes", "sorts by id", OK
        else:
            used = ", ".join(f"{family} by {f or 'server order'}" for family, f in fields.items())
            answer = f"no: order_by=id is refused; accepted: {used}"
            action = "sorts by the accepted field from the first call (learnt for this account)"
            status = WARN
        checks.append(
            Check("billomat.sort", "Does Billomat sort lists by id?", answer, action, status)
        )

    def inbox_metadata(
        self,
        account: SyncAccount,
        clients: AccountClients,
        probe: ProbeResult | None,
        checks: list[Check],
    ) -> None:
        question = "Does the Billomat inbox keep the metadata belegsync sends (its marker)?"
        mode, evidence = None, ""
        if probe is not None and probe.metadata is not None:
            mode, evidence = probe.metadata, "write probe"
            names = "kept" if probe.filename_kept else "renamed"
            bytes_ = "the same" if probe.bytes_kept else "changed"
            checks.append(
                Check(
                    "probe.billomat",
                    "Does a test upload to the inbox come back as sent?",
                    f"file name {names}, bytes {bytes_}, metadata {mode}; "
                    f"{'removed again' if probe.removed else 'NOT removed yet'}",
                    "identifies an earlier upload by its bytes, not by its name",
                    OK if probe.bytes_kept and probe.removed else WARN,
                )
            )
        else:
            mode, evidence = self._metadata_from_our_uploads(account, clients)
        if mode is None:
            checks.append(
                Check(
                    INBOX_METADATA,
                    question,
                    "not known yet (no upload of this "
                    "account in the newest inbox page; --write-probe tells)",
                    "looks for an earlier upload by marker and by bytes",
                    UNKNOWN,
                )
            )
            return
        self._findings.record(
            account.id, INBOX_METADATA, mode, f"{mode} ({evidence})", source="doctor"
        )
        if mode == "kept":
            checks.append(
                Check(
                    INBOX_METADATA,
                    question,
                    f"yes ({evidence})",
                    "finds an earlier upload by its marker, else by its bytes",
                    OK,
                )
            )
        else:
            checks.append(
                Check(
                    INBOX_METADATA,
                    question,
                    f"no: {mode} ({evidence})",
                    "finds an earlier upload by its size, creation time and bytes; "
                    "skips the marker comparison",
                    WARN,
                )
            )

    def _metadata_from_our_uploads(
        self, account: SyncAccount, clients: AccountClients
    ) -> tuple[str | None, str]:
        """Whether our uploads on the newest inbox page still carry their markers."""
        self._quota.reserve("billomat", clients.billomat_scope)
        page = clients.billomat.inbox_page(1, 100, order_by="id DESC")
        ids = [str(i.id) for i in page.items]
        with self._db.session() as session:
            ours = dict(
                session.execute(
                    select(Document.target_id, Document.source_id).where(
                        Document.account_id == account.id, Document.target_id.in_(ids)
                    )
                ).all()
            )
        seen = [i for i in page.items if str(i.id) in ours]
        if not seen:
            return None, ""
        marked = [
            i
            for i in seen
            if i.metadata.get(MARKER_KEY) == export_marker(account.ref, ours[str(i.id)])
        ]
        if len(marked) == len(seen):
            return "kept", f"{len(seen)} of our uploads carry their marker"
        mode = "rewritten" if any(i.metadata for i in seen) else "dropped"
        return mode, f"{len(seen) - len(marked)} of {len(seen)} of our uploads lack their marker"

    # --- GMI -------------------------------------------------------------------------------

    def approval(self, account: SyncAccount, clients: AccountClients, checks: list[Check]) -> None:
        question = "Does approving a document make GMI list it as changed?"
        answer, value = self._approval_seen_live(account, clients)
        if value is None:
            answer, value = self._approval_from_history(account)
        recheck = self._settings.approval_recheck
        if value is None:
            checks.append(
                Check(
                    APPROVAL_TOUCHES_MTIME,
                    question,
                    "not known yet (no document was approved while it waited)",
                    f"looks at waiting documents directly every {recheck}",
                    UNKNOWN,
                )
            )
            return
        self._findings.record(account.id, APPROVAL_TOUCHES_MTIME, value, answer, source="doctor")
        if value:
            checks.append(
                Check(
                    APPROVAL_TOUCHES_MTIME,
                    question,
                    f"yes ({answer})",
                    f"exports it on the next poll; looks directly every {recheck} as well",
                    OK,
                )
            )
        else:
            checks.append(
                Check(
                    APPROVAL_TOUCHES_MTIME,
                    question,
                    f"no ({answer})",
                    "looks at waiting documents directly every hour (bounded per poll)",
                    WARN,
                )
            )

    def _approval_seen_live(
        self, account: SyncAccount, clients: AccountClients
    ) -> tuple[str, bool | None]:
        """An approved document that still waits: is it in the listing of changes since?"""
        with self._db.session() as session:
            rows = session.execute(
                select(Document.source_id, Document.checked_at)
                .where(
                    Document.account_id == account.id,
                    Document.state == DocState.WAITING_APPROVAL.value,
                    Document.checked_at.is_not(None),
                )
                .order_by(Document.checked_at)
                .limit(APPROVAL_LOOKS)
            ).all()
        gmi = clients.gmi
        for source_id, checked_at in rows:
            uid = int(source_id)
            doc = gmi.get_document(uid, include_file=False)
            if doc.workflow is None or not doc.workflow.is_completed:
                continue
            listed = any(
                d.uid == uid
                for d in gmi.iter_documents(updated_since=checked_at, uid_start=uid - 1, archived=1)
            )
            if listed:
                return f"document {uid}, approved while it waited, is listed as changed", True
            return f"document {uid}, approved while it waited, is not listed as changed", False
        return "", None

    def _approval_from_history(self, account: SyncAccount) -> tuple[str, bool | None]:
        with self._db.session() as session:
            silent = session.scalar(
                select(func.count(func.distinct(DocumentEvent.document_id)))
                .join(Document, Document.id == DocumentEvent.document_id)
                .where(
                    Document.account_id == account.id, DocumentEvent.reason == APPROVED_BY_RECHECK
                )
            )
        if silent:
            return f"{silent} document(s) were found approved only by the direct re-check", False
        return "", None

    def listing_lag(
        self, account: SyncAccount, probe: ProbeResult | None, checks: list[Check]
    ) -> None:
        question = "Does GMI list a new document at once?"
        if probe is not None and probe.landed:
            lag = probe.listing_lag
            removed = "removed again" if probe.removed else "NOT removed yet"
            if lag is not None and lag < 1:
                answer, status, seconds = f"yes (write probe, {removed})", OK, 0.0
            elif lag is not None:
                answer, status, seconds = f"no: after about {lag:g} s ({removed})", WARN, lag
            else:
                answer, status, seconds = f"no: not within 15 s ({removed})", WARN, 15.0
            self._findings.record(account.id, LISTING_LAG, seconds, answer, source="doctor")
        else:
            seen = self._findings.all(account.id).get(LISTING_LAG)
            if seen is None:
                checks.append(
                    Check(
                        LISTING_LAG,
                        question,
                        "not known yet (--write-probe tells)",
                        "identifies an upload GMI reports as a duplicate by number or "
                        "bytes, and looks again later when it is not listed yet",
                        UNKNOWN,
                    )
                )
                return
            answer, status = f"seen lagging: {seen.answer}", WARN
        checks.append(
            Check(
                LISTING_LAG,
                question,
                answer,
                "waits for the listing before it names a duplicate; polls with more overlap",
                status,
            )
        )

    def deep_sweep(self, checks: list[Check]) -> None:
        sweep = self._settings.deep_sweep_interval
        checks.append(
            Check(
                "billomat.backdated",
                "Are Billomat documents dated further back than the overlap found?",
                "only by a full listing: Billomat filters by document date only",
                f"lists everything every {sweep} (BELEGSYNC_DEEP_SWEEP_INTERVAL)"
                if sweep != "off"
                else "never: the deep sweep is off",
                OK if sweep != "off" else WARN,
            )
        )

    def limit_body(
        self, account: SyncAccount, clients: AccountClients, provoke: bool, checks: list[Check]
    ) -> None:
        question = "How does GMI say a call limit was reached?"
        action = (
            "confirms an unexplained 403 with GET /apiStatus and waits it out; only a key "
            "GMI names as rejected pauses the account"
        )
        if not provoke:
            seen = self._findings.all(account.id).get(GMI_LIMIT_BODY)
            answer = seen.answer if seen else "not seen yet (--limit-probe provokes one)"
            checks.append(
                Check(GMI_LIMIT_BODY, question, answer, action, UNKNOWN if seen is None else OK)
            )
            return
        refusal = clients.gmi.provoke_limit(LIMIT_PROBE_CALLS)
        if refusal is None:
            checks.append(
                Check(
                    GMI_LIMIT_BODY,
                    question,
                    f"no refusal within {LIMIT_PROBE_CALLS} calls",
                    action,
                    UNKNOWN,
                )
            )
            return
        if refusal.code == 429:
            value, how = "code", f"HTTP {refusal.status} with code 429"
        elif refusal.rule.error is RateLimitedError:
            value, how = "text", f"HTTP {refusal.status} naming the limit only in its text"
        else:
            value, how = "empty", f"HTTP {refusal.status} without a code or a reason"
        answer = f"{how}: {refusal.detail or '{}'!s} (after {refusal.calls} calls)"
        self._findings.record(account.id, GMI_LIMIT_BODY, value, answer, source="doctor")
        checks.append(
            Check(GMI_LIMIT_BODY, question, answer, action, OK if value != "empty" else WARN)
        )
