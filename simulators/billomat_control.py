"""``/_sim/…`` on the Billomat simulator: :class:`BillomatSimulator`'s control methods over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulators.billomat_model import KINDS
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
    from simulators.billomat import BillomatSimulator

_TENANT_FIELDS = ("billomat_id", "api_key", "limit", "window_seconds", "apps", "app_limit")
_DOCUMENT_FIELDS = (
    "status", "number", "date", "client_name", "total_net", "total_gross", "currency_code",
    "title", "content_base64",
)  # fmt: skip
_OPTION_FIELDS = ("inbox_metadata", "sort_by_id", "max_upload_bytes")
_WEBHOOK_FIELDS = ("url", "billomat_id", "event", "kind", "id", "fmt", "auth")


def build_control(
    sim: BillomatSimulator, faults: FaultInjector, counter: RequestCounter
) -> ControlSurface:
    surface = ControlSurface("billomat", faults, counter)

    def add_tenant(request: Request) -> Response:
        data = pick(read_json(request), _TENANT_FIELDS)
        if not data.get("billomat_id") or not data.get("api_key"):
            raise ControlError(400, "billomat_id and api_key are required")
        billomat_id, api_key = str(data.pop("billomat_id")), str(data.pop("api_key"))
        sim.add_tenant(billomat_id, api_key, **data)
        return json_response({"billomat_id": billomat_id, "api_url": sim.api_url(billomat_id)}, 201)

    def tenant_state(request: Request, billomat_id: str) -> dict[str, Any]:
        return {
            "billomat_id": billomat_id,
            "api_url": sim.api_url(billomat_id),
            "clients": sim.clients(billomat_id),
            "documents": {kind: sim.documents(billomat_id, kind) for kind in KINDS},
            "inbox": sim.inbox(billomat_id),
        }

    def add_client(request: Request, billomat_id: str) -> Response:
        data = read_json(request)
        name = data.pop("name", None)
        if not name:
            raise ControlError(400, "name is required")
        client_id = sim.add_client(billomat_id, str(name), **{k: str(v) for k, v in data.items()})
        return json_response({"id": client_id}, 201)

    def add_document(request: Request, billomat_id: str, kind: str) -> Response:
        data = pick(read_json(request), _DOCUMENT_FIELDS)
        content = decode_content(data)
        data.pop("content_base64", None)
        doc_id = sim.add_document(billomat_id, kind, content=content, **data)
        return json_response(sim.document(billomat_id, kind, doc_id), 201)

    def update_document(
        request: Request, billomat_id: str, kind: str, doc_id: str
    ) -> dict[str, Any]:
        sim.update_document(billomat_id, kind, int(doc_id), **read_json(request))
        return sim.document(billomat_id, kind, int(doc_id))

    def complete(request: Request, billomat_id: str, kind: str, doc_id: str) -> dict[str, Any]:
        sim.complete(billomat_id, kind, int(doc_id))
        return sim.document(billomat_id, kind, int(doc_id))

    def send_webhook(request: Request) -> dict[str, Any]:
        data = pick(read_json(request), _WEBHOOK_FIELDS)
        auth = data.pop("auth", None)
        url = data.pop("url")
        status = sim.send_webhook(
            str(url),
            billomat_id=str(data["billomat_id"]),
            event=str(data["event"]),
            kind=str(data["kind"]),
            id=int(data["id"]),
            fmt=str(data.get("fmt", "json")),
            auth=(str(auth[0]), str(auth[1])) if auth else None,
        )
        return {"status": status}

    def reset_quotas(request: Request) -> dict[str, Any]:
        sim.reset_quotas()
        return {"ok": True}

    def set_options(request: Request) -> dict[str, Any]:
        sim.set_options(**pick(read_json(request), _OPTION_FIELDS))
        return vars(sim.behaviour)

    def set_variants(request: Request) -> dict[str, Any]:
        # Each server takes its own part of a variant; the other part goes nowhere.
        behaviour = BillomatBehaviour(**vars(sim.behaviour))
        apply_variants(requested_variants(request), GmiBehaviour(), behaviour)
        sim.set_options(
            inbox_metadata=behaviour.inbox_metadata,
            sort_by_id=behaviour.sort_by_id,
            max_upload_bytes=behaviour.max_upload_bytes or "unlimited",
        )
        return vars(sim.behaviour)

    base = "/tenants/{billomat_id}"
    surface.add("POST", "/tenants", add_tenant)
    surface.add("GET", base, tenant_state)
    surface.add("POST", base + "/clients", add_client)
    surface.add("GET", base + "/clients", lambda request, billomat_id: sim.clients(billomat_id))
    surface.add("GET", base + "/inbox", lambda request, billomat_id: sim.inbox(billomat_id))
    surface.add(
        "GET",
        base + "/documents/{kind}",
        lambda request, billomat_id, kind: sim.documents(billomat_id, kind),
    )
    surface.add("POST", base + "/documents/{kind}", add_document)
    surface.add("PATCH", base + "/documents/{kind}/{doc_id}", update_document)
    surface.add("POST", base + "/documents/{kind}/{doc_id}/complete", complete)
    surface.add(
        "GET",
        "/counts",
        lambda request: surface.counts(request.query_value("billomat_id")),
    )
    surface.add("DELETE", "/quotas", reset_quotas)
    surface.add("GET", "/options", lambda request: vars(sim.behaviour))
    surface.add("PUT", "/options", set_options)
    surface.add("POST", "/variants", set_variants)
    surface.add("POST", "/webhooks", send_webhook)
    return surface
