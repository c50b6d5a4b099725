"""The doctor's write probe: one tiny marked PDF where the account uploads, read back, deleted.

An export account's probe goes to the Billomat inbox (``DELETE /api/inbox-documents/{id}``
removes it: billomat.md §5.1 lists no other way), an import account's to GMI (``DELETE
/documents/{uid}``). A probe is never left behind:

- it is recorded (finding ``probe.pending``) before it is uploaded, and forgotten only once it
  is deleted or known never to have landed;
- SIGINT and SIGTERM during a probe raise, so the cleanup runs before the process exits; a
  second signal during the cleanup is ignored;
- every doctor run first removes a probe a killed run left behind, found by its id, else by
  its marker, else (where the inbox dropped the marker) by its bytes.
"""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from consumers.recovery import InboxSearch, SentFile
from shared.clients import AccountClients
from shared.db import Database, SyncAccount
from shared.domain import MARKER_KEY, Direction, export_marker
from shared.errors import ApiError, BelegsyncError, DuplicateDocumentError, NotFoundError
from shared.findings import PROBE_PENDING, Findings
from shared.gmi import GmiClient, GmiUpload
from shared.quota import QuotaBook

PROBE_TEXT = "belegsync doctor write probe - safe to delete"
# Waits before each look for the GMI probe in the listing: up to 15 s of lag are measured.
LISTING_LOOKS = (0.0, 1.0, 2.0, 4.0, 8.0)


