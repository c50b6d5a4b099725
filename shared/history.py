"""The account history: who changed which setting of a sync account, and when.

Written in the same transaction as the change itself, so a change without its history entry
(or the other way round) cannot exist.  Secrets appear only as "changed", never with a value.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from shared.db import AccountEvent, SyncAccount, utcnow
from shared.domain import format_duration

# Settings shown with their values, in the order people read them.
SHOWN = (
    "name",
    "billomat_id",
    "interval_seconds",
    "note",
    "document_types",
    "tags",
    "require_approval",
    "archive_after_transfer",
    "date_from",
    "date_to",
    "default_document_type",
    "default_tags",
    "default_company",
    "document_kinds",
    "webhook_username",
)
# Encrypted settings: only the fact that they changed is ever written down.
SECRET = {
    "gmi_api_key_enc": "GMI API key",
    "billomat_api_key_enc": "Billomat API key",
    "webhook_password_enc": "webhook password",
}


# Settings of the other direction are not the account's; they stay out of its history.
NOT_FOR = {
    "export": {"default_document_type", "default_tags", "default_company", "document_kinds",
               "webhook_username", "webhook_password_enc"},
    "import": {"document_types", "tags", "require_approval", "archive_after_transfer",
               "date_from", "date_to"},
}  # fmt: skip


def snapshot(account: SyncAccount) -> dict[str, Any]:
    """The account's settings as plain values (secrets as their ciphertext, for comparing)."""
    skip = NOT_FOR.get(account.direction, set())
    return {
        name: _plain(getattr(account, name, None)) for name in (*SHOWN, *SECRET) if name not in skip
    }


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _show(name: str, value: Any) -> str:
    if value is None or value == [] or value == "":
        return "–"
    if name == "interval_seconds":
        return format_duration(int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def differences(before: dict[str, Any], after: dict[str, Any]) -> str:
    """``interval: 15m → 30m; GMI API key changed`` — empty when nothing changed."""
    parts = []
    for name in SHOWN:
        if before.get(name) != after.get(name):
            label = "interval" if name == "interval_seconds" else name.replace("_", " ")
            old, new = _show(name, before.get(name)), _show(name, after.get(name))
            parts.append(f"{label}: {old} → {new}")
    parts += [
        f"{label} changed" for name, label in SECRET.items() if before.get(name) != after.get(name)
    ]
    return "; ".join(parts)


def record(
    session: Session, account: SyncAccount, actor: str, action: str, details: str = ""
) -> None:
    session.add(
        AccountEvent(
            account_id=account.id,
            account_name=account.name,
            at=utcnow(),
            actor=actor[:100],
            action=action,
            details=details[:4000],
        )
    )
