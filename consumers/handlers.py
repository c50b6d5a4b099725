"""What a consumer does with one document, per direction: the two adapters of one design.

Two ledger facts carry exactly-once across crashes:

- ``attempt_started_at`` is committed *before* an upload and cleared only once its outcome is
  known.  Finding it set means an earlier attempt may have landed without anyone seeing the
  answer, so the target is searched first (``consumers.recovery``: Billomat inbox by our marker
  and by the file's bytes; GMI by the same content) and what is found is adopted instead of
  uploading again.
- ``target_id`` is committed right after the upload landed.  Finding it set means only the
  follow-up (archiving in GMI) may be left.

And one quota fact: a document's step admits the calls it needs on *both* sides before its
first call (``consumers.needs``), so no call is spent on a document that then has to wait.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol

from sqlalchemy.orm import Session

from consumers.needs import export_need, import_need
from consumers.recovery import GmiIdentify, InboxSearch, SentFile, sha256
from shared import ledger
from shared.accounts import export_rules, import_rules
from shared.clients import AccountClients
from shared.db import Database, Document, SyncAccount
from shared.domain import (
    MARKER_KEY,
    DocState,
    export_marker,
    import_file_name,
    inbox_type_for,
)
from shared.errors import (
    ApiError,
    DuplicateDocumentError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from shared.findings import Findings
from shared.gmi import GmiClient, GmiDocument, GmiUpload
from shared.messages import SyncMessage
from shared.quota import QuotaBook

log = logging.getLogger(__name__)

GERMANY = "DE"


@dataclass(frozen=True)
class Outcome:
    """How handling a document ended (failures are exceptions, not outcomes)."""

    result: str  # synced | duplicate_avoided | skipped | waiting | noop
    target_id: str | None = None
    detail: str = ""
    landed_at: datetime | None = None


@dataclass
class Work:
    message: SyncMessage
    account: SyncAccount  # a detached snapshot
    clients: AccountClients


class Handler(Protocol):
    def handle(self, work: Work) -> Outcome: ...


def _now() -> datetime:
    return datetime.now(UTC)


def landed_for_sure_not(error: ApiError) -> bool:
    """True when a failed upload certainly did not land (the server refused it outright)."""
    if isinstance(error, TransientError):
        # The clients mark a write ambiguous when it may have been performed (no answer, a
        # gateway timeout, a 5xx after the body went through); a refused connection or a 503
        # "try again later" stored nothing.
        return not error.ambiguous
    # A refusal with a 4xx answer (validation, auth, quota) did not store anything.
    return error.status is not None and 400 <= error.status < 500


class LedgerSteps:
    """The ledger writes both handlers share, each its own short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def row(self, document_id: int) -> Iterator[tuple[Session, Document]]:
        with self.db.session() as session:
            doc = session.get(Document, document_id)
            if doc is None:
                raise PermanentError("the ledger has no such document", api="ledger")
            yield session, doc

    def snapshot(self, document_id: int) -> Document:
        with self.row(document_id) as (_, doc):
            return doc

    def begin_attempt(self, document_id: int, content_hash: str, message_id: str) -> None:
        with self.row(document_id) as (session, doc):
            doc.attempt_started_at = _now()
            doc.attempts = (doc.attempts or 0) + 1
            doc.content_hash = content_hash
            ledger.set_state(
                session, doc, DocState.UPLOADING, f"upload attempt {doc.attempts}",
                message_id=message_id,
            )  # fmt: skip

    def attempt_failed_cleanly(self, document_id: int) -> None:
        """The target refused the upload: nothing landed, nothing to look for next time."""
        with self.row(document_id) as (_, doc):
            doc.attempt_started_at = None

    def landed(
        self,
        document_id: int,
        target_id: str,
        *,
        state: DocState,
        reason: str,
        message_id: str,
        content_hash: str | None = None,
        note: str | None = None,
    ) -> datetime:
        with self.row(document_id) as (session, doc):
            doc.target_id = target_id
            doc.attempt_started_at = None
            if content_hash:
                doc.content_hash = content_hash
            doc.error_class = None
            doc.last_error = note
            if state is DocState.SYNCED:
                doc.synced_at = _now()
            ledger.set_state(session, doc, state, reason, message_id=message_id)
            return doc.synced_at or _now()

    def finish(self, document_id: int, reason: str, message_id: str) -> datetime:
        with self.row(document_id) as (session, doc):
            doc.synced_at = _now()
            doc.error_class = None
            ledger.set_state(session, doc, DocState.SYNCED, reason, message_id=message_id)
            return doc.synced_at

    def put_aside(self, document_id: int, state: DocState, reason: str, message_id: str) -> None:
        """Skipped, waiting for approval, or a draft: no error, nothing to retry."""
        with self.row(document_id) as (session, doc):
            doc.checked_at = _now()
            doc.attempt_started_at = None
            doc.last_error = reason
            doc.error_class = None
            ledger.set_state(session, doc, state, reason, message_id=message_id)


