"""The ``/_sim/…`` control surface shared by both simulators: JSON in, JSON out, no auth.

Kept apart from the real API paths so nothing a product client sends can reach it by accident,
and so faults, quotas and request counts never apply to it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from simulators.counting import RequestCounter
from simulators.faults import FaultInjector
from simulators.http import Request, Response, Router

log = logging.getLogger(__name__)

PREFIX = "/_sim"


class ControlError(Exception):
    """A bad control request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_control_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def json_response(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False, indent=1, default=str).encode("utf-8")
    return Response(status, body, "application/json; charset=utf-8")


def read_json(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ControlError(400, f"invalid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ControlError(400, "the body must be a JSON object")
    return data


def requested_variants(request: Request) -> list[str]:
    """The variant names of a ``{"variants": [...]}`` control body (each server applies its
    own part of each)."""
    names = read_json(request).get("variants")
    if not isinstance(names, list):
        raise ControlError(400, 'send {"variants": ["NAME", …]}')
    return [str(n) for n in names]


def decode_content(data: Mapping[str, Any], key: str = "content_base64") -> bytes | None:
    """Optional file bytes in a control body, base64-encoded."""
    raw = data.get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ControlError(400, f"{key} is not valid base64") from e


def pick(data: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The keyword arguments a control method takes; unknown keys are an error, not ignored."""
    unknown = set(data) - set(allowed)
    if unknown:
        raise ControlError(400, f"unknown fields {sorted(unknown)}; allowed: {list(allowed)}")
    return dict(data)


ControlHandler = Callable[..., Any]


class ControlSurface:
    """Routes ``/_sim`` requests to handlers returning JSON-able values (or a Response)."""

    def __init__(self, name: str, faults: FaultInjector, counter: RequestCounter) -> None:
        self._router = Router()
        self._name = name
        self._faults = faults
        self._counter = counter
        self.add("GET", "/health", lambda request: {"ok": True, "simulator": name})
        self.add("GET", "/faults", lambda request: faults.describe())
        self.add("POST", "/faults", self._set_faults)
        self.add("DELETE", "/faults", self._clear_faults)
        self.add("POST", "/faults/fail-next", self._fail_next)
        self.add("POST", "/faults/drop-after-next-write", self._drop_after_next_write)
        self.add("DELETE", "/counts", self._reset_counts)

    def add(self, method: str, template: str, handler: ControlHandler) -> None:
        self._router.add(method, template, handler)

    def handle(self, request: Request) -> Response:
        match = self._router.match(request.method, request.path[len(PREFIX) :] or "/")
        if match is None:
            return json_response({"error": f"no control endpoint {request.path}"}, 404)
        if match.route is None:
            return json_response({"error": f"{request.method} not allowed here"}, 405)
        try:
            result = match.route.handler(request, **match.params)
        except ControlError as e:
            return json_response({"error": str(e)}, e.status)
        except LookupError as e:
            return json_response({"error": str(e).strip("'\"")}, 404)
        except (ValueError, TypeError) as e:
            return json_response({"error": str(e)}, 400)
        if isinstance(result, Response):
            return result
        return json_response(result)

    def _set_faults(self, request: Request) -> dict[str, Any]:
        allowed = ("error_rate", "html_502_rate", "latency", "drop_after_write_rate", "seed")
        self._faults.set_faults(**pick(read_json(request), allowed))
        return self._faults.describe()

    def _clear_faults(self, request: Request) -> dict[str, Any]:
        self._faults.clear()
        return self._faults.describe()

    def _fail_next(self, request: Request) -> dict[str, Any]:
        data = pick(read_json(request), ("n", "status", "html", "methods", "path_contains"))
        self._faults.fail_next(int(data.pop("n", 1)), **data)
        return self._faults.describe()

    def _drop_after_next_write(self, request: Request) -> dict[str, Any]:
        data = pick(read_json(request), ("n", "path_contains"))
        self._faults.drop_after_next_write(int(data.pop("n", 1)), **data)
        return self._faults.describe()

    def _reset_counts(self, request: Request) -> dict[str, Any]:
        self._counter.reset()
        return {"ok": True}

    def counts(self, owner: str | None) -> dict[str, Any]:
        return {
            "counts": self._counter.counts(owner),
            "rate_limited": self._counter.limited(owner),
        }
