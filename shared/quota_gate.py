"""The gate every API call of one account's clients passes before it is sent.

A document's step first *admits* all the calls it will make, on both sides at once
(``admitted``); each call then spends one of those.  A call nobody admitted in advance (a poll's
list call, a recovery search, a company lookup) is admitted on its own right before it is made.
So every call is counted in its windows before it happens, and a window without room stops
the call with ``RateLimitedError`` instead of letting the API refuse it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.http import Quota
from shared.quota import Admission, QuotaBook, Scopes
from shared.quota_plan import BILLOMAT, GMI_DAY, GMI_MINUTE, GMI_UPLOADS, Need

UPLOAD_ENDPOINT = "POST /documents"  # the only GMI call that counts in the hourly upload window


class QuotaGate:
    """Per account (and per message in a consumer): the calls admitted and not yet made.

    ``work``: document work leaves each window's reserve to the polls; a poll does not.
    """

    def __init__(self, book: QuotaBook, scopes: Scopes, *, work: bool) -> None:
        self.book = book
        self.scopes = scopes
        self._work = work
        self._billomat = 0
        self._gmi_plain = 0  # GMI calls admitted that are not uploads
        self._gmi_uploads = 0
        self._admission = Admission()

    def __repr__(self) -> str:
        return f"QuotaGate(billomat={self.scopes.billomat!r}, work={self._work})"

    # -- a document's step ---------------------------------------------------------------------

    def admit(self, need: Need) -> None:
        """Admit ``need`` on every window at once, or raise RateLimitedError (nothing taken)."""
        admission = self.book.admit(self.scopes, need, work=self._work)
        for key, n in admission.calls.items():
            self._admission.calls[key] = self._admission.calls.get(key, 0) + n
            self._admission.windows[key] = admission.windows[key]
        self._billomat += need.billomat
        self._gmi_plain += need.gmi - need.gmi_uploads
        self._gmi_uploads += need.gmi_uploads

    def settle(self) -> None:
        """Give back what was admitted and not used."""
        unused = {
            (BILLOMAT, self.scopes.billomat): self._billomat,
            (GMI_MINUTE, self.scopes.gmi): self._gmi_plain + self._gmi_uploads,
            (GMI_DAY, self.scopes.gmi): self._gmi_plain + self._gmi_uploads,
            (GMI_UPLOADS, self.scopes.gmi): self._gmi_uploads,
        }
        calls = {
            key: min(n, self._admission.calls.get(key, 0)) for key, n in unused.items() if n > 0
        }
        self._billomat = self._gmi_plain = self._gmi_uploads = 0
        if calls:
            self.book.release(Admission(calls, dict(self._admission.windows)))
        self._admission = Admission()

    @contextmanager
    def admitted(self, need: Need) -> Iterator[None]:
        self.admit(need)
        try:
            yield
        finally:
            self.settle()

    # -- each call (shared.http.CallGate) ------------------------------------------------------

    def before_call(self, api: str, endpoint: str) -> None:
        if api == BILLOMAT:
            if self._billomat > 0:
                self._billomat -= 1
                return
            self.book.admit(self.scopes, Need(billomat=1), work=self._work)
            return
        if endpoint == UPLOAD_ENDPOINT:
            if self._gmi_uploads > 0:
                self._gmi_uploads -= 1
                return
            self.book.admit(self.scopes, Need(gmi=1, gmi_uploads=1), work=self._work)
            return
        if self._gmi_plain > 0:
            self._gmi_plain -= 1
            return
        self.book.admit(self.scopes, Need(gmi=1), work=self._work)

    # -- what came back ------------------------------------------------------------------------

    def answered(self, api: str, quota: Quota) -> None:
        if api == BILLOMAT:
            self.book.record(BILLOMAT, self.scopes.billomat, quota.remaining, quota.reset_at)

    def unanswered(self, api: str) -> None:
        if api == BILLOMAT:
            self.book.unanswered(BILLOMAT, self.scopes.billomat)
