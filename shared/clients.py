"""API clients for one sync account, wired to the process's metrics and the shared quota book."""

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
from shared.quota import QuotaBook
from shared.settings import Settings


class AccountHooks:
    """Per-account observer: metrics first, then the quota the API reported, for everyone."""

    def __init__(self, inner: ApiHooks, quota: QuotaBook, *, billomat_scope: str) -> None:
        self._inner = inner
        self._quota = quota
        self._billomat_scope = billomat_scope

    def on_response(self, api: str, endpoint: str, status: int | None, seconds: float) -> None:
        self._inner.on_response(api, endpoint, status, seconds)

    def on_quota(self, api: str, quota: Quota) -> None:
        self._inner.on_quota(api, quota)
        if api == "billomat":
            self._quota.record(api, self._billomat_scope, quota.remaining, quota.reset_at)

    def on_rate_limited(self, api: str) -> None:
        self._inner.on_rate_limited(api)


@dataclass
class AccountClients:
    gmi: GmiClient
    billomat: BillomatClient
    # names under which the shared quota book tracks this account's quotas (never a key)
    gmi_scope: str
    billomat_scope: str


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
    ) -> None:
        self._settings = settings
        self._quota = quota
        self._metrics = metrics
        self._findings = findings
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
        hooks = AccountHooks(
            hooks or self._hooks(account.name), self._quota, billomat_scope=account.billomat_id
        )
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
            ),
            gmi_scope=key_fingerprint(credentials.gmi_api_key),
            billomat_scope=account.billomat_id,
        )

    def close(self) -> None:
        self._session.close()
