"""The CLI's composition root: builds settings, database and secrets once, on first use.

Everything here is imported lazily, so `--help` and bad usage touch nothing and load nothing.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from app.cli.output import info
from shared.errors import UsageError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from shared.accounts import AccountService
    from shared.crypto import SecretBox
    from shared.db import Database
    from shared.settings import Settings


def settings_problem(e: ValidationError) -> str:
    """A settings error as one line naming the variable."""
    first = e.errors()[0]
    field = "BELEGSYNC_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
    return f"{field}: {first['msg']}"


class App:
    """Lazily built process-wide objects."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        if self._settings is not None:
            return self._settings
        from pydantic import ValidationError

        from shared.settings import Settings

        try:
            return Settings()
        except ValidationError as e:
            raise UsageError(settings_problem(e)) from None

    @cached_property
    def db(self) -> Database:
        from shared.db import Database

        return Database(self.settings.database_url)

    def migrated_db(self) -> Database:
        self.db.check_migrated()
        return self.db

    @cached_property
    def secret_box(self) -> SecretBox:
        from shared.crypto import load_secret_box

        return load_secret_box(self.settings, notice=info)

    @cached_property
    def accounts(self) -> AccountService:
        from shared.accounts import AccountService

        return AccountService(self.migrated_db(), lambda: self.secret_box)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
