"""The demo's own world: broker, temp dir, key, simulators, migrated database, accounts —
each with its undo step."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from app.bootstrap import broker as make_broker
from app.demo.model import (
    BILLOMAT_API_KEY,
    BILLOMAT_ID,
    EXPORT_ACCOUNT,
    EXPORT_TYPES,
    GMI_API_KEY,
    IMPORT_ACCOUNT,
    IMPORT_COMPANY,
    IMPORT_TAGS,
    RETRY_DELAYS,
    START_HINT,
    DemoError,
)
from shared import migrations
from shared.accounts import AccountChanges, AccountService, export_rules, import_rules
from shared.broker import Broker
from shared.crypto import SecretBox, generate_key
from shared.db import Database, SyncAccount
from shared.domain import Direction, ExportRules, ImportRules
from shared.errors import BrokerUnavailableError
from shared.settings import Settings
from simulators import Simulators
from simulators.seed import seed_demo

# ---------------------------------------------------------------------------------------------
# Setup: broker, sandbox, simulators, database, accounts


def new_queue_prefix() -> str:
    return f"belegsync-demo-{secrets.token_hex(4)}"


def open_broker(broker_url: str, prefix: str) -> Broker:
    """Connect first of all, so an absent broker is reported before anything is created."""
    settings = Settings(broker_url=broker_url, queue_prefix=prefix, retry_delays=RETRY_DELAYS)
    broker = make_broker(settings)
    try:
        broker.connect(retries=0)
    except BrokerUnavailableError as e:
        broker.close()
        reason = str(e.__cause__ or e).splitlines()[0]
        if isinstance(e.__cause__, OSError):
            raise DemoError(
                f"RabbitMQ is not reachable at {broker.safe_url} ({reason}): {START_HINT}"
            ) from e
        # Reachable, but it refused us (login, vhost): starting it again would not help.
        raise DemoError(
            f"RabbitMQ at {broker.safe_url} refused the connection ({reason}): "
            "check the user, password and vhost in BELEGSYNC_BROKER_URL"
        ) from e
    return broker


@dataclass
class Sandbox:
    """The demo's own world: a temp dir with database, key and logs; simulators; accounts."""

    root: Path
    settings: Settings
    db: Database
    box: SecretBox
    sims: Simulators
    accounts: dict[Direction, SyncAccount]
    gmi_before: list[dict[str, Any]]

    @property
    def export_rules(self) -> ExportRules:
        return export_rules(self.accounts[Direction.EXPORT])

    @property
    def import_rules(self) -> ImportRules:
        return import_rules(self.accounts[Direction.IMPORT])


def make_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="belegsync-demo-"))


def write_key(root: Path) -> str:
    """A fresh Fernet key, also saved as ``belegsync.key`` so a kept sandbox can be inspected."""
    key = generate_key()
    fd = os.open(root / "belegsync.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def start_simulators() -> Simulators:
    sims = Simulators(host="127.0.0.1", gmi_port=0, billomat_port=0).start()
    try:
        seed_demo(
            sims,
            gmi_api_key=GMI_API_KEY,
            billomat_id=BILLOMAT_ID,
            billomat_api_key=BILLOMAT_API_KEY,
        )
    except BaseException:
        sims.stop()
        raise
    return sims


def sandbox_settings(root: Path, key: str, broker: Broker, sims: Simulators) -> Settings:
    return Settings(
        database_url=f"sqlite:///{root / 'belegsync.db'}",
        broker_url=broker.url,
        queue_prefix=broker.topology.prefix,
        secret_key=SecretStr(key),
        secret_key_file=root / "belegsync.key",
        gmi_base_url=sims.gmi_base_url,
        billomat_base_url=sims.billomat_url_template,
        retry_delays=RETRY_DELAYS,
        metrics_port=0,
    )


def add_accounts(db: Database, box: SecretBox) -> dict[Direction, SyncAccount]:
    """An export that shows approval and archiving, an import that shows tags and a company."""
    service = AccountService(db, lambda: box)
    export = service.add(
        Direction.EXPORT,
        EXPORT_ACCOUNT,
        AccountChanges(
            gmi_api_key=GMI_API_KEY,
            billomat_id=BILLOMAT_ID,
            billomat_api_key=BILLOMAT_API_KEY,
            note="belegsync demo: expenses into the Billomat inbox once approved",
            document_types=EXPORT_TYPES,
            require_approval=True,
            archive_after_transfer=True,
        ),
    )
    imported = service.add(
        Direction.IMPORT,
        IMPORT_ACCOUNT,
        AccountChanges(
            gmi_api_key=GMI_API_KEY,
            billomat_id=BILLOMAT_ID,
            billomat_api_key=BILLOMAT_API_KEY,
            note="belegsync demo: finished invoices and credit notes into GMI",
            default_tags=IMPORT_TAGS,
            default_company=IMPORT_COMPANY,
            document_kinds=("invoices", "credit-notes"),
        ),
    )
    return {Direction.EXPORT: export, Direction.IMPORT: imported}


class Teardown:
    """Undo steps, run last-in first-out; ``done`` says what was actually undone."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self.done: list[str] = []

    def add(self, what: str, undo: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        def step() -> None:
            undo(*args, **kwargs)
            self.done.append(what)

        self._stack.callback(step)

    def run(self) -> None:
        with shielded():
            self._stack.close()


def create_sandbox(teardown: Teardown, broker: Broker, keep: bool) -> Sandbox:
    """Build the sandbox; every piece registers its own undo step as soon as it exists."""
    root = make_root()
    if not keep:
        teardown.add(f"removed {root}", shutil.rmtree, root, ignore_errors=True)
    key = write_key(root)
    sims = start_simulators()
    teardown.add("stopped the simulators", sims.stop)
    settings = sandbox_settings(root, key, broker, sims)
    migrations.upgrade(settings.database_url)
    db = Database(settings.database_url)
    teardown.add("closed the database", db.dispose)
    box = SecretBox(key)
    accounts = add_accounts(db, box)
    return Sandbox(root, settings, db, box, sims, accounts, sims.gmi.documents(GMI_API_KEY))


def delete_topology(broker: Broker) -> None:
    """Remove the demo's queues and exchanges, reconnecting once if the connection dropped."""
    try:
        broker.delete_all()
    except Exception:
        broker.connect(retries=2)
        broker.delete_all()
    finally:
        broker.close()


@contextmanager
def shielded() -> Iterator[None]:
    """A second Ctrl-C during the cleanup would leave queues, processes or files behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
