"""The CLI's composition root: builds settings, database and secrets once, on first use.

Everything here is imported lazily, so `--help` and bad usage touch nothing and load nothing.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from app.cli.output import info

if TYPE_CHECKING:
    from shared.accounts import AccountService
    from shared.crypto import SecretBox
    from shared.db import Database
    from shared.settings import Settings


class App:
    """Lazily built process-wide objects."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        """Every BELEGSYNC_* variable checked; a wrong one is a SetupError (exit 2, one line)."""
        if self._settings is not None:
            return self._settings
        from shared.settings import Settings

        return Settings()

    @cached_property
    def db(self) -> Database:
        from shared.db import Database

        return Database(self.settings.database_url)

    def migrated_db(self) -> Database:
        self.db.check_migrated()
        return self.db

    @cached_property
    def secret_box(self) -> SecretBox:
        """The key; a missing key file is created only while no account holds API keys."""
        from shared.crypto import load_secret_box

        return load_secret_box(
            self.settings, may_create=lambda: not self.accounts.has_accounts(), notice=info
        )

    @cached_property
    def accounts(self) -> AccountService:
        from shared.accounts import AccountService

        return AccountService(self.migrated_db(), lambda: self.secret_box)

    @cached_property
    def actor(self) -> str:
        """Who changes accounts from this shell, for the account history (``anna (CLI)``)."""
        import getpass

        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # no login name in the environment or the user database
            user = "unknown"
        return f"{user[:90]} (CLI)"

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
