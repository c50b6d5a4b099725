"""Sync accounts: create, change, list and remove them; keys go in encrypted, come out masked."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.crypto import SecretBox, mask
from shared.db import Database, PollState, SyncAccount
from shared.domain import (
    DEFAULT_IMPORT_DOCUMENT_TYPE,
    DEFAULT_IMPORT_KINDS,
    Direction,
    ExportRules,
    ImportRules,
    check_billomat_id,
    check_date_range,
    check_document_kinds,
    check_document_types,
    format_duration,
)
from shared.errors import UsageError
from shared.history import differences, snapshot
from shared.history import record as record_history

MIN_INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class Credentials:
    """Decrypted keys of one account; kept out of reprs."""

    gmi_api_key: str
    billomat_api_key: str

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"


def key_fingerprint(api_key: str) -> str:
    """A stable, non-reversible name for an API key (quota bookkeeping, never the key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


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


def export_rules(account: SyncAccount) -> ExportRules:
    return ExportRules(
        document_types=frozenset(account.document_types or ()),
        tags=frozenset(account.tags or ()),
        require_approval=account.require_approval,
        archive_after_transfer=account.archive_after_transfer,
        date_from=account.date_from,
        date_to=account.date_to,
    )


def import_rules(account: SyncAccount) -> ImportRules:
    return ImportRules(
        document_kinds=tuple(account.document_kinds or DEFAULT_IMPORT_KINDS),
        default_document_type=account.default_document_type or DEFAULT_IMPORT_DOCUMENT_TYPE,
        default_tags=tuple(account.default_tags or ()),
        default_company=account.default_company,
    )


class AccountService:
    """Use cases around sync accounts.  Raises UsageError for anything the user got wrong."""

    def __init__(self, db: Database, secret_box: Callable[[], SecretBox]) -> None:
        self._db = db
        self._box_factory = secret_box
        self._box: SecretBox | None = None

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = self._box_factory()
        return self._box

    # -- queries -------------------------------------------------------------------------------

    def get(self, session: Session, name: str) -> SyncAccount:
        account = session.scalar(select(SyncAccount).where(SyncAccount.name == name))
        if account is None:
            raise UsageError(f"unknown sync account {name!r} (see `belegsync accounts list`)")
        return account

    def list(self) -> list[SyncAccount]:
        with self._db.session() as session:
            return list(session.scalars(select(SyncAccount).order_by(SyncAccount.name)))

    def credentials(self, account: SyncAccount) -> Credentials:
        return Credentials(
            gmi_api_key=self.box.decrypt(account.gmi_api_key_enc),
            billomat_api_key=self.box.decrypt(account.billomat_api_key_enc),
        )

    def webhook_password(self, account: SyncAccount) -> str | None:
        if account.webhook_password_enc is None:
            return None
        return self.box.decrypt(account.webhook_password_enc)

    # -- commands ------------------------------------------------------------------------------

    # ``actor`` (the console user's name): when given, the change is written to the account
    # history in the same transaction.

    def add(
        self,
        direction: Direction,
        name: str,
        changes: AccountChanges,
        *,
        actor: str | None = None,
    ) -> SyncAccount:
        _check_name(name)
        _check_applicable(direction, changes)
        if not changes.gmi_api_key:
            raise UsageError("a GMI API key is required: --gmi-api-key or BELEGSYNC_GMI_API_KEY")
        if not changes.billomat_api_key:
            raise UsageError(
                "a Billomat API key is required: --billomat-api-key or BELEGSYNC_BILLOMAT_API_KEY"
            )
        if changes.billomat_id is None:
            raise UsageError("a Billomat ID is required: --billomat-id")
        account = SyncAccount(
            name=name,
            direction=direction.value,
            enabled=True,
            interval_seconds=15 * 60,
            note="",
            document_types=[],
            tags=[],
            require_approval=False,
            archive_after_transfer=False,
            default_tags=[],
            document_kinds=list(DEFAULT_IMPORT_KINDS) if direction is Direction.IMPORT else [],
            default_document_type=(
                DEFAULT_IMPORT_DOCUMENT_TYPE if direction is Direction.IMPORT else None
            ),
        )
        with self._db.session() as session:
            if session.scalar(select(SyncAccount.id).where(SyncAccount.name == name)) is not None:
                raise UsageError(f"a sync account named {name!r} already exists")
            self._apply(account, changes)
            session.add(account)
            session.flush()
            session.add(PollState(account_id=account.id, cursor={}, polls=0))
            if actor is not None:
                details = differences({}, snapshot(account)).replace("– → ", "")
                record_history(session, account, actor, "added", f"{direction.value}; {details}")
        return account

    def update(
        self, name: str, changes: AccountChanges, *, actor: str | None = None
    ) -> SyncAccount:
        with self._db.session() as session:
            account = self.get(session, name)
            before = snapshot(account)
            direction = Direction(account.direction)
            _check_applicable(direction, changes)
            if changes.name is not None and changes.name != name:
                _check_name(changes.name)
                taken = session.scalar(
                    select(SyncAccount.id).where(SyncAccount.name == changes.name)
                )
                if taken is not None:
                    raise UsageError(f"a sync account named {changes.name!r} already exists")
            self._apply(account, changes)
            filters_changed = any(
                getattr(changes, f) is not None
                for f in ("document_types", "tags", "date_from", "date_to", "document_kinds")
            ) or (changes.clear_date_from or changes.clear_date_to)
            if filters_changed and account.poll_state is not None:
                # Wider filters may admit documents the cursor has already passed.
                account.poll_state.cursor = {}
                account.poll_state.next_due_at = None
            account.updated_at = datetime.now(UTC)
            changed = differences(before, snapshot(account))
            if actor is not None and changed:
                record_history(session, account, actor, "updated", changed)
            return account

    def set_enabled(self, name: str, enabled: bool, *, actor: str | None = None) -> SyncAccount:
        with self._db.session() as session:
            account = self.get(session, name)
            if actor is not None and (enabled != account.enabled or account.attention_reason):
                record_history(session, account, actor, "resumed" if enabled else "paused")
            account.enabled = enabled
            if enabled:
                account.attention_reason = None
                if account.poll_state is not None:
                    account.poll_state.next_due_at = None  # poll soon after resuming
            account.updated_at = datetime.now(UTC)
            return account

    def remove(self, name: str, *, actor: str | None = None) -> None:
        with self._db.session() as session:
            account = self.get(session, name)
            if actor is not None:
                record_history(session, account, actor, "removed")
            session.delete(account)

    # -- helpers -------------------------------------------------------------------------------

    def _apply(self, account: SyncAccount, changes: AccountChanges) -> None:
        try:
            if changes.name is not None:
                account.name = changes.name
            if changes.billomat_id is not None:
                account.billomat_id = check_billomat_id(changes.billomat_id)
            if changes.interval_seconds is not None:
                if changes.interval_seconds < MIN_INTERVAL_SECONDS:
                    raise ValueError(
                        f"interval {format_duration(changes.interval_seconds)} is too short: "
                        "at least 1m"
                    )
                account.interval_seconds = changes.interval_seconds
            if changes.note is not None:
                account.note = changes.note
            if changes.document_types is not None:
                account.document_types = list(check_document_types(changes.document_types))
            if changes.tags is not None:
                account.tags = list(dict.fromkeys(changes.tags))
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
                    [changes.default_document_type]
                )
            if changes.default_tags is not None:
                account.default_tags = list(dict.fromkeys(changes.default_tags))
            if changes.default_company is not None:
                if changes.default_company != account.default_company:
                    account.default_company_uid = None
                account.default_company = changes.default_company or None
            if changes.document_kinds is not None:
                kinds = check_document_kinds(changes.document_kinds)
                if not kinds:
                    raise ValueError("--document-kinds needs at least one kind")
                account.document_kinds = list(kinds)
            if changes.webhook_username is not None:
                account.webhook_username = changes.webhook_username or None
        except ValueError as e:
            raise UsageError(str(e)) from None
        if (
            account.webhook_username
            and changes.webhook_password is None
            and account.webhook_password_enc is None
        ):
            raise UsageError("--webhook-username needs --webhook-password too")
        # Encrypt last: only valid input needs the secret key (and may create its file).
        if changes.gmi_api_key is not None:
            account.gmi_api_key_enc = self.box.encrypt(_check_key(changes.gmi_api_key, "GMI"))
        if changes.billomat_api_key is not None:
            account.billomat_api_key_enc = self.box.encrypt(
                _check_key(changes.billomat_api_key, "Billomat")
            )
        if changes.webhook_password is not None:
            account.webhook_password_enc = (
                self.box.encrypt(changes.webhook_password) if changes.webhook_password else None
            )

    def describe(self, account: SyncAccount, *, with_keys: bool) -> dict[str, Any]:
        """A JSON-able view of an account; keys only ever masked."""
        view: dict[str, Any] = {
            "name": account.name,
            "direction": account.direction,
            "enabled": account.enabled,
            "billomat_id": account.billomat_id,
            "interval": format_duration(account.interval_seconds),
            "note": account.note,
        }
        if with_keys:
            creds = self.credentials(account)
            view["gmi_api_key"] = mask(creds.gmi_api_key)
            view["billomat_api_key"] = mask(creds.billomat_api_key)
        if account.direction == Direction.EXPORT:
            view.update(
                document_types=list(account.document_types or []),
                tags=list(account.tags or []),
                require_approval=account.require_approval,
                archive_after_transfer=account.archive_after_transfer,
                date_from=account.date_from.isoformat() if account.date_from else None,
                date_to=account.date_to.isoformat() if account.date_to else None,
            )
        else:
            view.update(
                document_kinds=list(account.document_kinds or DEFAULT_IMPORT_KINDS),
                default_document_type=account.default_document_type,
                default_tags=list(account.default_tags or []),
                default_company=account.default_company,
                webhook_username=account.webhook_username,
            )
        view["attention"] = account.attention_reason
        view["created_at"] = account.created_at.isoformat() if account.created_at else None
        view["updated_at"] = account.updated_at.isoformat() if account.updated_at else None
        return view


def _check_name(name: str) -> None:
    if not name or not name.strip() or len(name) > 100 or name != name.strip():
        raise UsageError(
            f"invalid account name {name!r}: 1-100 characters, no leading or trailing spaces"
        )


def _check_key(key: str, what: str) -> str:
    if not key.strip() or any(ch.isspace() for ch in key) or len(key) > 500:
        raise UsageError(f"invalid {what} API key: it must be one word without spaces")
    return key


def _check_applicable(direction: Direction, changes: AccountChanges) -> None:
    wrong = EXPORT_ONLY if direction is Direction.IMPORT else IMPORT_ONLY
    for field_name in wrong:
        if getattr(changes, field_name) is not None:
            option = "--" + field_name.replace("_", "-")
            raise UsageError(f"{option} applies to {_other(direction)} accounts only")
    if direction is Direction.IMPORT and (changes.clear_date_from or changes.clear_date_to):
        raise UsageError("date ranges apply to export accounts only")


def _other(direction: Direction) -> str:
    return "import" if direction is Direction.EXPORT else "export"