# ---------------------------------------------------------------------------------------------
# Export: GMI document -> Billomat inbox


class ExportHandler:
    def __init__(self, db: Database, quota: QuotaBook) -> None:
        self._steps = LedgerSteps(db)
        self._inbox = InboxSearch(db, quota, Findings(db))

    def handle(self, work: Work) -> Outcome:
        doc = self._steps.snapshot(work.message.document_id)
        with work.clients.gate.admitted(export_need(doc, work.account)):
            return self._move(work, doc)

    def _move(self, work: Work, doc: Document) -> Outcome:
        message, account, clients = work.message, work.account, work.clients
        rules = export_rules(account)
        uid = int(doc.source_id)
        gmi, billomat = clients.gmi, clients.billomat

        try:
            source = gmi.get_document(
                uid, include_file=doc.target_id is None, approval=rules.require_approval
            )
        except NotFoundError:
            if doc.target_id is None and doc.attempt_started_at is None:
                self._steps.put_aside(
                    doc.id, DocState.SKIPPED, "no longer exists in GMI", message.message_id
                )
                return Outcome("skipped", detail="deleted in GMI")
            raise

        landed_at: datetime | None = None
        result = "synced"
        target_id = doc.target_id
        if target_id is None and doc.attempt_started_at is not None and source.content:
            sent = SentFile(
                content_hash=doc.content_hash or sha256(source.content),
                size=len(source.content),
                filename=source.filename or None,
                marker=export_marker(account.ref, uid),
            )
            found = self._inbox.find(
                billomat, clients.billomat_scope, account.id, sent, doc.attempt_started_at
            )
            if found is not None:
                target_id = str(found.id)
                result = "duplicate_avoided"
                landed_at = self._record_landing(
                    doc.id, target_id, rules.archive_after_transfer, message,
                    reason="found in the Billomat inbox after an attempt without an answer",
                )  # fmt: skip

        if target_id is None:
            rejection = rules.rejection(
                document_type=source.document_type,
                tags=source.tags,
                document_date=source.document_date,
                is_archived=source.is_archived,
                source=source.source,
            )
            if rejection is not None:
                self._steps.put_aside(doc.id, DocState.SKIPPED, rejection, message.message_id)
                return Outcome("skipped", detail=rejection)
            workflow = source.workflow.is_completed if source.workflow else None
            waiting = rules.approval_rejection(workflow)
            if waiting is not None:
                self._steps.put_aside(
                    doc.id, DocState.WAITING_APPROVAL, waiting, message.message_id
                )
                return Outcome("waiting", detail=waiting)
            if not source.content:
                raise PermanentError("GMI returned the document without its file", api="gmi")
            found = self._inbox.unmarked_earlier_upload(
                billomat, clients.billomat_scope, account, doc.detected_at, source
            )
            if found is not None:
                target_id = str(found.id)
                result = "duplicate_avoided"
                landed_at = self._record_landing(
                    doc.id, target_id, rules.archive_after_transfer, message,
                    reason=f"already in the Billomat inbox as {found.id} (found by its bytes; "
                    "an earlier upload whose marker the inbox did not keep); not uploaded again",
                    content_hash=sha256(source.content),
                )  # fmt: skip
        if target_id is None:
            assert source.content is not None
            target_id = self._upload(doc.id, account.ref, source, clients, message)
            landed_at = self._record_landing(
                doc.id, target_id, rules.archive_after_transfer, message,
                reason="uploaded to the Billomat inbox", content_hash=sha256(source.content),
            )  # fmt: skip

        if rules.archive_after_transfer:
            if not source.is_archived:
                try:
                    gmi.update_document(uid, is_archived=True)
                except PermanentError as e:
                    # It landed; a locked or vanished GMI document must not undo that.
                    landed_at = self._steps.landed(
                        doc.id,
                        target_id,
                        state=DocState.SYNCED,
                        reason="in Billomat; archiving in GMI failed",
                        message_id=message.message_id,
                        note=f"landed, but archiving in GMI failed: {e}",
                    )
                    return Outcome(result, target_id, f"archive failed: {e}", landed_at)
            landed_at = self._steps.finish(
                doc.id, "in Billomat and archived in GMI", message.message_id
            )
        return Outcome(result, target_id, landed_at=landed_at)

    def _record_landing(
        self,
        document_id: int,
        target_id: str,
        archive_pending: bool,
        message: SyncMessage,
        *,
        reason: str,
        content_hash: str | None = None,
    ) -> datetime:
        return self._steps.landed(
            document_id,
            target_id,
            state=DocState.UPLOADED if archive_pending else DocState.SYNCED,
            reason=reason,
            message_id=message.message_id,
            content_hash=content_hash,
        )

    def _upload(
        self,
        document_id: int,
        account_ref: str,
        source: GmiDocument,
        clients: AccountClients,
        message: SyncMessage,
    ) -> str:
        assert source.content is not None
        metadata = {MARKER_KEY: export_marker(account_ref, source.uid)}
        if source.document_number:
            metadata["INVOICE_NUMBER"] = source.document_number
        if source.gross_amount is not None:
            metadata["TOTAL_GROSS"] = f"{source.gross_amount:.2f}"
        if source.net_amount is not None:
            metadata["TOTAL_NET"] = f"{source.net_amount:.2f}"
        if source.currency:
            metadata["CURRENCY_CODE"] = source.currency
        self._steps.begin_attempt(document_id, sha256(source.content), message.message_id)
        try:
            created = clients.billomat.create_inbox_document(
                content=source.content,
                filename=source.filename or None,
                document_type=inbox_type_for(source.document_type),
                metadata=metadata,
            )
        except ApiError as e:
            if landed_for_sure_not(e):
                self._steps.attempt_failed_cleanly(document_id)
            raise
        return str(created.id)


