"""The Billomat simulator: one server for every tenant at ``/{billomat_id}/api``, plus its controls.

Tests and the demo drive it through the methods here (or the same operations under ``/_sim``);
product code only ever sees the HTTP API that :mod:`simulators.billomat_api` implements.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from datetime import date as date_type
from types import TracebackType
from typing import Any, Literal

import requests

from simulators.billomat_api import BillomatApi
from simulators.billomat_control import build_control
from simulators.billomat_model import KINDS, parse_amount, parse_date
from simulators.billomat_records import inbox_state
from simulators.billomat_store import BillomatStore
from simulators.clock import Clock
from simulators.control import ControlSurface, is_control_path
from simulators.counting import RequestCounter
from simulators.faults import FaultControls, FaultInjector
from simulators.formats import Format, record_dict, render_record
from simulators.http import HttpService, Request, Response
from simulators.ratelimit import FixedWindowCounter
from simulators.variants import BillomatBehaviour


class BillomatSimulator(FaultControls):
    """A local Billomat; ``port=0`` picks a free port. Every method is thread-safe."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, clock: Clock = time.time) -> None:
        self._store = BillomatStore(clock)
        # Random app errors answer 500; gateway trouble is the separate html_502 fault.
        self._faults = FaultInjector(error_status=500)
        self._counter = RequestCounter()
        self._limiter = FixedWindowCounter(clock)
        self.behaviour = BillomatBehaviour()
        self._api = BillomatApi(
            self._store, self._faults, self._counter, self._limiter, self.behaviour
        )
        self._service = HttpService(host, port, self._handle, "billomat")
        self._webhook_ids: dict[tuple[str, str], int] = {}
        self._webhook_requests = itertools.count(501)
        self._webhook_lock = threading.Lock()
        self._control: ControlSurface = build_control(self, self._faults, self._counter)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> BillomatSimulator:
        self._service.start()
        return self

    def stop(self) -> None:
        self._service.stop()

    def __enter__(self) -> BillomatSimulator:
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
    def url_template(self) -> str:
        """``http://host:port/{billomat_id}/api``: a ``str.format`` template like the real URL."""
        return self.origin + "/{billomat_id}/api"

    def api_url(self, billomat_id: str) -> str:
        return self.url_template.format(billomat_id=billomat_id)

    def _handle(self, request: Request) -> Response:
        if is_control_path(request.path):
            return self._control.handle(request)
        return self._api.handle(request)

    def set_options(
        self,
        *,
        inbox_metadata: str | None = None,
        sort_by_id: bool | None = None,
        max_upload_bytes: int | Literal["unlimited"] | None = None,
    ) -> None:
        """Change the undocumented behaviours (see ``variants.py``); ``max_upload_bytes``
        ``"unlimited"`` lifts the gateway's size limit again."""
        changed = BillomatBehaviour(**vars(self.behaviour))
        if inbox_metadata is not None:
            changed.inbox_metadata = inbox_metadata
        if sort_by_id is not None:
            changed.sort_by_id = bool(sort_by_id)
        if max_upload_bytes == "unlimited":
            changed.max_upload_bytes = None
        elif max_upload_bytes is not None:
            changed.max_upload_bytes = int(max_upload_bytes)
        changed.check()  # all or nothing: a bad value changes none of them
        for name, value in vars(changed).items():
            setattr(self.behaviour, name, value)

    # --- tenants, clients, documents ----------------------------------------------------------

    def add_tenant(
        self,
        billomat_id: str,
        api_key: str,
        *,
        limit: int = 300,
        window_seconds: float = 900.0,
        apps: Mapping[str, str] | None = None,
        app_limit: int = 1000,
    ) -> None:
        """Create (or reconfigure, keeping data) a tenant; ``apps`` maps X-AppId → X-AppSecret."""
        self._store.add_tenant(
            billomat_id,
            api_key,
            limit=limit,
            window_seconds=window_seconds,
            apps=apps,
            app_limit=app_limit,
        )

    def add_client(self, billomat_id: str, name: str, **fields: str) -> int:
        """A client; ``fields`` are client fields such as ``city``, ``email``, ``first_name``."""
        return self._store.add_party(billomat_id, name, fields)

    def clients(self, billomat_id: str) -> list[dict[str, Any]]:
        return [record_dict(r) for r in self._store.party_records(billomat_id)]

    def add_document(
        self,
        billomat_id: str,
        kind: str,
        *,
        status: str = "OPEN",
        number: str | None = None,
        date: str | date_type = "2026-11-02",
        client_name: str = "Musterkunde GmbH",
        total_net: str = "100.00",
        total_gross: str = "119.00",
        currency_code: str = "EUR",
        content: bytes | None = None,
        title: str | None = None,
    ) -> int:
        """A document of ``kind`` (``invoices``, ``credit-notes`` …); non-drafts get a PDF."""
        doc = self._store.add_document(
            billomat_id,
            kind,
            status=status,
            number=number,
            date_=date if isinstance(date, date_type) else parse_date(date, "date"),
            party_id=None,
            party_name=client_name,
            total_net=parse_amount(total_net, "total_net"),
            total_gross=parse_amount(total_gross, "total_gross"),
            currency_code=currency_code,
            content=content,
            title=title or "",
        )
        return doc.id

    def complete(self, billomat_id: str, kind: str, id: int) -> None:
        """Finish a draft: number (e.g. ``RE-0007``), PDF, first non-draft status."""
        self._store.complete(billomat_id, kind, id)

    def update_document(self, billomat_id: str, kind: str, id: int, **fields: Any) -> None:
        """Change ``status``, ``title``, ``total_net`` … of any document; bumps ``updated``."""
        self._store.update_document(billomat_id, kind, id, **fields)

    def documents(self, billomat_id: str, kind: str) -> list[dict[str, Any]]:
        return self._store.documents_state(billomat_id, kind)

    def document(self, billomat_id: str, kind: str, id: int) -> dict[str, Any]:
        for state in self._store.documents_state(billomat_id, kind):
            if state["id"] == id:
                return state
        raise KeyError(f"{kind} {id} not found")

    def pdf_content(self, billomat_id: str, kind: str, id: int) -> bytes | None:
        pdf = self._store.document(billomat_id, kind, id).pdf
        return None if pdf is None else pdf.content

    def inbox(self, billomat_id: str) -> list[dict[str, Any]]:
        """Every inbox document (metadata as a dict, ``sha256`` of the bytes), oldest first."""
        return [inbox_state(d) for d in self._store.inbox_documents(billomat_id)]

    def inbox_content(self, billomat_id: str, id: int) -> bytes:
        return self._store.inbox_document(billomat_id, id).content

    # --- counts, quotas and faults ------------------------------------------------------------

    def request_counts(self, billomat_id: str | None = None) -> dict[str, int]:
        """Requests received per endpoint template, e.g. ``"GET /api/invoices/{id}/pdf"``."""
        return self._counter.counts(billomat_id)

    def reset_counts(self) -> None:
        self._counter.reset()

    def rate_limited_count(self, billomat_id: str | None = None) -> int:
        """How many 429 answers were sent."""
        return self._counter.limited(billomat_id)

    def reset_quotas(self) -> None:
        """Forget the calls counted in the current windows."""
        self._limiter.reset()

    # --- webhooks -----------------------------------------------------------------------------

    def send_webhook(
        self,
        url: str,
        *,
        billomat_id: str,
        event: str,
        kind: str,
        id: int,
        fmt: str = "json",
        auth: tuple[str, str] | None = None,
    ) -> int:
        """POST the record to ``url`` as Billomat's webhook does; returns the HTTP status.

        Connection failures raise :class:`requests.RequestException`. Redirects are not
        followed (Billomat treats a 30x as a failed delivery). No quota is spent.
        """
        wire = Format(fmt.lower())
        if kind in KINDS:
            record = self._store.document_record(billomat_id, kind, id)
            root = KINDS[kind].singular
        elif kind == "clients":
            record, root = self._store.party_record(billomat_id, id), "client"
        else:
            raise ValueError(f"no webhook for {kind!r}")
        with self._webhook_lock:
            hook_id = self._webhook_ids.setdefault((billomat_id, event), len(self._webhook_ids) + 1)
            request_id = next(self._webhook_requests)
        response = requests.post(
            url,
            data=render_record(wire, root, record),
            headers={
                "Content-Type": "application/json" if wire is Format.JSON else "application/xml",
                "User-Agent": "Billomat-Webhook",
                "X-Billomat-Webhook-Id": str(hook_id),
                "X-Billomat-Webhook-Request-Id": str(request_id),
                "X-Billomat-Webhook-Event": event,
            },
            auth=auth,
            timeout=10,  # the receiver must answer within 10 s
            allow_redirects=False,
        )
        return response.status_code
