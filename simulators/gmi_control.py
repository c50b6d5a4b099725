"""``/_sim/…`` on the GMI simulator: the control methods of :class:`GmiSimulator` over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulators.control import (
    ControlError,
    ControlSurface,
    decode_content,
    json_response,
    pick,
    read_json,
    requested_variants,
)
from simulators.counting import RequestCounter
from simulators.faults import FaultInjector
from simulators.http import Request, Response
from simulators.variants import BillomatBehaviour, GmiBehaviour, apply_variants

if TYPE_CHECKING:
    from simulators.gmi import GmiSimulator

_ACCOUNT_FIELDS = ("api_key", "name", "read_only", "blocked", "cancelled")
_LIMIT_FIELDS = (
    "per_minute", "per_day", "uploads_per_hour", "minute_seconds", "day_seconds",
    "hour_seconds", "rate_limit_status",
)  # fmt: skip
_OPTION_FIELDS = (
    "records_as_object", "error_shape", "limit_body", "approval_touches_mtime", "listing_lag",
)  # fmt: skip
_SEED_FIELDS = (
    "document_type", "document_number", "document_date", "company_name", "tags", "net_amount",
    "gross_amount", "currency", "content_base64", "filename", "approval", "is_archived",
    "is_locked", "note",
)  # fmt: skip


def build_control(
    sim: GmiSimulator, faults: FaultInjector, counter: RequestCounter
) -> ControlSurface:
    surface = ControlSurface("gmi", faults, counter)

    def add_account(request: Request) -> Response:
        data = pick(read_json(request), _ACCOUNT_FIELDS)
        api_key = data.pop("api_key", None)
        if not api_key:
            raise ControlError(400, "api_key is required")
        sim.add_account(str(api_key), **data)
        return json_response({"api_key": api_key, "base_url": sim.base_url}, 201)

    def set_limits(request: Request, api_key: str) -> dict[str, Any]:
        sim.set_limits(api_key, **pick(read_json(request), _LIMIT_FIELDS))
        return {"ok": True}

    def account_state(request: Request, api_key: str) -> dict[str, Any]:
        return {"documents": sim.documents(api_key), "companies": sim.companies(api_key)}

    def seed(request: Request, api_key: str) -> Response:
        data = pick(read_json(request), _SEED_FIELDS)
        content = decode_content(data)
        data.pop("content_base64", None)
        uid = sim.seed_document(api_key, content=content, **data)
        return json_response(sim.document(api_key, uid), 201)

    def update(request: Request, api_key: str, uid: str) -> dict[str, Any]:
        sim.update_document(api_key, int(uid), **read_json(request))
        return sim.document(api_key, int(uid))

    def approve(request: Request, api_key: str, uid: str) -> dict[str, Any]:
        sim.approve(api_key, int(uid))
        return sim.document(api_key, int(uid))

    def set_tags(request: Request, api_key: str, uid: str) -> dict[str, Any]:
        tags = read_json(request).get("tags")
        if not isinstance(tags, list):
            raise ControlError(400, 'send {"tags": ["…", …]}')
        sim.set_tags(api_key, int(uid), [str(t) for t in tags])
        return sim.document(api_key, int(uid))

    def age(request: Request, api_key: str) -> dict[str, Any]:
        seconds = read_json(request).get("seconds")
        if not isinstance(seconds, int | float):
            raise ControlError(400, 'send {"seconds": N}')
        sim.age_documents(api_key, float(seconds))
        return {"ok": True}

    def set_options(request: Request) -> dict[str, Any]:
        sim.set_options(**pick(read_json(request), _OPTION_FIELDS))
        return vars(sim.behaviour)

    def set_variants(request: Request) -> dict[str, Any]:
        # Each server takes its own part of a variant; the other part goes nowhere.
        behaviour = GmiBehaviour(**vars(sim.behaviour))
        apply_variants(requested_variants(request), behaviour, BillomatBehaviour())
        sim.set_options(**vars(behaviour))
        return vars(sim.behaviour)

    def reset_quotas(request: Request) -> dict[str, Any]:
        sim.reset_quotas()
        return {"ok": True}

    base = "/accounts/{api_key}"
    surface.add("POST", "/accounts", add_account)
    surface.add("GET", base, account_state)
    surface.add("PUT", base + "/limits", set_limits)
    surface.add("POST", base + "/age", age)
    surface.add("GET", base + "/documents", lambda request, api_key: sim.documents(api_key))
    surface.add("POST", base + "/documents", seed)
    surface.add(
        "GET",
        base + "/documents/{uid}",
        lambda request, api_key, uid: sim.document(api_key, int(uid)),
    )
    surface.add("PATCH", base + "/documents/{uid}", update)
    surface.add("POST", base + "/documents/{uid}/approve", approve)
    surface.add("PUT", base + "/documents/{uid}/tags", set_tags)
    surface.add("GET", base + "/companies", lambda request, api_key: sim.companies(api_key))
    surface.add("GET", "/counts", lambda request: surface.counts(request.query_value("api_key")))
    surface.add("GET", "/options", lambda request: vars(sim.behaviour))
    surface.add("PUT", "/options", set_options)
    surface.add("POST", "/variants", set_variants)
    surface.add("DELETE", "/quotas", reset_quotas)
    return surface
