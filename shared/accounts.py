"""Sync accounts: create, change, list and remove them; keys go in encrypted, come out masked.

An account's life: ``add`` (a new, never-reused ``ref``; documents a removed account with the
same direction, GMI key and Billomat ID saw land are adopted), ``update``, ``pause``/``resume``,
``remove`` (the row and its ledger stay, hidden from every command; the name is free again).
Every rule on input lives in ``shared.domain`` and ``shared.account_changes``; each refusal
names its field, so the command line and the web console refuse the same input alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.account_changes import (
    AccountChanges as AccountChanges,  # re-exported: front ends build changes from here
)
from shared.account_changes import apply_changes, check_applicable, check_key
from shared.adoption import adopt_landed
from shared.crypto import SecretBox, mask
from shared.db import Database, Document, PollState, SyncAccount, new_ref
from shared.domain import (
    DEFAULT_IMPORT_DOCUMENT_TYPE,
    DEFAULT_IMPORT_KINDS,
    Direction,
    ExportRules,
    ImportRules,
    check_account_name,
    check_text,
    format_duration,
)
from shared.errors import SecretKeyError, SetupError, UsageError
from shared.history import differences, snapshot
from shared.history import record as record_history

DEFAULT_INTERVAL_SECONDS = 15 * 60
UNREADABLE_KEYS = (
    "cannot decrypt its stored API keys (stored under another BELEGSYNC_SECRET_KEY?): enter "
    "them again with `belegsync accounts update {name} --gmi-api-key - --billomat-api-key -`, "
    "then `belegsync accounts resume {name}`"
)


def unreadable_keys(name: str) -> str:
    """Why an account whose API keys cannot be decrypted is paused, and what fixes it."""
    return UNREADABLE_KEYS.format(name=name)


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
        account = session.scalar(
            select(SyncAccount).where(SyncAccount.name == name, SyncAccount.live())
        )
        if account is None:
            raise UsageError(f"unknown sync account {name!r} (see `belegsync accounts list`)")
        return account

    def list(self) -> list[SyncAccount]:
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(SyncAccount).where(SyncAccount.live()).order_by(SyncAccount.name)
                )
            )

    def document_count(self, account_id: int) -> int:
        with self._db.session() as session:
            count = session.scalar(
                select(func.count()).select_from(Document).where(Document.account_id == account_id)
            )
            return int(count or 0)

    def removal_summary(self, name: str) -> dict[str, int]:
        """Ledger rows of an account by state: what `remove` keeps (shown before asking)."""
        with self._db.session() as session:
            account = self.get(session, name)
            rows = session.execute(
                select(Document.state, func.count())
                .where(Document.account_id == account.id)
                .group_by(Document.state)
            )
            return {state: int(count) for state, count in rows}

    def check_secret_key(self, *, besides: str | None = None) -> None:
        """SetupError unless the key decrypts the API keys of at least one account.

        When it decrypts none of them, the process's key is what is wrong, not the accounts:
        that ends a producer or consumer at start, and a command that would store keys under
        it refuses (callers that take keys from an operator call this first); an account
        stored under another key beside readable ones is paused on its own at run time.
        ``besides`` leaves one account out (the one whose keys are being entered again).
        """
        with self._db.session() as session:
            query = select(SyncAccount.gmi_api_key_enc).where(SyncAccount.live())
            if besides is not None:
                query = query.where(SyncAccount.name != besides)
            tokens = list(session.scalars(query))
        if not tokens:
            return
        for token in tokens:
            try:
                self.box.decrypt(token)
                return
            except SecretKeyError:
                continue
        raise SetupError(
            f"BELEGSYNC_SECRET_KEY cannot decrypt the API keys of any of the {len(tokens)} "
            "sync account(s): it is not the key they were stored with (or restore the key file)"
        )

    def has_accounts(self) -> bool:
        with self._db.session() as session:
            first = session.scalar(select(SyncAccount.id).where(SyncAccount.live()).limit(1))
            return first is not None

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
        check_key: bool = True,
    ) -> SyncAccount:
        """A new account; what removed accounts with the same identity saw land is adopted.

        Every rule is checked before the secret key is touched: a refused account leaves no
        key file and no row behind.  ``check_key``: refuse a secret key that opens none of the
        accounts already stored (their keys and the new ones would need two different keys).
        """
        check_account_name(name)
        check_applicable(direction, changes)
        if not changes.gmi_api_key:
            raise UsageError(
                "a GMI API key is required: --gmi-api-key or BELEGSYNC_GMI_API_KEY",
                field="gmi_api_key",
            )
        if not changes.billomat_api_key:
            raise UsageError(
                "a Billomat API key is required: --billomat-api-key or BELEGSYNC_BILLOMAT_API_KEY",
                field="billomat_api_key",
            )
        if changes.billomat_id is None:
            raise UsageError("a Billomat ID is required: --billomat-id", field="billomat_id")
        account = SyncAccount(
            ref=new_ref(),
            name=name,
            direction=direction.value,
            enabled=True,
            interval_seconds=DEFAULT_INTERVAL_SECONDS,
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
        self._validate(account, changes)
        with self._db.session() as session:
            self._check_name_free(session, name)
        if check_key and self.has_accounts():
            self.check_secret_key()
        # The key (perhaps its new file) before the write transaction: getting it may read
        # the database, and SQLite would make that wait for our own write lock.
        box = self.box
        with self._db.session() as session:
            self._check_name_free(session, name)
            self._apply(account, changes)
            session.add(account)
            session.flush()
            session.add(PollState(account_id=account.id, cursor={}, polls=0))
            adoption = adopt_landed(session, account, box)
            if actor is not None:
                details = differences({}, snapshot(account)).replace("– → ", "")
                if adoption.adopted:
                    details += (
                        f"; {adoption.adopted} document(s) already in the target known from "
                        f"removed {', '.join(adoption.removed_accounts)}"
                    )
                record_history(session, account, actor, "added", f"{direction.value}; {details}")
        return account

    def update(
        self,
        name: str,
        changes: AccountChanges,
        *,
        actor: str | None = None,
        check_key: bool = True,
    ) -> SyncAccount:
        if changes.gmi_api_key or changes.billomat_api_key or changes.webhook_password:
            if check_key:
                # New secrets under a key that opens none of the other accounts: refused.
                self.check_secret_key(besides=name)
            _ = self.box  # outside the write transaction (see add)
        with self._db.session() as session:
            account = self.get(session, name)
            before = snapshot(account)
            direction = Direction(account.direction)
            check_applicable(direction, changes)
            if changes.name is not None and changes.name != name:
                check_account_name(changes.name)
                self._check_name_free(session, changes.name)
            self._validate(account, changes)
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

    def recheck(self, names: Sequence[str] = ()) -> tuple[str, ...]:
        """Make the next poll of these export accounts (all when none are named) look in the
        target again — after the database was restored from a backup that knows less than the
        target does.  Returns the names of the accounts that will look."""
        with self._db.session() as session:
            if names:
                accounts = [self.get(session, name) for name in names]
            else:
                accounts = list(session.scalars(select(SyncAccount).where(SyncAccount.live())))
            chosen = []
            for account in accounts:
                if account.direction != Direction.EXPORT.value:
                    continue  # GMI refuses identical content itself: nothing to look at first
                account.target_scan = None
                if account.poll_state is not None:
                    account.poll_state.next_due_at = None
                chosen.append(account.name)
            return tuple(chosen)

    def remove(self, name: str, *, actor: str | None = None) -> int:
        """Remove an account; returns how many ledger rows it keeps.

        The row stays (marked removed, paused) with its ledger, so that what landed is never
        forgotten: a later account with the same identity adopts it, and documents imported
        into GMI are still known as ours (never exported back).  Messages still queued for it
        are held by the consumers, not uploaded.
        """
        with self._db.session() as session:
            account = self.get(session, name)
            if actor is not None:
                record_history(session, account, actor, "removed")
            account.removed_at = datetime.now(UTC)
            account.enabled = False
            account.updated_at = account.removed_at
            if account.poll_state is not None:
                account.poll_state.lease_until = None
                account.poll_state.next_due_at = None
            count = session.scalar(
                select(func.count()).select_from(Document).where(Document.account_id == account.id)
            )
            return int(count or 0)

    def _check_name_free(self, session: Session, name: str) -> None:
        taken = session.scalar(
            select(SyncAccount.id).where(SyncAccount.name == name, SyncAccount.live())
        )
        if taken is not None:
            raise UsageError(f"a sync account named {name!r} already exists", field="name")

    # -- helpers -------------------------------------------------------------------------------

    def _validate(self, account: SyncAccount, changes: AccountChanges) -> None:
        """Every rule, on a scratch copy: nothing is changed and no key is touched yet."""
        scratch = SyncAccount(
            date_from=account.date_from,
            date_to=account.date_to,
            webhook_username=account.webhook_username,
            webhook_password_enc=account.webhook_password_enc,
        )
        apply_changes(scratch, changes)
        if changes.gmi_api_key is not None:
            check_key(changes.gmi_api_key, "GMI", "gmi_api_key")
        if changes.billomat_api_key is not None:
            check_key(changes.billomat_api_key, "Billomat", "billomat_api_key")
        if changes.webhook_password is not None:
            check_text(changes.webhook_password, field="webhook_password", limit=200)
        if (
            scratch.webhook_username
            and changes.webhook_password is None
            and scratch.webhook_password_enc is None
        ):
            raise UsageError(
                "--webhook-username needs --webhook-password too", field="webhook_password"
            )

    def _apply(self, account: SyncAccount, changes: AccountChanges) -> None:
        apply_changes(account, changes)
        # Encrypt last: only valid input needs the secret key (and may create its file).
        if changes.gmi_api_key is not None:
            account.gmi_api_key_enc = self.box.encrypt(changes.gmi_api_key)
            # the key's quota name (never the key): which accounts share a GMI quota
            account.gmi_scope = key_fingerprint(changes.gmi_api_key)
        if changes.billomat_api_key is not None:
            account.billomat_api_key_enc = self.box.encrypt(changes.billomat_api_key)
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
            try:
                creds = self.credentials(account)
                view["gmi_api_key"] = mask(creds.gmi_api_key)
                view["billomat_api_key"] = mask(creds.billomat_api_key)
            except SecretKeyError:
                view["gmi_api_key"] = view["billomat_api_key"] = "(cannot decrypt)"
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
