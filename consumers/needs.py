"""What a document's next step costs in API calls, per quota: admitted before its first call.

Both sides at once, so that no call is spent on a document that then waits for the other
side's window (``shared.quota``).  A call a step makes beyond these (a second inbox page of the
search for an earlier upload, a company lookup) is admitted on its own when it is made.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.db import Document, SyncAccount
from shared.quota_plan import Need


def export_need(doc: Document, account: SyncAccount) -> Need:
    """The GMI download (metadata only once it landed), the Billomat upload (after an
    unanswered attempt: also the first inbox page of the search for it), the archive update."""
    gmi = 2 if account.archive_after_transfer else 1
    if doc.target_id is not None:
        return Need(gmi=gmi)
    return Need(billomat=1 if doc.attempt_started_at is None else 2, gmi=gmi)


def import_need(doc: Document, details: Mapping[str, str]) -> Need:
    """The Billomat PDF (and the document itself when the poll did not say its status), the
    GMI upload (after an unanswered attempt: also the content check).  Nothing for a draft or
    a document already in GMI."""
    status = details.get("status", "")
    if doc.target_id is not None or status.upper() == "DRAFT":
        return Need()
    gmi = 2 if doc.attempt_started_at is not None else 1
    return Need(billomat=1 if status else 2, gmi=gmi, gmi_uploads=1)
