"""Recognising what is already in the target before an account uploads anything.

A (re)added account — after `accounts remove`, a lost database, a restore from an old backup —
knows nothing of its earlier life, but the target does.  Its first poll reads the whole Billomat
inbox once (1,000 documents per call: ``ceil(inbox size / 1000)`` calls, reported) and takes
every document it finds there as landed instead of uploading it again.

Which inbox document is an earlier upload of which GMI document is decided in two steps:

- at the poll, ``earlier_uploads``: the ``BELEGSYNC_REF`` marker in the metadata.  GMI document
  uids are unique across all GMI accounts, so any belegsync marker naming the uid — whichever
  account ref wrote it — is that document;
- in the consumer, before the first upload of a document the scan saw no marker for: its bytes.
  Nothing says Billomat keeps custom metadata (``inbox-metadata-dropped``), so the scan keeps
  the sizes of the inbox documents that carry no marker (``TargetScan.unmarked``); a document
  whose file has one of those exact sizes is compared by SHA-256 with each of them (one call
  per same-size candidate, usually none) before it is uploaded.

(The import direction needs no scan: GMI refuses identical content with 422 code 127, and the
consumer adopts the existing document.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.billomat import BillomatClient, InboxDocument
from shared.domain import MARKER_KEY, parse_marker

PER_PAGE = 1000  # Billomat's maximum page size (billomat.md §3.1)
UNMARKED_KEY = "unmarked_by_size"


@dataclass
class TargetScan:
    """What the inbox holds that belegsync put there, and what finding out cost."""

    found: dict[str, InboxDocument] = field(default_factory=dict)  # GMI uid -> inbox document
    # file size -> inbox ids of the documents without any belegsync marker (newest first)
    unmarked: dict[int, list[int]] = field(default_factory=dict)
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
            # for the consumer's check by content (``unmarked_candidates``); status hides it
            UNMARKED_KEY: {str(size): ids for size, ids in self.unmarked.items()},
            # rows detected up to here may have an earlier upload without a marker
            "until": datetime.now(UTC).isoformat(),
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


def unmarked_by_size(items: Iterable[InboxDocument]) -> dict[int, list[int]]:
    """File size -> ids (newest first) of inbox documents that carry no belegsync marker."""
    sizes: dict[int, list[int]] = {}
    for item in sorted(items, key=lambda i: i.id, reverse=True):
        if parse_marker(item.metadata.get(MARKER_KEY)) is None and item.filesize > 0:
            sizes.setdefault(item.filesize, []).append(item.id)
    return sizes


def unmarked_candidates(
    target_scan: Mapping[str, Any] | None, detected_at: datetime, size: int
) -> list[int]:
    """Inbox ids an earlier, unmarked upload of a file of ``size`` bytes could be.

    Only for a document the account's first poll already knew (detected before the scan was
    settled): one first seen later was never uploaded before this account's ledger began.
    """
    if not target_scan or not target_scan.get(UNMARKED_KEY):
        return []
    until = target_scan.get("until")
    if until is None or detected_at > datetime.fromisoformat(until):
        return []
    return [int(i) for i in target_scan[UNMARKED_KEY].get(str(size), [])]


def scan_inbox(
    billomat: BillomatClient,
    *,
    before_call: Callable[[], None] | None = None,
    per_page: int = PER_PAGE,
) -> TargetScan:
    """Read the whole inbox, page by page (each call passes the client's quota gate;
    ``before_call`` runs before each page, e.g. for a client without one)."""
    scan = TargetScan()
    items: list[InboxDocument] = []
    page_no = 1
    while True:
        if before_call is not None:
            before_call()
        page = billomat.inbox_page(page_no, per_page, order_by="id ASC")
        scan.calls += 1
        items += page.items
        if not page.has_more:
            break
        page_no += 1
    scan.listed = len(items)
    scan.found = earlier_uploads(items)
    scan.unmarked = unmarked_by_size(items)
    return scan
