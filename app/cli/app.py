"""The CLI's composition root: builds settings, database and secrets once, on first use."""

from __future__ import annotations

from functools import cached_property

from app.cli.output import info
from shared.accounts import AccountService
from shared.crypto import SecretBox, load_secret_box
from shared.db import Database
from shared.settings import Settings


class App:
    """Lazily built process-wide objects, so `--help` and bad usage touch nothing."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        return self._settings or Settings()

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url)

    def migrated_db(self) -> Database:
        self.db.check_migrated()
        return self.db

    @cached_property
    def secret_box(self) -> SecretBox:
        return load_secret_box(self.settings, notice=info)

    @cached_property
    def accounts(self) -> AccountService:
        return AccountService(self.migrated_db(), lambda: self.secret_box)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
