"""One account's settings as an operator gave them, and the rules they must pass.

Shared by every front end (command line, web console) through ``AccountService``; each refusal
names its field (``UsageError.field``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from shared.db import SyncAccount
from shared.domain import (
    MAX_NOTE_CHARS,
    Direction,
    check_account_name,
    check_billomat_id,
    check_date_range,
    check_document_kinds,
    check_document_types,
    check_interval,
    check_tags,
    check_text,
)
from shared.errors import UsageError


@dataclass
class AccountChanges:
    """Settings given on the command line; None means "leave as it is"."""

    name: str | None = None
    gmi_api_key: str | None = None
    billomat_id: str | None = None
    billomat_api_key: str | None = None
    interval_seconds: int | None = None
    note: str | None = None
    document_types: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    require_approval: bool | None = None
    archive_after_transfer: bool | None = None
    date_from: date | None = None
    date_to: date | None = None
    clear_date_from: bool = False
    clear_date_to: bool = False
    default_document_type: str | None = None
    default_tags: Sequence[str] | None = None
    default_company: str | None = None
    document_kinds: Sequence[str] | None = None
    webhook_username: str | None = None
    webhook_password: str | None = None


EXPORT_ONLY = (
    "document_types",
    "tags",
    "require_approval",
    "archive_after_transfer",
    "date_from",
    "date_to",
)
IMPORT_ONLY = (
    "default_document_type",
    "default_tags",
    "default_company",
    "document_kinds",
    "webhook_username",
    "webhook_password",
)


def apply_changes(account: SyncAccount, changes: AccountChanges) -> None:
    """Every change but the secrets, each checked by its rule (InvalidValue names the field)."""
    if changes.name is not None:
        account.name = check_account_name(changes.name)
    if changes.billomat_id is not None:
        account.billomat_id = check_billomat_id(changes.billomat_id)
    if changes.interval_seconds is not None:
        account.interval_seconds = check_interval(changes.interval_seconds)
    if changes.note is not None:
        account.note = check_text(changes.note, field="note", limit=MAX_NOTE_CHARS)
    if changes.document_types is not None:
        account.document_types = list(check_document_types(changes.document_types))
    if changes.tags is not None:
        account.tags = list(check_tags(changes.tags))
    if changes.require_approval is not None:
        account.require_approval = changes.require_approval
    if changes.archive_after_transfer is not None:
        account.archive_after_transfer = changes.archive_after_transfer
    if changes.date_from is not None or changes.clear_date_from:
        account.date_from = changes.date_from
    if changes.date_to is not None or changes.clear_date_to:
        account.date_to = changes.date_to
    check_date_range(account.date_from, account.date_to)
    if changes.default_document_type is not None:
        (account.default_document_type,) = check_document_types(
            [changes.default_document_type], field="default_document_type"
        )
    if changes.default_tags is not None:
        account.default_tags = list(check_tags(changes.default_tags, field="default_tags"))
    if changes.default_company is not None:
        company = check_text(changes.default_company.strip(), field="default_company", limit=200)
        if company != account.default_company:
            account.default_company_uid = None
        account.default_company = company or None
    if changes.document_kinds is not None:
        account.document_kinds = list(check_document_kinds(changes.document_kinds))
    if changes.webhook_username is not None:
        user = check_text(changes.webhook_username, field="webhook_username", limit=100)
        account.webhook_username = user or None


def check_key(key: str, what: str, field: str) -> str:
    if not key.strip() or any(ch.isspace() for ch in key) or len(key) > 500:
        raise UsageError(f"invalid {what} API key: it must be one word without spaces", field=field)
    return key


def check_applicable(direction: Direction, changes: AccountChanges) -> None:
    wrong = EXPORT_ONLY if direction is Direction.IMPORT else IMPORT_ONLY
    for field_name in wrong:
        if getattr(changes, field_name) is not None:
            option = "--" + field_name.replace("_", "-")
            raise UsageError(
                f"{option} applies to {_other(direction)} accounts only", field=field_name
            )
    if direction is Direction.IMPORT and (changes.clear_date_from or changes.clear_date_to):
        raise UsageError("date ranges apply to export accounts only", field="date_from")


def _other(direction: Direction) -> str:
    return "import" if direction is Direction.EXPORT else "export"
