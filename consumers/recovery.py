"""Finding an earlier upload whose answer never arrived, without trusting one unconfirmed behaviour.

After a lost answer or a crash, ``attempt_started_at`` says an upload may have landed. Before
uploading again the consumer looks for it:

- Billomat inbox: our ``BELEGSYNC_REF`` marker in the metadata, *and*, because nothing says
  Billomat keeps custom metadata as sent, the content: an item created since the attempt began
  (minus clock slack) with our file's size is fetched and its bytes compared by SHA-256.
  Items that another ledger row already claims are never adopted.
- GMI: the 127 duplicate check says our content is there; the document is identified by its
  number, else among the documents changed since the attempt began, by its bytes. GMI's
  listing may lag an upload (seen live by other clients), so a miss is tried again a little
  later instead of being settled as "unidentified" at once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from shared.billomat import INBOX, BillomatClient, InboxDocument
from shared.db import Database, Document, SyncAccount
from shared.domain import MARKER_KEY, export_marker
from shared.errors import TransientError
from shared.findings import INBOX_METADATA, Findings
from shared.gmi import GmiClient, GmiDocument
from shared.quota import QuotaBook
from shared.recognition import unmarked_candidates

log = logging.getLogger(__name__)

# How far before an unresolved attempt started its upload may have been stamped by the target.
CLOCK_SLACK = timedelta(minutes=10)
INBOX_PAGE = 1000
# Short waits for GMI's listing to catch up before the message goes back to a delay queue.
LISTING_WAITS = (1.0, 2.0)
# After this long without finding the GMI document that holds our content, settle: it is
# there (GMI said so), only its uid stays unknown. Longer when a longer lag was seen.
IDENTIFY_PATIENCE = timedelta(minutes=5)
# At most this many recently changed documents are fetched to compare bytes.
MAX_BYTE_CHECKS = 20


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SentFile:
    """What an earlier attempt sent, as far as it can be recognised by."""

    content_hash: str
    size: int
    filename: str | None
    marker: str | None = None


class InboxSearch:
    """Looks for an earlier export upload in a Billomat inbox, within the quota."""

    def __init__(self, db: Database, quota: QuotaBook, findings: Findings) -> None:
        self._db = db
        self._quota = quota
        self._findings = findings

    def find(
        self,
        billomat: BillomatClient,
        scope: str,
        account_id: int,
        sent: SentFile,
        attempt_started: datetime,
    ) -> InboxDocument | None:
        not_before = attempt_started - CLOCK_SLACK
        mode = self._findings.value(account_id, INBOX_METADATA)
        # Known not to keep our metadata: comparing markers would only cost attention.
        use_marker = sent.marker is not None and mode not in ("dropped", "rewritten")
        candidates: list[InboxDocument] = []
        page_no = 1
        while True:
            self._quota.reserve("billomat", scope)
            page = billomat.inbox_page(page_no, INBOX_PAGE, order_by="id DESC")
            # Newest first unless Billomat accepted no sort at all; then every page is read.
            newest_first = billomat.sort_field(INBOX) != ""
            reached_older = False
            for item in page.items:
                if item.created is not None and item.created < not_before:
                    reached_older = True
                    continue
                if use_marker and item.metadata.get(MARKER_KEY) == sent.marker:
                    return item
                if item.filesize in (sent.size, 0) or (
                    sent.filename is not None and item.filename == sent.filename
                ):
                    candidates.append(item)
            if (newest_first and reached_older) or not page.has_more:
                break
            page_no += 1
        found = self._by_content(billomat, scope, billomat.billomat_id, sent, candidates)
        if found is not None and sent.marker is not None:
            self._note_metadata(account_id, found, sent.marker)
        return found

    def among(
        self,
        billomat: BillomatClient,
        scope: str,
        account_id: int,
        sent: SentFile,
        inbox_ids: Iterable[int],
    ) -> InboxDocument | None:
        """An earlier upload among known inbox documents (a first poll's unmarked ones of our
        file's size: ``shared.recognition``), compared by bytes."""
        found = self._first_match(billomat, scope, billomat.billomat_id, sent, list(inbox_ids))
        if found is not None and sent.marker is not None:
            self._note_metadata(account_id, found, sent.marker)
        return found

    def unmarked_earlier_upload(
        self,
        billomat: BillomatClient,
        scope: str,
        account: SyncAccount,
        detected_at: datetime,
        source: GmiDocument,
    ) -> InboxDocument | None:
        """Before a document's first upload: is its file among the inbox documents without a
        marker that the account's first poll saw (a re-added or restored account whose earlier
        uploads lost their metadata)?  One call per same-size candidate, usually none."""
        assert source.content is not None
        candidates = unmarked_candidates(account.target_scan, detected_at, len(source.content))
        if not candidates:
            return None
        sent = SentFile(
            content_hash=sha256(source.content),
            size=len(source.content),
            filename=source.filename or None,
            marker=export_marker(account.ref, source.uid),
        )
        return self.among(billomat, scope, account.id, sent, candidates)

    def _by_content(
        self,
        billomat: BillomatClient,
        scope: str,
        billomat_id: str,
        sent: SentFile,
        candidates: list[InboxDocument],
    ) -> InboxDocument | None:
        # The ones that kept our file name first: usually the first fetch is the match.
        candidates.sort(key=lambda c: sent.filename is None or c.filename != sent.filename)
        return self._first_match(billomat, scope, billomat_id, sent, [c.id for c in candidates])

    def _first_match(
        self,
        billomat: BillomatClient,
        scope: str,
        billomat_id: str,
        sent: SentFile,
        inbox_ids: list[int],
    ) -> InboxDocument | None:
        """Fetch each inbox document no ledger row holds yet; the first with our bytes."""
        claimed = self._claimed(billomat_id, [str(i) for i in inbox_ids])
        for inbox_id in inbox_ids:
            if str(inbox_id) in claimed:
                continue
            self._quota.reserve("billomat", scope)
            full = billomat.get_inbox_document(inbox_id)
            if full.content is not None:
                if sha256(full.content) == sent.content_hash:
                    return full
            elif full.filename == sent.filename and full.filesize == sent.size:
                return full  # the API did not return the bytes: name and size must do
        return None

    def _claimed(self, billomat_id: str, inbox_ids: Iterable[str]) -> set[str]:
        """Inbox ids some export row of this Billomat account already holds as its target."""
        ids = list(inbox_ids)
        if not ids:
            return set()
        with self._db.session() as session:
            return set(
                session.scalars(
                    select(Document.target_id)
                    .join(SyncAccount, SyncAccount.id == Document.account_id)
                    .where(
                        SyncAccount.billomat_id == billomat_id,
                        Document.source_system == "gmi",
                        Document.target_id.in_(ids),
                    )
                )
            )

    def _note_metadata(self, account_id: int, item: InboxDocument, marker: str) -> None:
        if item.metadata.get(MARKER_KEY) == marker:
            return
        mode = "rewritten" if item.metadata else "dropped"
        self._findings.record(
            account_id,
            INBOX_METADATA,
            mode,
            f"an upload was found by its bytes; its marker was not kept (metadata {mode})",
        )


class GmiIdentify:
    """Names the GMI document that already holds our content (after a 127 or a lost answer)."""

    def __init__(
        self,
        quota: QuotaBook,
        findings: Findings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._quota = quota
        self._findings = findings
        self._sleep = sleep

    def identify(
        self,
        gmi: GmiClient,
        scope: str,
        account_id: int,
        number: str,
        sent: SentFile,
        attempt_started: datetime,
    ) -> tuple[str, str | None]:
        """(uid, note); raises TransientError while the listing may still be lagging."""
        waits = list(LISTING_WAITS)
        lag = self._findings.listing_lag(account_id)
        if lag > sum(waits):
            waits.append(min(lag - sum(waits), 10.0))
        first_miss: datetime | None = None
        while True:
            found = self._lookup(gmi, scope, number, sent, attempt_started)
            if found is not None:
                if first_miss is not None:
                    self._findings.note_listing_lag(
                        account_id, (_now() - attempt_started).total_seconds()
                    )
                return str(found), None
            first_miss = first_miss or _now()
            if not waits:
                break
            self._sleep(waits.pop(0))
        patience = max(IDENTIFY_PATIENCE, timedelta(seconds=10 * lag))
        if _now() - attempt_started >= patience:
            return "unidentified", (
                "identical content is already in GMI; its document could not be identified "
                f"by number or bytes within {patience}"
            )
        raise TransientError(
            "identical content is already in GMI but it is not listed yet (GMI's listing "
            "lags uploads); looking again later",
            api="gmi",
        )

    def _lookup(
        self, gmi: GmiClient, scope: str, number: str, sent: SentFile, attempt_started: datetime
    ) -> int | None:
        self._quota.check("gmi", scope)
        if number:
            matches = gmi.find_documents_by_number(number)
            if len(matches) == 1:
                return matches[0].uid
            found = self._same_bytes(gmi, scope, matches, sent)
            if found is not None:
                return found
        since = attempt_started - CLOCK_SLACK
        recent = list(gmi.iter_documents(updated_since=since, archived=1))
        named = [d for d in recent if sent.filename is not None and d.filename == sent.filename]
        # The name we sent first; GMI might rename a file, so then any recent document.
        return self._same_bytes(gmi, scope, named or recent, sent)

    def _same_bytes(
        self, gmi: GmiClient, scope: str, docs: list[GmiDocument], sent: SentFile
    ) -> int | None:
        for doc in sorted(docs, key=lambda d: d.uid, reverse=True)[:MAX_BYTE_CHECKS]:
            self._quota.check("gmi", scope)
            full = gmi.get_document(doc.uid, include_file=True, approval=False)
            if full.content is not None and sha256(full.content) == sent.content_hash:
                return doc.uid
        return None