# ---------------------------------------------------------------------------------------------
# Import: Billomat document -> GMI


def _decimal(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


class ImportHandler:
    def __init__(self, db: Database, quota: QuotaBook) -> None:
        self._db = db
        self._steps = LedgerSteps(db)
        self._identify = GmiIdentify(quota, Findings(db))
        self._country_uid: int | None = None

    def handle(self, work: Work) -> Outcome:
        doc = self._steps.snapshot(work.message.document_id)
        # The ledger's details win: they are at least as new as the message's (a poll refreshes
        # them), and a message is only a claim by whoever published it.
        details = dict(work.message.details) | dict(doc.details or {})
        with work.clients.gate.admitted(import_need(doc, details)):
            return self._move(work, doc, details)

    def _move(self, work: Work, doc: Document, details: dict[str, str]) -> Outcome:
        message, account, clients = work.message, work.account, work.clients
        rules = import_rules(account)
        kind, billomat_id = doc.source_kind, int(doc.source_id)
        if doc.target_id is not None:
            landed_at = self._steps.finish(doc.id, "already in GMI", message.message_id)
            return Outcome("noop", doc.target_id, landed_at=landed_at)

        if not details.get("status"):
            fresh = clients.billomat.get_document(kind, billomat_id)
            details |= {
                "status": fresh.status,
                "total_net": "" if fresh.total_net is None else str(fresh.total_net),
                "total_gross": "" if fresh.total_gross is None else str(fresh.total_gross),
                "currency_code": fresh.currency_code,
            }
        if details.get("status", "").upper() == "DRAFT":
            self._steps.put_aside(
                doc.id, DocState.DRAFT, "a draft in Billomat; imported once finished",
                message.message_id,
            )  # fmt: skip
            return Outcome("waiting", detail="draft")

        pdf = clients.billomat.get_pdf(kind, billomat_id)
        content_hash = sha256(pdf.content)
        gmi = clients.gmi
        number = doc.document_number or message.document_number or ""

        file_name = import_file_name(kind, number, pdf.filename)
        sent = SentFile(content_hash, len(pdf.content), file_name)
        if doc.attempt_started_at is not None and gmi.document_exists(pdf.content):
            target, note = self._identify.identify(
                gmi, clients.gmi_scope, account.id, number, sent, doc.attempt_started_at
            )
            landed_at = self._steps.landed(
                doc.id, target, state=DocState.SYNCED, message_id=message.message_id,
                reason="found in GMI after an attempt without an answer",
                content_hash=content_hash, note=note,
            )  # fmt: skip
            return Outcome("duplicate_avoided", target, landed_at=landed_at)

        company_id = self._company(account, gmi)
        upload = GmiUpload(
            file_name=file_name,
            content=pdf.content,
            document_type=rules.gmi_type_for(kind),
            company_id=company_id,
            document_number=number or None,
            document_date=doc.document_date,
            net_amount=_decimal(details.get("total_net")),
            gross_amount=_decimal(details.get("total_gross")),
            currency=details.get("currency_code") or None,
            tags=rules.default_tags,
        )
        self._steps.begin_attempt(doc.id, content_hash, message.message_id)
        attempt_started = _now()
        try:
            uid = gmi.upload_document(upload)
        except DuplicateDocumentError:
            target, note = self._identify.identify(
                gmi, clients.gmi_scope, account.id, number, sent, attempt_started
            )
            landed_at = self._steps.landed(
                doc.id, target, state=DocState.SYNCED, message_id=message.message_id,
                reason="GMI already holds identical content (code 127)",
                content_hash=content_hash, note=note,
            )  # fmt: skip
            return Outcome("duplicate_avoided", target, landed_at=landed_at)
        except ApiError as e:
            if landed_for_sure_not(e):
                self._steps.attempt_failed_cleanly(doc.id)
            raise
        landed_at = self._steps.landed(
            doc.id, str(uid), state=DocState.SYNCED, message_id=message.message_id,
            reason="uploaded to GMI", content_hash=content_hash,
        )  # fmt: skip
        return Outcome("synced", str(uid), landed_at=landed_at)

    def _company(self, account: SyncAccount, gmi: GmiClient) -> int | None:
        """The default company's uid: remembered, looked up by name, or created once."""
        name = account.default_company
        if not name:
            return None
        if account.default_company_uid is not None:
            return account.default_company_uid
        uid = self._find_company(gmi, name)
        if uid is None:
            try:
                uid = gmi.create_company(name, self._germany(gmi))
            except PermanentError as e:
                if e.code != 116:  # 116: the name exists — another consumer created it
                    raise
                uid = self._find_company(gmi, name)
                if uid is None:
                    raise
        with self._db.session() as session:
            row = session.get(SyncAccount, account.id)
            if row is not None and row.default_company == name:
                row.default_company_uid = uid
        account.default_company_uid = uid
        return uid

    @staticmethod
    def _find_company(gmi: GmiClient, name: str) -> int | None:
        wanted = " ".join(name.split()).casefold()
        for company in gmi.list_companies():
            if " ".join(company.name.split()).casefold() == wanted:
                return company.uid
        return None

    def _germany(self, gmi: GmiClient) -> int:
        if self._country_uid is None:
            for country in gmi.countries():
                code = country.get("countryCode") or country.get("country_code")
                if code == GERMANY:
                    self._country_uid = int(country["countryUid"])
                    break
            else:
                raise PermanentError("GMI does not list Germany among its countries", api="gmi")
        return self._country_uid
