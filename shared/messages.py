"""The message that travels through RabbitMQ: one document of one sync account, as JSON.

File bytes never travel in a message: the consumer fetches the current file, so a message stays
small and a replayed message uses today's file.  Decoding failures keep the raw body.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shared.domain import Direction

SCHEMA_VERSION = 1

# Headers we own.  The attempt count travels with the message through the retry queues.
ATTEMPT_HEADER = "x-belegsync-attempt"
FIRST_FAILURE_HEADER = "x-belegsync-first-failure"
LAST_FAILURE_HEADER = "x-belegsync-last-failure"
ERROR_CLASS_HEADER = "x-belegsync-error-class"
ERROR_HEADER = "x-belegsync-error"
ROUTING_KEY_HEADER = "x-belegsync-routing-key"
PARKED_AT_HEADER = "x-belegsync-parked-at"


class MalformedMessage(ValueError):
    """A message body that is not a belegsync message; ``raw`` keeps the bytes."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


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
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MalformedMessage(f"body is not JSON: {e}", raw) from e
        if not isinstance(data, dict):
            raise MalformedMessage("body is not a JSON object", raw)
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise MalformedMessage(f"unsupported schema version {schema!r}", raw)
        try:
            return cls(
                direction=Direction(data["direction"]),
                account_id=_int(data["account_id"]),
                account=_str(data["account"]),
                document_id=_int(data["document_id"]),
                source_kind=_str(data["source_kind"]),
                source_id=_str(data["source_id"]),
                detected_at=_datetime(data["detected_at"]),
                message_id=_str(data["message_id"]),
                document_type=_opt_str(data.get("document_type")),
                document_number=_opt_str(data.get("document_number")),
                document_date=(
                    date.fromisoformat(data["document_date"]) if data.get("document_date") else None
                ),
                details=_details(data.get("details")),
            )
        except KeyError as e:
            raise MalformedMessage(f"field {e.args[0]!r} is missing", raw) from e
        except (TypeError, ValueError) as e:
            raise MalformedMessage(f"invalid field value: {e}", raw) from e


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _details(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError("details must map strings to strings")
    return dict(value)


def _datetime(value: Any) -> datetime:
    parsed = datetime.fromisoformat(_str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed
