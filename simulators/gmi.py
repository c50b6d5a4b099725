"""The GetMyInvoices simulator: the v3 API at ``/accounts/v3`` for any number of accounts.

Tests and the demo drive it through the methods here (or the same operations under ``/_sim``);
product code only ever sees the HTTP API that :mod:`simulators.gmi_api` implements.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import Any

from simulators.clock import Clock
from simulators.control import ControlSurface, is_control_path
from simulators.counting import RequestCounter
from simulators.faults import FaultControls, FaultInjector
from simulators.gmi_api import BASE_PATH, GmiApi
from simulators.gmi_control import build_control
from simulators.gmi_model import (
    GmiStore,
    Limits,
    company_state,
    document_state,
)
from simulators.http import HttpService, Request, Response
from simulators.ratelimit import FixedWindowCounter
from simulators.variants import GmiBehaviour

ERROR_SHAPES = ("spec", "errors")


class GmiSimulator(FaultControls):
    """A local GetMyInvoices; ``port=0`` picks a free port. Every method is thread-safe.

    ``records_as_object`` emits the list's ``records`` keyed by uid (a PHP quirk);
    ``error_shape="errors"`` emits 422s as ``{"success":false,"errors":[{code,detail}]}``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        records_as_object: bool = False,
        error_shape: str = "spec",
        clock: Clock = time.time,
    ) -> None:
        self._store = GmiStore(clock)
        self._faults = FaultInjector(error_status=503)  # the documented temporary error
        self._counter = RequestCounter()
        self._limiter = FixedWindowCounter(clock)
        self.behaviour = GmiBehaviour()
        self.set_options(records_as_object=records_as_object, error_shape=error_shape)
        self._api = GmiApi(self._store, self._faults, self._counter, self._limiter, self.behaviour)
        self._service = HttpService(host, port, self._handle, "gmi")
        self._control: ControlSurface = build_control(self, self._faults, self._counter)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> GmiSimulator:
        self._service.start()
        return self

    def stop(self) -> None:
        self._service.stop()

    def __enter__(self) -> GmiSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return self._service.origin

    @property
    def base_url(self) -> str:
        """``http://host:port/accounts/v3``, the counterpart of the real base URL."""
        return self.origin + BASE_PATH

    def _handle(self, request: Request) -> Response:
        if is_control_path(request.path):
            return self._control.handle(request)
        return self._api.handle(request)

    def set_options(
        self,
        *,
        records_as_object: bool | None = None,
        error_shape: str | None = None,
        limit_body: str | None = None,
        approval_touches_mtime: bool | None = None,
        listing_lag: float | None = None,
    ) -> None:
        """Change the shape quirks and the undocumented behaviours (see ``variants.py``)."""
        if error_shape is not None and error_shape not in ERROR_SHAPES:
            raise ValueError(f"error_shape must be one of {ERROR_SHAPES}")
        changed = GmiBehaviour(**vars(self.behaviour))
        for name, value in (
            ("records_as_object", records_as_object),
            ("error_shape", error_shape),
            ("limit_body", limit_body),
            ("approval_touches_mtime", approval_touches_mtime),
            ("listing_lag", None if listing_lag is None else float(listing_lag)),
        ):
            if value is not None:
                setattr(changed, name, value)
        changed.check()  # all or nothing: a bad value changes none of them
        for name, value in vars(changed).items():
            setattr(self.behaviour, name, value)

    # --- accounts and documents ---------------------------------------------------------------

    def add_account(
        self,
        api_key: str,
        *,
        name: str = "Demo GmbH",
        read_only: bool = False,
        blocked: bool = False,
        cancelled: bool = False,
    ) -> None:
        """Create an account for ``api_key`` (or change its flags, keeping its data)."""
        self._store.add_account(
            api_key, name=name, read_only=read_only, blocked=blocked, cancelled=cancelled
        )

    def set_limits(
        self,
        api_key: str,
        *,
        per_minute: int = 100,
        per_day: int = 2500,
        uploads_per_hour: int = 100,
        minute_seconds: float = 60.0,
        day_seconds: float = 86400.0,
        hour_seconds: float = 3600.0,
        rate_limit_status: int = 403,
    ) -> None:
        """Quotas with clock-aligned windows; shorten the ``*_seconds`` to test them quickly."""
        if min(minute_seconds, day_seconds, hour_seconds) <= 0:
            raise ValueError("windows must be longer than 0 seconds")
        if rate_limit_status not in (403, 429):
            raise ValueError("rate_limit_status must be 403 or 429")
        self._store.set_limits(
            api_key,
            Limits(
                per_minute,
                per_day,
                uploads_per_hour,
                minute_seconds,
                day_seconds,
                hour_seconds,
                rate_limit_status,
            ),
        )

    def seed_document(
        self,
        api_key: str,
        *,
        document_type: str = "INCOMING_INVOICE",
        document_number: str | None = None,
        document_date: str | date | None = "2026-11-02",
        company_name: str | None = None,
        tags: Sequence[str] = (),
        net_amount: str | Decimal | None = None,
        gross_amount: str | Decimal | None = None,
        currency: str = "EUR",
        content: bytes | None = None,
        filename: str | None = None,
        approval: bool | None = None,
        is_archived: bool = False,
        is_locked: bool = False,
        note: str = "",
    ) -> int:
        """A document as if collected by GMI; returns its uid.

        ``content=None`` makes a small PDF naming the document. ``approval``: None = no
        workflow, False = workflow pending, True = workflow completed.
        """
        return self._store.seed_document(
            api_key,
            document_type=document_type,
            document_number=document_number,
            document_date=_date(document_date),
            company_name=company_name,
            tags=list(tags),
            net_amount=None if net_amount is None else Decimal(str(net_amount)),
            gross_amount=None if gross_amount is None else Decimal(str(gross_amount)),
            currency=currency,
            content=content,
            filename=filename,
            approval=approval,
            is_archived=is_archived,
            is_locked=is_locked,
            note=note,
        )

    def approve(self, api_key: str, uid: int) -> None:
        """Complete the document's approval workflow (assigning one if it had none).

        Whether that changes the modification time ``updatedOrNewSinceFilter`` reads is
        unconfirmed: it does unless the ``gmi-approval-keeps-mtime`` variant is on.
        """
        self._store.update_document(
            api_key, uid, approval=True, touch=self.behaviour.approval_touches_mtime
        )

    def set_tags(self, api_key: str, uid: int, tags: Sequence[str]) -> None:
        self._store.update_document(api_key, uid, tags=list(tags))

    def update_document(self, api_key: str, uid: int, **fields: Any) -> None:
        """Change fields by their snapshot names (``note``, ``is_archived``, ``document_date`` …).

        Amounts may be given as strings, dates as ``YYYY-MM-DD``; ``company_name`` assigns
        (creating if needed) a company.
        """
        changes = dict(fields)
        if "company_name" in changes:
            name = changes.pop("company_name")
            changes["company_uid"] = (
                None if name is None else self._store.company_for_name(api_key, str(name)).uid
            )
        for key in ("document_date", "due_date", "paid_at"):
            if key in changes:
                changes[key] = _date(changes[key])
        for key in ("net_amount", "gross_amount", "vat"):
            if key in changes and changes[key] is not None:
                changes[key] = Decimal(str(changes[key]))
        if "tags" in changes:
            changes["tags"] = list(changes["tags"])
        self._store.update_document(api_key, uid, **changes)

    def delete_document(self, api_key: str, uid: int) -> None:
        self._store.delete_document(api_key, uid)

    def age_documents(self, api_key: str, seconds: float) -> None:
        """Pretend every document of the account was stored (and last changed) ``seconds``
        earlier: lets a test look past a client's "updated since" overlap without waiting."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._store.age_documents(api_key, seconds)

    def documents(self, api_key: str) -> list[dict[str, Any]]:
        """Full state of every document, oldest first (includes ``sha256`` and ``approval``)."""
        account = self._store.account(api_key)
        with self._store.locked():
            return [document_state(account, d) for d in account.documents.values()]

    def document(self, api_key: str, uid: int) -> dict[str, Any]:
        account = self._store.account(api_key)
        with self._store.locked():
            return document_state(account, self._store.document(api_key, uid))

    def document_content(self, api_key: str, uid: int) -> bytes:
        return self._store.document(api_key, uid).content

    def add_company(self, api_key: str, name: str, *, tags: Sequence[str] = ()) -> int:
        return self._store.add_company(api_key, name, tags=tags).uid

    def companies(self, api_key: str) -> list[dict[str, Any]]:
        account = self._store.account(api_key)
        with self._store.locked():
            return [
                company_state(
                    c, sum(1 for d in account.documents.values() if d.company_uid == c.uid)
                )
                for c in account.companies.values()
            ]

    # --- counts, quotas and faults ------------------------------------------------------------

    def request_counts(self, api_key: str | None = None) -> dict[str, int]:
        """Requests received per endpoint template, e.g. ``"GET /documents/{documentUid}"``."""
        return self._counter.counts(api_key)

    def reset_counts(self) -> None:
        self._counter.reset()

    def rate_limited_count(self, api_key: str | None = None) -> int:
        """Limit answers sent: per-minute/per-day refusals and hourly-upload refusals (105)."""
        return self._counter.limited(api_key)

    def reset_quotas(self) -> None:
        """Forget the calls and uploads counted in the current windows."""
        self._limiter.reset()


def _date(value: str | date | None) -> date | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, date) else date.fromisoformat(value)
