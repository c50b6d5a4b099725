"""API clients for one sync account, wired to the process's metrics and the shared quota book
(every call passes the account's quota gate first)."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from shared.accounts import Credentials, key_fingerprint
from shared.billomat import BillomatClient
from shared.db import SyncAccount
from shared.domain import GMI_APPLICATION
from shared.findings import SORT_PREFIX, Findings
from shared.gmi import GmiClient
from shared.http import ApiHooks, NullHooks, Quota, build_session
from shared.logs import register_secret
from shared.metrics import Metrics
from shared.quota import QuotaBook, Scopes
from shared.quota_gate import QuotaGate
from shared.settings import Settings


class AccountHooks:
    """Per-account observer: metrics first, then what the API said about its quota, for
    everyone (through the account's quota gate)."""

    def __init__(self, inner: ApiHooks, gate: QuotaGate) -> None:
        self._inner = inner
        self._gate = gate

    def on_response(self, api: str, endpoint: str, status: int | None, seconds: float) -> None:
        self._inner.on_response(api, endpoint, status, seconds)
        if status is None:
            self._gate.unanswered(api)

    def on_quota(self, api: str, quota: Quota) -> None:
        self._inner.on_quota(api, quota)
        self._gate.answered(api, quota)

    def on_rate_limited(self, api: str) -> None:
        self._inner.on_rate_limited(api)


@dataclass
class AccountClients:
    gmi: GmiClient
    billomat: BillomatClient
    # names under which the shared quota book tracks this account's quotas (never a key)
    gmi_scope: str
    billomat_scope: str
    # every call of both clients passes it; a document's step admits its calls here first
    gate: QuotaGate

    @property
    def scopes(self) -> Scopes:
        return self.gate.scopes


class ClientFactory:
    """Builds clients on one pooled HTTP session per process.

    With ``findings`` the clients start from what was learnt about the account (the sort
    field Billomat accepts) and record what they learn.
    """

    def __init__(
        self,
        settings: Settings,
        quota: QuotaBook,
        metrics: Metrics | None,
        findings: Findings | None = None,
        *,
        work: bool = False,
    ) -> None:
        """``work``: the clients move documents (a consumer), which leaves each window's
        reserve to the polls; otherwise they poll and may use it."""
        self._settings = settings
        self._quota = quota
        self._metrics = metrics
        self._findings = findings
        self._work = work
        self._session: requests.Session = build_session(pool_size=20)

    def _hooks(self, account_name: str) -> ApiHooks:
        if self._metrics is None:
            return NullHooks()
        return self._metrics.api_hooks(account_name)

    def for_account(
        self,
        account: SyncAccount,
        credentials: Credentials,
        *,
        hooks: ApiHooks | None = None,
    ) -> AccountClients:
        """``hooks`` replaces the metrics hooks (e.g. to count a command's calls)."""
        # Whatever happens later, these never reach a log line in clear.
        register_secret(credentials.gmi_api_key)
        register_secret(credentials.billomat_api_key)
        scopes = Scopes(billomat=account.billomat_id, gmi=key_fingerprint(credentials.gmi_api_key))
        gate = QuotaGate(self._quota, scopes, work=self._work)
        hooks = AccountHooks(hooks or self._hooks(account.name), gate)
        settings = self._settings
        app_secret = settings.billomat_app_secret
        findings, account_id = self._findings, account.id

        def sort_fields() -> dict[str, str]:
            # Read when a list call first needs it: callers may hold a transaction right now.
            return findings.sort_fields(account_id) if findings is not None else {}

        def learnt(family: str, field: str) -> None:
            if findings is not None:
                answer = (
                    f"Billomat refused the usual sort; {family} lists sort by {field or 'nothing'}"
                )
                findings.record(account_id, SORT_PREFIX + family, field, answer)

        return AccountClients(
            gmi=GmiClient(
                credentials.gmi_api_key,
                base_url=settings.gmi_base_url,
                session=self._session,
                hooks=hooks,
                application=GMI_APPLICATION,
                gate=gate,
            ),
            billomat=BillomatClient(
                account.billomat_id,
                credentials.billomat_api_key,
                url_template=settings.billomat_base_url,
                app_id=settings.billomat_app_id,
                app_secret=app_secret.get_secret_value() if app_secret else None,
                session=self._session,
                hooks=hooks,
                sort_fields=sort_fields,
                on_sort_learnt=learnt,
                gate=gate,
            ),
            gmi_scope=scopes.gmi,
            billomat_scope=scopes.billomat,
            gate=gate,
        )

    def close(self) -> None:
        self._session.close()
