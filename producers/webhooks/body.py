"""Billomat webhook bodies: JSON or XML, both read into the same (root, record) shape, and the
event name from the request, made safe to log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from shared.billomat import KINDS

MAX_XML_DEPTH = 32


# Actions after which the record may hold a new or newly finished document.  "send",
# "delete" and the rest never make a document importable that was not importable before.
RECORDING_ACTIONS = frozenset({"create", "update", "status"})
# Event resources use underscores (credit_note.create); bodies and kinds use dashes.
KIND_BY_RESOURCE: Mapping[str, str] = {
    spec.singular.replace("-", "_"): kind for kind, spec in KINDS.items()
}
_EVENT_RE = re.compile(r"^([a-z][a-z0-9_-]*)\.([a-z][a-z0-9_]*)$")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


class BodyError(ValueError):
    """The webhook body cannot be read; the message is the reason the 400 answer gives."""


# ---------------------------------------------------------------------------------------------
# Bodies: {"invoice": {...}} or <invoice>...</invoice>, both to the same (root, record) shape


def parse_body(body: bytes, content_type: str | None) -> tuple[str, Mapping[str, Any]]:
    """The body's single root name and its record, from JSON or XML."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return _single_root(_json_body(body))
    if media in ("application/xml", "text/xml") or media.endswith("+xml"):
        return _single_root(xml_to_dict(body))
    if not media:
        # Billomat always declares its format; a hand-made request may not, and the first
        # character tells the two apart without guessing anything else.
        start = body.lstrip()[:1]
        if start == b"{":
            return _single_root(_json_body(body))
        if start == b"<":
            return _single_root(xml_to_dict(body))
    raise BodyError(
        f"unsupported Content-Type {media or '(none)'!r}: send application/json or application/xml"
    )


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise BodyError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError:
        raise BodyError("malformed JSON: not UTF-8") from None
    except RecursionError:
        raise BodyError("malformed JSON: nested too deeply") from None


def xml_to_dict(body: bytes) -> dict[str, Any]:
    """``<invoice><id>7</id>…</invoice>`` → ``{"invoice": {"id": "7", …}}``, as Billomat's JSON.

    Leaves become their text, elements with children dicts, repeated children lists;
    attributes (``type="integer"``) carry nothing the JSON form has, so they are dropped.
    Expat is driven directly so that a DOCTYPE or entity declaration, in whatever encoding,
    stops the parse before any entity is expanded.
    """
    parser = expat.ParserCreate()
    # (tag, children, text pieces) of every open element; iterative, so depth cannot recurse.
    stack: list[tuple[str, dict[str, Any], list[str]]] = []
    result: dict[str, Any] = {}

    def start(tag: str, _attributes: dict[str, str]) -> None:
        if len(stack) >= MAX_XML_DEPTH:
            raise BodyError(f"malformed XML: nested deeper than {MAX_XML_DEPTH} elements")
        stack.append((tag, {}, []))

    def end(_tag: str) -> None:
        tag, children, text = stack.pop()
        value: Any = children if children else "".join(text)
        parent = stack[-1][1] if stack else result
        if tag not in parent:
            parent[tag] = value
        elif isinstance(parent[tag], list):
            parent[tag].append(value)
        else:
            # Repeated elements become a list, as in Billomat's JSON for several items.
            parent[tag] = [parent[tag], value]

    def text(data: str) -> None:
        if stack:
            stack[-1][2].append(data)

    def refuse(*_args: object) -> None:
        raise BodyError("XML with a DOCTYPE or entity declarations is not accepted")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(body, True)
    except expat.ExpatError as e:
        reason = expat.ErrorString(e.code)
        raise BodyError(f"malformed XML: {reason} at line {e.lineno} column {e.offset}") from None
    return result


def _single_root(parsed: Any) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(parsed, Mapping):
        raise BodyError('the body must be one object such as {"invoice": {...}}')
    if len(parsed) != 1:
        keys = ", ".join(sorted(map(str, parsed))) or "none"
        raise BodyError(f"the body must have exactly one top-level key, not {keys}")
    ((root, record),) = parsed.items()
    if not isinstance(record, Mapping):
        raise BodyError(f"{root!r} in the body is not an object")
    return str(root), record


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Event:
    resource: str  # invoice, credit_note, client …
    action: str  # create, update, status, send, delete …

    @classmethod
    def parse(cls, text: str | None) -> Event:
        if not text:
            raise BodyError("missing X-Billomat-Webhook-Event header")
        match = _EVENT_RE.match(text.strip().lower())
        if match is None:
            raise BodyError(
                f"X-Billomat-Webhook-Event {clean(text)!r} is not of the form resource.action"
            )
        return cls(match.group(1).replace("-", "_"), match.group(2))

    @property
    def kind(self) -> str | None:
        """The Billomat document kind (``invoices`` …), None for other resources."""
        return KIND_BY_RESOURCE.get(self.resource)

    def __str__(self) -> str:
        return f"{self.resource}.{self.action}"


def clean(text: str, limit: int = 120) -> str:
    """Caller-supplied text made safe for a log line or an answer: one line, bounded."""
    return _UNPRINTABLE.sub("?", text)[:limit]
