"""The account form: browser fields to :class:`AccountChanges`, and errors back to fields.

Only the parsing of strings lives here, with the same functions the CLI parses with
(``parse_duration``, ``parse_date``, ``parse_list``); whether a value is allowed is decided by
:class:`AccountService` alone, and its ``UsageError.field`` says which field to mark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from shared.accounts import AccountChanges
from shared.db import SyncAccount
from shared.domain import (
    BILLOMAT_KINDS,
    DEFAULT_IMPORT_DOCUMENT_TYPE,
    DEFAULT_IMPORT_KINDS,
    GMI_DOCUMENT_TYPES,
    Direction,
    format_duration,
    parse_date,
    parse_duration,
    parse_list,
)

COMMON = ("name", "billomat_id", "interval", "note", "gmi_api_key", "billomat_api_key")
EXPORT = ("document_types", "tags", "require_approval", "archive_after_transfer", "date_from",
          "date_to")  # fmt: skip
IMPORT = ("default_document_type", "default_tags", "default_company", "document_kinds",
          "webhook_username", "webhook_password")  # fmt: skip
SECRETS = ("gmi_api_key", "billomat_api_key", "webhook_password")
# How the service (or the CLI's option names) may name a field, to the form's name for it.
ALIASES = {
    "interval_seconds": "interval",
    "rename": "name",
    "date_from": "date_from",
    "clear_date_from": "date_from",
    "clear_date_to": "date_to",
}


def fields_of(direction: Direction) -> tuple[str, ...]:
    return COMMON + (EXPORT if direction is Direction.EXPORT else IMPORT)


def form_field(name: str | None, direction: Direction) -> str | None:
    """The form field an error names (``--billomat-id``, ``interval_seconds`` …), or None."""
    if not name:
        return None
    key = name.strip().lstrip("-").replace("-", "_")
    key = ALIASES.get(key, key)
    return key if key in fields_of(direction) else None


@dataclass
class AccountForm:
    """What the browser sent (secrets excluded when shown again) and the errors per field."""

    direction: Direction
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        """The values to put back into the form: never an API key or password."""
        return {k: v for k, v in self.values.items() if k not in SECRETS}

    @classmethod
    def blank(cls, direction: Direction) -> AccountForm:
        values: dict[str, Any] = {
            "interval": "15m",
            "document_types": [],
            "tags": "",
            "require_approval": False,
            "archive_after_transfer": False,
        }
        if direction is Direction.IMPORT:
            values = {
                "interval": "15m",
                "default_document_type": DEFAULT_IMPORT_DOCUMENT_TYPE,
                "document_kinds": list(DEFAULT_IMPORT_KINDS),
                "default_tags": "",
            }
        return cls(direction, values)

    @classmethod
    def of_account(cls, account: SyncAccount) -> AccountForm:
        direction = Direction(account.direction)
        values: dict[str, Any] = {
            "name": account.name,
            "billomat_id": account.billomat_id,
            "interval": format_duration(account.interval_seconds),
            "note": account.note or "",
        }
        if direction is Direction.EXPORT:
            values.update(
                document_types=list(account.document_types or []),
                tags=", ".join(account.tags or []),
                require_approval=account.require_approval,
                archive_after_transfer=account.archive_after_transfer,
                date_from=account.date_from.isoformat() if account.date_from else "",
                date_to=account.date_to.isoformat() if account.date_to else "",
            )
        else:
            values.update(
                default_document_type=account.default_document_type or DEFAULT_IMPORT_DOCUMENT_TYPE,
                default_tags=", ".join(account.default_tags or []),
                default_company=account.default_company or "",
                document_kinds=list(account.document_kinds or DEFAULT_IMPORT_KINDS),
                webhook_username=account.webhook_username or "",
            )
        return cls(direction, values)

    @classmethod
    def read(cls, direction: Direction, form: FormData) -> AccountForm:
        values: dict[str, Any] = {}
        for name in fields_of(direction):
            if name in ("document_types", "document_kinds"):
                values[name] = [str(v) for v in form.getlist(name)]
            elif name in ("require_approval", "archive_after_transfer"):
                values[name] = form.get(name) == "on"
            else:
                raw = form.get(name)
                values[name] = raw.strip() if isinstance(raw, str) else ""
        return cls(direction, values)

    # -- to AccountChanges ---------------------------------------------------------------------

    def changes(self, current: Mapping[str, Any] | None = None) -> AccountChanges:
        """The changes the form asks for; with ``current`` only what differs from it.

        Parse errors are collected in ``errors`` (next to their fields); unchanged settings
        stay None, so saving a page untouched changes nothing (and resets no poll cursor).
        """
        v = self.values
        adding = current is None
        base = current or {}

        def norm(name: str, value: Any) -> Any:
            if name in ("tags", "default_tags"):
                return parse_list(value)
            if isinstance(value, list):
                return sorted(value)
            return value

        def differs(name: str) -> bool:
            return adding or norm(name, v.get(name)) != norm(name, base.get(name))

        changes = AccountChanges()
        if adding:
            for name in ("name", "billomat_id", "gmi_api_key", "billomat_api_key"):
                if not v.get(name):
                    self.errors[name] = "This field is required."
        elif v.get("name") and differs("name"):
            changes.name = v["name"]
        if v.get("billomat_id") and (adding or differs("billomat_id")):
            changes.billomat_id = v["billomat_id"]
        for secret in SECRETS:
            if v.get(secret):  # empty: keep what is stored
                setattr(changes, secret, v[secret])
        if differs("interval"):
            try:
                changes.interval_seconds = parse_duration(v.get("interval") or "")
            except ValueError as e:
                self.errors["interval"] = str(e)
        if differs("note"):
            changes.note = v.get("note") or ""
        if self.direction is Direction.EXPORT:
            if differs("document_types"):
                changes.document_types = tuple(v.get("document_types") or ())
            if differs("tags"):
                changes.tags = parse_list(v.get("tags"))
            for flag in ("require_approval", "archive_after_transfer"):
                if differs(flag):
                    setattr(changes, flag, bool(v.get(flag)))
            for end in ("date_from", "date_to"):
                if not differs(end):
                    continue
                text = v.get(end) or ""
                if not text:
                    setattr(changes, f"clear_{end}", not adding)
                    continue
                try:
                    setattr(changes, end, parse_date(text, end.replace("_", " ")))
                except ValueError as e:
                    self.errors[end] = str(e)
        else:
            if differs("default_document_type"):
                changes.default_document_type = v.get("default_document_type") or None
            if differs("default_tags"):
                changes.default_tags = parse_list(v.get("default_tags"))
            if differs("default_company"):
                changes.default_company = v.get("default_company") or ""
            if differs("document_kinds"):
                changes.document_kinds = tuple(v.get("document_kinds") or ())
            if differs("webhook_username") and (v.get("webhook_username") or not adding):
                changes.webhook_username = v.get("webhook_username") or ""
        return changes

    def fail(self, error: Exception) -> None:
        """Put a UsageError next to its field, or at the top when it names none."""
        target = form_field(getattr(error, "field", None), self.direction)
        if target is not None:
            self.errors[target] = str(error)
        else:
            self.general.append(str(error))


CHOICES = {
    "document_types": GMI_DOCUMENT_TYPES,
    "document_kinds": BILLOMAT_KINDS,
}
