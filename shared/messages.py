"""The message that travels through RabbitMQ: one document of one sync account, as JSON.

File bytes never travel in a message: the consumer fetches the current file, so a message stays
small and a replayed message uses today's file.

Anyone with broker access (or an older producer) can put anything on the bus, so a body is
decoded by exactly one function, ``decode_message``: it bounds the size and the nesting before
parsing, then checks the schema (types, ranges, known directions and kinds) with pydantic.
Whatever fails raises ``MalformedMessage`` with a one-line reason and the raw bytes — never
another exception.  Header values are read the same way (``header_int``, ``header_text``):
any AMQP value, of any type, is tolerated.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import pydantic_core
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.domain import BILLOMAT_KINDS, Direction

SCHEMA_VERSION = 1

# Headers we own.  The attempt count travels with the message through the retry queues.
ATTEMPT_HEADER = "x-belegsync-attempt"
FIRST_FAILURE_HEADER = "x-belegsync-first-failure"
LAST_FAILURE_HEADER = "x-belegsync-last-failure"
ERROR_CLASS_HEADER = "x-belegsync-error-class"
ERROR_HEADER = "x-belegsync-error"
ROUTING_KEY_HEADER = "x-belegsync-routing-key"
PARKED_AT_HEADER = "x-belegsync-parked-at"
# Set by RabbitMQ on a quorum queue's redelivery — but passed through from the sender on the
# first delivery, so it is believed only for a message the broker marks as redelivered.
DELIVERY_COUNT_HEADER = "x-delivery-count"

# A real message is well under 2 KiB (ids, a few short strings, four source attributes).
MAX_BODY_BYTES = 64 * 1024
# Our own messages nest two levels (the object and its details); anything deeper is garbage.
MAX_DEPTH = 8
# The ledger's ids are INTEGER columns: PostgreSQL's is 32 bits, and SQLite's must agree.
DB_INT_MAX = 2**31 - 1
MAX_DETAILS = 32
# Amounts travel as decimal strings; a huge exponent would make formatting them explode.
MAX_AMOUNT_DIGITS = 18
AMOUNT_DETAILS = frozenset({"total_net", "total_gross"})
KINDS: dict[Direction, frozenset[str]] = {
    Direction.EXPORT: frozenset({"documents"}),
    Direction.IMPORT: frozenset(BILLOMAT_KINDS),
}


class MalformedMessage(ValueError):
    """A message body that is not a belegsync message; ``raw`` keeps the bytes."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw

    @property
    def size(self) -> int:
        return len(self.raw)


def new_message_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class SyncMessage:
    """Everything a consumer needs to decide about a document without another list call."""

    direction: Direction
    account_id: int
    account: str
    document_id: int  # the ledger row
    source_kind: str  # "documents" for GMI, the Billomat resource (invoices, ...) for Billomat
    source_id: str
    detected_at: datetime
    message_id: str = field(default_factory=new_message_id)
    document_type: str | None = None
    document_number: str | None = None
    document_date: date | None = None
    # source attributes the consumer needs (amounts, currency, status): strings only
    details: dict[str, str] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def to_json(self) -> bytes:
        data: dict[str, Any] = asdict(self)
        data["direction"] = self.direction.value
        data["detected_at"] = self.detected_at.astimezone(UTC).isoformat()
        data["document_date"] = self.document_date.isoformat() if self.document_date else None
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SyncMessage:
        """The same as ``decode_message``."""
        return decode_message(raw)


# ---------------------------------------------------------------------------------------------
# The edge


def decode_message(body: object) -> SyncMessage:
    """A ``SyncMessage`` from a message body, or ``MalformedMessage`` saying in one line why not.

    The order matters: size and nesting are checked on the bytes before any parser runs, so a
    5 MB body or a 100,000-deep array costs a length check and a linear scan, nothing more.
    """
    raw = _as_bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedMessage(f"body of {len(raw)} bytes exceeds {MAX_BODY_BYTES} bytes", raw)
    if not raw.strip():
        raise MalformedMessage("empty body", raw)
    depth = _nesting_depth(raw, MAX_DEPTH)
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"JSON nested deeper than {MAX_DEPTH} levels", raw)
    try:
        data = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as e:  # invalid JSON or UTF-8; the parser has its own recursion limit
        raise MalformedMessage(f"body is not JSON: {_one_line(str(e))}", raw) from None
    if not isinstance(data, dict):
        raise MalformedMessage(f"body is a JSON {type(data).__name__}, not an object", raw)
    schema = data.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise MalformedMessage(f"unsupported schema version {_short_repr(schema)}", raw)
    try:
        wire = _Wire.model_validate(data)
    except ValidationError as e:
        raise MalformedMessage(_validation_reason(e), raw) from None
    return wire.to_message()


def _as_bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogateescape")
    raise MalformedMessage(f"body is a {type(body).__name__}, not bytes", b"")


# Strings are skipped (brackets inside them do not nest); what is left are the brackets.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def _nesting_depth(raw: bytes, limit: int) -> int:
    """How deep brackets nest, counting no further than ``limit + 1``."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return limit  # too few brackets to nest deeper: no scan (our own messages have two)
    depth = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return depth
        else:
            depth -= 1
    return depth


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def printable(text: str, limit: int = 200) -> str:
    """``text`` as one line of printable characters (for logs: an account name in a message
    may hold a line break or a terminal escape)."""
    return _one_line("".join(ch if ch.isprintable() else " " for ch in text[: limit * 4]), limit)


def _short_repr(value: object, limit: int = 60) -> str:
    return _one_line(repr(value), limit)


def _validation_reason(error: ValidationError) -> str:
    """The first few problems, by field, without echoing the input (it may be huge)."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(_one_line(str(p), 40) for p in item["loc"]) or "message"
        what = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {_one_line(what, 120)}")
    more = error.error_count() - len(parts)
    return "invalid message: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


# ---------------------------------------------------------------------------------------------
# The schema


def _text_only(value: object) -> object:
    """Dates travel as ISO text; a number would be read as a Unix timestamp."""
    if value is not None and not isinstance(value, str):
        raise ValueError("expected an ISO-8601 string")
    return value


def _empty_is_none(value: object) -> object:
    return None if value == "" else _text_only(value)


_PRINTABLE_ASCII = r"^[!-~]+$"
Id = Annotated[StrictInt, Field(ge=1, le=DB_INT_MAX)]
Timestamp = Annotated[datetime, BeforeValidator(_text_only)]
OptionalDate = Annotated[date | None, BeforeValidator(_empty_is_none)]
DetailKey = Annotated[StrictStr, Field(min_length=1, max_length=64)]
# Values are informational or checked below (amounts); a long Billomat title must still fit.
DetailValue = Annotated[StrictStr, Field(max_length=10_000)]


class _Wire(BaseModel):
    """The JSON schema of a message (version 1), with the database's bounds.

    Unknown keys are ignored so that a newer producer may add optional fields to version 1;
    everything known is checked.  String lengths are those of the ledger's columns.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    direction: Direction
    account_id: Id
    account: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    document_id: Id
    source_kind: Annotated[StrictStr, Field(min_length=1, max_length=30)]
    source_id: Annotated[StrictStr, Field(max_length=64, pattern=_PRINTABLE_ASCII)]
    detected_at: Timestamp
    message_id: Annotated[StrictStr, Field(max_length=32, pattern=_PRINTABLE_ASCII)]
    document_type: Annotated[StrictStr | None, Field(max_length=40)] = None
    document_number: Annotated[StrictStr | None, Field(max_length=200)] = None
    document_date: OptionalDate = None
    details: Annotated[dict[DetailKey, DetailValue] | None, Field(max_length=MAX_DETAILS)] = None

    @field_validator("direction", mode="before")
    @classmethod
    def _direction_text(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("expected 'export' or 'import'")
        return value

    @field_validator("detected_at")
    @classmethod
    def _aware_and_sane(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp has no time zone")
        if not 1970 <= value.year <= 9998:
            raise ValueError("timestamp out of range")
        return value

    @field_validator("details")
    @classmethod
    def _amounts_are_numbers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in AMOUNT_DETAILS & set(value or {}):
            assert value is not None
            if value[key] and not _is_amount(value[key]):
                raise ValueError(f"{key} is not a decimal amount")
        return value

    @model_validator(mode="after")
    def _kind_fits_direction(self) -> _Wire:
        if self.source_kind not in KINDS[self.direction]:
            raise ValueError(
                f"source_kind {self.source_kind[:30]!r} is not a kind of the {self.direction} "
                "direction"
            )
        return self

    def to_message(self) -> SyncMessage:
        return SyncMessage(
            direction=self.direction,
            account_id=self.account_id,
            account=self.account,
            document_id=self.document_id,
            source_kind=self.source_kind,
            source_id=self.source_id,
            detected_at=self.detected_at.astimezone(UTC),
            message_id=self.message_id,
            document_type=self.document_type,
            document_number=self.document_number,
            document_date=self.document_date,
            details=dict(self.details or {}),
        )


def _is_amount(text: str) -> bool:
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return False
    if not number.is_finite():
        return False
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    # digits left and right of the point, each bounded: no 1E+999999999
    return len(digits) + max(exponent, 0) <= MAX_AMOUNT_DIGITS and exponent >= -MAX_AMOUNT_DIGITS


# ---------------------------------------------------------------------------------------------
# Headers: any AMQP value (str, bytes, int, float, Decimal, bool, datetime, table, array, None)


def header_int(headers: Mapping[Any, Any], name: str, *, maximum: int = 1_000_000) -> int:
    """A non-negative count from a header, 0 when it is absent or not a sensible number."""
    value = headers.get(name)
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", "replace")
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 12:
            return 0
        return min(int(value), maximum)
    if isinstance(value, int):
        return min(max(value, 0), maximum)
    return 0  # floats, decimals, dates, tables: nobody counts like that


def header_text(headers: Mapping[Any, Any], name: str, *, limit: int = 300) -> str | None:
    """A header as one line of text, or None when it is absent."""
    value = headers.get(name)
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    return printable(value if isinstance(value, str) else repr(value), limit)


# Headers the broker or kombu read with a meaning, never carried over to a message we publish:
# RabbitMQ's own bookkeeping, and kombu's decompression switch.
_NOT_CARRIED = ("x-death", "x-first-death", "x-last-death", DELIVERY_COUNT_HEADER, "compression")
MAX_CARRIED_HEADERS = 32


def carry_headers(headers: Mapping[Any, Any]) -> dict[str, Any]:
    """The headers of a received message that may travel on when we publish it again.

    Plain scalars survive (an operator may want to know who sent a parked message); tables,
    arrays, bytes and oversized values are dropped, so a republish can never fail on them.
    """
    carried: dict[str, Any] = {}
    for key, value in headers.items():
        if len(carried) >= MAX_CARRIED_HEADERS:
            break
        if not isinstance(key, str) or not 0 < len(key) <= 128:
            continue
        if key.startswith(_NOT_CARRIED):
            continue
        plain_int = isinstance(value, int) and -(2**63) <= value < 2**63  # bool is an int too
        if plain_int or (isinstance(value, str) and len(value) <= 1000):
            carried[key] = value
    return carried
