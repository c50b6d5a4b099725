"""GetMyInvoices v3 REST surface under ``/accounts/v3``: auth, limits, parameters and routing.

Pipeline per request: count → latency → injected failure → API key → per-minute/per-day limits →
permission → content type → parameters (query string and JSON body merged) → route → maybe drop
the answer. The resources live in :mod:`simulators.gmi_documents` and
:mod:`simulators.gmi_companies`; parameters and the 422 catalogue in :mod:`simulators.gmi_params`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from simulators.counting import RequestCounter
from simulators.faults import FaultInjector
from simulators.formats import php_json
from simulators.gmi_companies import CompanyRoutes
from simulators.gmi_documents import DocumentRoutes
from simulators.gmi_model import Account, GmiStore, Limits
from simulators.gmi_params import (
    CURRENCIES,
    VAT_RATES,
    Call,
    Rejected,
    code_body,
    ok,
    php_params,
)
from simulators.http import WRITE_METHODS, Request, Response, Router, html_error
from simulators.ratelimit import FixedWindowCounter
from simulators.variants import GmiBehaviour

BASE_PATH = "/accounts/v3"


class GmiApi:
    """Answers real-API requests against a :class:`GmiStore`."""

    def __init__(
        self,
        store: GmiStore,
        faults: FaultInjector,
        counter: RequestCounter,
        limiter: FixedWindowCounter,
        behaviour: GmiBehaviour,
    ) -> None:
        self._store = store
        self._faults = faults
        self._counter = counter
        self._limiter = limiter
        self.behaviour = behaviour
        docs = DocumentRoutes(store, limiter, behaviour)
        companies = CompanyRoutes(store)
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", "/apiStatus", lambda call: ok({"success": True})),
            ("GET", "/account", companies.account),
            ("GET", "/documents", docs.list_documents),
            ("POST", "/documents", docs.upload),
            ("POST", "/documents/exists", docs.exists),
            ("GET", "/documents/{documentUid}", docs.get_document),
            ("PUT", "/documents/{documentUid}", docs.update_document),
            ("DELETE", "/documents/{documentUid}", docs.delete_document),
            ("GET", "/companies", companies.list_companies),
            ("POST", "/companies", companies.create_company),
            ("GET", "/companies/{companyUid}", companies.get_company),
            ("PUT", "/companies/{companyUid}", companies.update_company),
            ("DELETE", "/companies/{companyUid}", companies.delete_company),
            ("GET", "/tags", companies.tags),
            ("GET", "/countries", companies.countries),
            ("GET", "/currencies", lambda call: ok(CURRENCIES)),
            ("GET", "/vatRates", lambda call: ok({"success": True, "data": VAT_RATES})),
        ]
        self._router = Router(routes)

    # --- pipeline ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path != BASE_PATH and not request.path.startswith(BASE_PATH + "/"):
            return code_body(404, 404, "Not Found")
        sub = request.path[len(BASE_PATH) :] or "/"
        match = self._router.match(request.method, sub)
        api_key = request.header("X-API-KEY") or ""
        self._counter.count(api_key, f"{request.method} {match.template if match else sub}")

        delay = self._faults.latency
        if delay:
            time.sleep(delay)
        failure = self._faults.failure_for(request.method, request.path)
        if failure is not None:
            if failure.html:
                return html_error(failure.status)
            if failure.status == 503:
                return code_body(503, 503, "Temporary Issue. Please retry in a few minutes.")
            return code_body(failure.status, failure.status, "An unexpected error occurred.")

        account = self._store.find_account(api_key)
        if account is None:
            return code_body(403, 403, "API Key does not exist")
        if account.blocked:
            return code_body(403, 407, "API Key is blocked.")
        if account.cancelled:
            return code_body(403, 431, "Account is cancelled.")
        limited = self._take_call(account)
        if limited is not None:
            return limited
        if account.read_only and request.method in WRITE_METHODS:
            return code_body(403, 430, "You do not have required permission.")
        if request.method in WRITE_METHODS and request.content_type != "application/json":
            return code_body(415, 415, "Request content-type is not valid.")
        if match is None:
            return code_body(404, 404, "Not Found")
        if match.route is None:
            return code_body(405, 405, "Method Not Allowed")

        params = php_params(request.query)
        if request.body.strip():
            # GET with a JSON body is normal here (official PHP SDK); the body wins over the
            # query string when both name a parameter. A GET without the JSON content type
            # is still read, leniently (unconfirmed).
            try:
                body = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return code_body(400, 400, "Request body is not valid JSON.")
            if not isinstance(body, dict):
                return code_body(400, 400, "Request body must be a JSON object.")
            params.update(body)
        try:
            response = match.route.handler(Call(request, account, params), **match.params)
        except Rejected as e:
            if e.code == 105:
                self._counter.count_limited(api_key)
            response = self._rejected(e)
        if 200 <= response.status < 300 and self._faults.should_drop(request.method, request.path):
            return Response.dropped()
        if 200 <= response.status < 300:
            hold = self._faults.hold_after(request.method, request.path)
            if hold:
                time.sleep(hold)
        return response

    def _take_call(self, account: Account) -> Response | None:
        """Count the call against the minute and day windows, or answer the limit error.

        A refused call does not use up quota in either window.
        """
        limits = account.limits
        with self._store.locked():
            minute = self._limiter.peek(
                (account.api_key, "minute"), limits.per_minute, limits.minute_seconds
            )
            day = self._limiter.peek((account.api_key, "day"), limits.per_day, limits.day_seconds)
            if minute.allowed and day.allowed:
                self._limiter.add((account.api_key, "minute"), limits.minute_seconds)
                self._limiter.add((account.api_key, "day"), limits.day_seconds)
                return None
        self._counter.count_limited(account.api_key)
        return self._limit_answer(limits.rate_limit_status, limits, per_minute=not minute.allowed)

    def _limit_answer(self, status: int, limits: Limits, *, per_minute: bool) -> Response:
        """The refusal of a call over a limit, in the body shape the behaviour settles.

        The spec lists the limits as 403 sub-code 429 but shows ``{}`` as the example body;
        whether the real body carries the code is unconfirmed (the variants flip it).
        """
        shape = self.behaviour.limit_body
        if shape == "empty":
            return Response(status, php_json({}), "application/json")
        if shape == "detail":
            text = "Minute limit exceeded" if per_minute else "Daily limit exceeded"
            return Response(status, php_json({"detail": text}), "application/json")
        if per_minute:
            detail = f"API call limit of {limits.per_minute} calls per minute exceeded."
        else:
            detail = f"API call limit of {limits.per_day} calls per day exceeded."
        return code_body(status, 429, detail)

    def _rejected(self, error: Rejected) -> Response:
        if self.behaviour.error_shape == "errors":
            payload: dict[str, Any] = {
                "success": False,
                "errors": [{"code": error.code, "detail": error.detail}],
            }
        else:
            payload = {"success": False, "detail": error.detail, "error_code": error.code}
        return Response(422, php_json(payload), "application/json")