class ProbeInterrupted(BaseException):
    """SIGINT or SIGTERM arrived during a probe; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class ProbeNotRecorded(BelegsyncError):
    """The probe could not be recorded first, so it was not sent."""


def probe_pdf(account_id: int) -> bytes:
    """A valid one-page PDF, the same bytes for the same account (a leftover is recognisable)."""
    text = f"{PROBE_TEXT} (account {account_id})"
    stream = f"BT /F1 10 Tf 40 800 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def probe_number(account_id: int) -> str:
    return f"BELEGSYNC-PROBE-A{account_id}"


def probe_filename(account_id: int) -> str:
    return f"belegsync-probe-a{account_id}.pdf"


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``ProbeInterrupted`` (so ``finally`` runs) until the block ends."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise ProbeInterrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def signals_ignored() -> Iterator[list[int]]:
    """Hold off SIGINT/SIGTERM while cleaning up; the list collects what arrived meanwhile."""
    arrived: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        arrived.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield arrived
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class ProbeResult:
    """What one write probe showed."""

    system: str  # billomat | gmi
    landed: bool = False
    metadata: str | None = None  # billomat: kept | dropped | rewritten
    filename_kept: bool | None = None
    bytes_kept: bool | None = None
    listing_lag: float | None = None  # gmi: seconds until listed; None: not within the looks
    removed: bool = False
    note: str = ""


def _now() -> datetime:
    return datetime.now(UTC)


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class WriteProbe:
    """Runs a write probe for one account and cleans up after it (and after killed runs)."""

    def __init__(self, db: Database, quota: QuotaBook, findings: Findings) -> None:
        self._quota = quota
        self._findings = findings
        self._inbox = InboxSearch(db, quota, findings)

    # --- leftovers ---------------------------------------------------------------------------

    def remove_leftover(self, account: SyncAccount, clients: AccountClients) -> str | None:
        """Remove the probe a killed run left behind; what was done, or None if none pending."""
        pending = self._findings.value(account.id, PROBE_PENDING)
        if not isinstance(pending, dict):
            return None
        started = datetime.fromisoformat(str(pending.get("started_at") or _now().isoformat()))
        if pending.get("system") == "gmi":
            removed = self._remove_gmi(clients, pending)
        else:
            removed = self._remove_billomat(account, clients, pending, started)
        self._findings.forget(account.id, PROBE_PENDING)
        if removed is None:
            return "a write probe of an interrupted run never landed; nothing to remove"
        return f"removed the write probe an interrupted run left behind ({removed})"

    def _remove_billomat(
        self,
        account: SyncAccount,
        clients: AccountClients,
        pending: dict[str, Any],
        started: datetime,
    ) -> str | None:
        billomat = clients.billomat
        inbox_id = pending.get("id")
        if inbox_id is None:
            sent = SentFile(
                content_hash=str(pending["sha256"]),
                size=int(pending["size"]),
                filename=str(pending.get("filename") or "") or None,
                marker=str(pending.get("marker") or "") or None,
            )
            found = self._inbox.find(billomat, clients.billomat_scope, account.id, sent, started)
            if found is None:
                return None
            inbox_id = found.id
        self._quota.reserve("billomat", clients.billomat_scope)
        try:
            billomat.delete_inbox_document(int(inbox_id))
        except NotFoundError:
            return None  # deleted meanwhile (by a person, or a cleanup that lost its answer)
        return f"Billomat inbox document {inbox_id}"

    def _remove_gmi(self, clients: AccountClients, pending: dict[str, Any]) -> str | None:
        gmi = clients.gmi
        uid = pending.get("uid")
        if uid is None:
            uid = _find_gmi_probe(gmi, str(pending["number"]))
            if uid is None:
                return None
        self._quota.check("gmi", clients.gmi_scope)
        try:
            gmi.delete_document(int(uid))
        except NotFoundError:
            return None
        return f"GMI document {uid}"

    # --- probes ------------------------------------------------------------------------------

    def run(self, account: SyncAccount, clients: AccountClients) -> ProbeResult:
        if Direction(account.direction) is Direction.EXPORT:
            return self._billomat(account, clients)
        return self._gmi(account, clients)

    def _billomat(self, account: SyncAccount, clients: AccountClients) -> ProbeResult:
        content = probe_pdf(account.id)
        marker = export_marker(account.ref, "doctor-probe")
        filename = probe_filename(account.id)
        pending: dict[str, Any] = {
            "system": "billomat",
            "sha256": _sha(content),
            "size": len(content),
            "filename": filename,
            "marker": marker,
            "started_at": _now().isoformat(),
        }
        self._remember(account, pending)
        result = ProbeResult("billomat")
        billomat, scope = clients.billomat, clients.billomat_scope
        try:
            with signals_raise():
                self._quota.reserve("billomat", scope)
                created = billomat.create_inbox_document(
                    content=content,
                    filename=filename,
                    document_type="OTHER",
                    metadata={MARKER_KEY: marker},
                )
                result.landed = True
                pending["id"] = created.id
                self._findings.record(account.id, PROBE_PENDING, pending, source="doctor")
                self._quota.reserve("billomat", scope)
                back = billomat.get_inbox_document(created.id)
                if back.metadata.get(MARKER_KEY) == marker:
                    result.metadata = "kept"
                else:
                    result.metadata = "rewritten" if back.metadata else "dropped"
                result.filename_kept = back.filename == filename
                result.bytes_kept = back.content is not None and _sha(back.content) == _sha(content)
        finally:
            self._clean_up(account, clients, result)
        return result

    def _gmi(self, account: SyncAccount, clients: AccountClients) -> ProbeResult:
        content = probe_pdf(account.id)
        number = probe_number(account.id)
        pending: dict[str, Any] = {
            "system": "gmi",
            "sha256": _sha(content),
            "number": number,
            "started_at": _now().isoformat(),
        }
        self._remember(account, pending)
        result = ProbeResult("gmi")
        gmi = clients.gmi
        upload = GmiUpload(
            file_name=probe_filename(account.id),
            content=content,
            document_type="MISC",
            document_number=number,
            note=PROBE_TEXT,
        )
        try:
            with signals_raise():
                self._quota.check("gmi", clients.gmi_scope)
                try:
                    uid = gmi.upload_document(upload)
                except DuplicateDocumentError:
                    # A probe an earlier run could not delete: remove it and try once more.
                    old = _find_gmi_probe(gmi, number)
                    if old is not None:
                        gmi.delete_document(old)
                    uid = gmi.upload_document(upload)
                result.landed = True
                pending["uid"] = uid
                self._findings.record(account.id, PROBE_PENDING, pending, source="doctor")
                result.listing_lag = _listing_lag(gmi, number, uid)
        finally:
            self._clean_up(account, clients, result)
        return result

    def _remember(self, account: SyncAccount, pending: dict[str, Any]) -> None:
        """Record the probe before it is uploaded: without the record, no probe."""
        if not self._findings.record(account.id, PROBE_PENDING, pending, source="doctor"):
            raise ProbeNotRecorded("could not record the write probe in the database; not sent")

    def _clean_up(self, account: SyncAccount, clients: AccountClients, result: ProbeResult) -> None:
        with signals_ignored() as arrived:
            try:
                removed = self.remove_leftover(account, clients)
            except ApiError as e:
                # The record stays: the next run removes the probe.
                result.note = f"could not remove the write probe yet ({e}); the next run will"
                return
            result.removed = removed is not None and removed.startswith("removed")
        if arrived:
            # Asked to stop while cleaning up: stop now that nothing is left behind.
            raise ProbeInterrupted(arrived[0])


def _find_gmi_probe(gmi: GmiClient, number: str) -> int | None:
    matches = gmi.find_documents_by_number(number)
    return max((m.uid for m in matches), default=None)


def _listing_lag(gmi: GmiClient, number: str, uid: int) -> float | None:
    """Seconds until the new document is listed (an upper bound), None if not within 15 s."""
    started = time.monotonic()
    for wait in LISTING_LOOKS:
        time.sleep(wait)
        if any(d.uid == uid for d in gmi.find_documents_by_number(number)):
            return round(time.monotonic() - started, 1)
    return None
