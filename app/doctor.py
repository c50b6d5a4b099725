"""``belegsync doctor``: what an operator runs against the real APIs on day one.

It checks the credentials and quotas, and which way each undocumented behaviour goes for this
account (``app.doctor_questions``) — read-only by default; ``--write-probe`` uploads one tiny
marked PDF where the account uploads, reads it back and deletes it (``app.probe``);
``--limit-probe`` spends up to a minute's GMI calls to see how GMI refuses one. Each finding is
a line: the question, the answer, what belegsync does about it; the findings are recorded so
the clients adapt.
"""

from __future__ import annotations

from app.doctor_questions import Questions
from app.doctor_report import FAIL, OK, WARN, CallCounter, Check, DoctorReport, clock
from app.probe import ProbeResult, WriteProbe
from shared.accounts import Credentials, export_rules
from shared.clients import AccountClients, ClientFactory
from shared.db import Database, SyncAccount
from shared.domain import Direction
from shared.errors import ApiError, ConfigurationError, RateLimitedError
from shared.findings import Findings
from shared.quota import QuotaBook
from shared.settings import Settings

__all__ = ["CallCounter", "Check", "Doctor", "DoctorReport"]


class Doctor:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._quota = QuotaBook(db)
        self._findings = Findings(db)
        self._factory = ClientFactory(settings, self._quota, None, self._findings)
        self._questions = Questions(db, settings, self._quota, self._findings)

    def close(self) -> None:
        self._factory.close()

    def run(
        self,
        account: SyncAccount,
        credentials: Credentials,
        *,
        write_probe: bool = False,
        limit_probe: bool = False,
    ) -> DoctorReport:
        counter = CallCounter()
        clients = self._factory.for_account(account, credentials, hooks=counter)
        direction = Direction(account.direction)
        report = DoctorReport(account.name, direction.value, calls=counter.calls)
        probes = WriteProbe(self._db, self._quota, self._findings)
        try:
            report.cleanup = probes.remove_leftover(account, clients)
        except ApiError as e:
            report.cleanup = f"a write probe of an interrupted run is still to remove: {e}"
        checks = report.checks
        gmi_ok = self._gmi_key(clients, checks)
        billomat_ok = self._billomat_key(clients, counter, checks)
        if billomat_ok:
            self._questions.sorting(account, clients, checks)
        probe: ProbeResult | None = None
        target_ok = billomat_ok if direction is Direction.EXPORT else gmi_ok
        if write_probe and target_ok:
            probe = probes.run(account, clients)
        if direction is Direction.EXPORT:
            if billomat_ok:
                self._questions.inbox_metadata(account, clients, probe, checks)
            if gmi_ok and export_rules(account).require_approval:
                self._questions.approval(account, clients, checks)
        else:
            self._questions.listing_lag(account, probe, checks)
            self._questions.deep_sweep(checks)
        if gmi_ok:
            self._questions.limit_body(account, clients, limit_probe, checks)
        return report

    # --- credentials and quotas --------------------------------------------------------------

    def _gmi_key(self, clients: AccountClients, checks: list[Check]) -> bool:
        question = "Does GMI accept the API key?"
        try:
            headers = clients.gmi.api_status()
            info = clients.gmi.account()
        except ConfigurationError as e:
            checks.append(
                Check(
                    "gmi.key",
                    question,
                    f"no: {e}",
                    "fix the key: belegsync accounts update NAME --gmi-api-key …",
                    FAIL,
                )
            )
            return False
        except RateLimitedError as e:
            checks.append(
                Check(
                    "gmi.key",
                    question,
                    f"GMI refused for now: {e}",
                    "run doctor again after the reset",
                    WARN,
                )
            )
            return False
        name = info.get("name") or "?"
        checks.append(
            Check(
                "gmi.key",
                question,
                f"yes (account {name!r}, {info.get('accountId', '?')})",
                "documents flow",
                OK,
            )
        )
        rates = ", ".join(f"{k}: {v}" for k, v in sorted(headers.items()))
        checks.append(
            Check(
                "gmi.quota",
                "What does GMI say about its quota?",
                f"rate headers {rates}" if rates else "no rate headers (none are documented)",
                "learns the limits (100 calls/min, 2,500/day, 100 uploads/h) from refusals and "
                "waits until the reset; no call is made while a refusal's wait runs",
                OK,
            )
        )
        return True

    def _billomat_key(
        self, clients: AccountClients, counter: CallCounter, checks: list[Check]
    ) -> bool:
        question = "Does Billomat accept the API key?"
        try:
            self._quota.reserve("billomat", clients.billomat_scope)
            clients.billomat.myself()
        except ConfigurationError as e:
            checks.append(
                Check(
                    "billomat.key",
                    question,
                    f"no: {e}",
                    "fix the Billomat ID or key: belegsync accounts update NAME …",
                    FAIL,
                )
            )
            return False
        except RateLimitedError as e:
            checks.append(
                Check(
                    "billomat.key",
                    question,
                    f"refused for now: {e}",
                    "run doctor again after the reset",
                    WARN,
                )
            )
            return False
        checks.append(Check("billomat.key", question, "yes", "documents flow", OK))
        quota = counter.quota
        app = "a registered app" if self._settings.billomat_app_id else "no registered app"
        answer = (
            f"{quota.remaining} calls left in this window, next window at {clock(quota.reset_at)}"
            f" ({app})"
            if quota
            else "no rate headers in the answer"
        )
        checks.append(
            Check(
                "billomat.quota",
                "How much of Billomat's quota is left?",
                answer,
                "reserves every call in the shared quota book; polls leave "
                f"{self._settings.billomat_quota_reserve} calls per window for uploads",
                OK if quota else WARN,
            )
        )
        return True
