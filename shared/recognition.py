"""Recognising what is already in the target before an account uploads anything.

A (re)added account — after `accounts remove`, a lost database, a restore from an old backup —
knows nothing of its earlier life, but the target does.  Its first poll reads the whole Billomat
inbox once (1,000 documents per call: ``ceil(inbox size / 1000)`` calls, reported) and takes
every document it finds there as landed instead of uploading it again.

Which inbox document is an earlier upload of which GMI document is decided in one place,
``earlier_uploads``.  Today that is the ``BELEGSYNC_REF`` marker in the metadata: GMI document
uids are unique across all GMI accounts, so any belegsync marker naming the uid — whichever
account ref wrote it — is that document.  (The import direction needs no scan: GMI refuses
identical content with 422 code 127, and the consumer adopts the existing document.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.billomat import BillomatClient, InboxDocument
from shared.domain import MARKER_KEY, parse_marker

PER_PAGE = 1000  # Billomat's maximum page size (billomat.md §3.1)


@dataclass
class TargetScan:
    """What the inbox holds that belegsync put there, and what finding out cost."""

    found: dict[str, InboxDocument] = field(default_factory=dict)  # GMI uid -> inbox document
    listed: int = 0
    calls: int = 0
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def summary(self, adopted: int) -> dict[str, Any]:
        """What ``SyncAccount.target_scan`` keeps (and ``status --json`` shows)."""
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "target": "billomat inbox",
            "listed": self.listed,
            "calls": self.calls,
            "found": adopted,
        }


def earlier_uploads(items: Iterable[InboxDocument]) -> dict[str, InboxDocument]:
    """GMI uid -> the inbox document an earlier belegsync upload of it became.

    Several uploads of one GMI document (duplicates from before the ledger knew better): the
    oldest one is the one we keep pointing at.
    """
    found: dict[str, InboxDocument] = {}
    for item in items:
        marker = parse_marker(item.metadata.get(MARKER_KEY))
        if marker is None:
            continue
        known = found.get(marker.gmi_uid)
        if known is None or item.id < known.id:
            found[marker.gmi_uid] = item
    return found


def scan_inbox(
    billomat: BillomatClient, *, before_call: Callable[[], None], per_page: int = PER_PAGE
) -> TargetScan:
    """Read the whole inbox, page by page; ``before_call`` reserves each call in the quota."""
    scan = TargetScan()
    items: list[InboxDocument] = []
    page_no = 1
    while True:
        before_call()
        page = billomat.inbox_page(page_no, per_page, order_by="id ASC")
        scan.calls += 1
        items += page.items
        if not page.has_more:
            break
        page_no += 1
    scan.listed = len(items)
    scan.found = earlier_uploads(items)
    return scan
