"""`belegsync demo`: the whole sync loop on in-process simulators, with real producer and
consumer processes on the real RabbitMQ, in a sandbox that is removed afterwards.

No click and no printing here: the command passes a ``DemoView`` that shows what happens.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from pydantic import SecretStr

from shared import migrations
from shared.accounts import AccountChanges, AccountService, export_rules, import_rules
from shared.bootstrap import broker as make_broker
from shared.broker import Broker
from shared.crypto import SecretBox, generate_key
from shared.db import Database, SyncAccount
from shared.domain import Direction, DocState, ExportRules, ImportRules, export_marker
from shared.errors import BelegsyncError, BrokerUnavailableError
from shared.settings import Settings
from shared.status import documents, overview
from simulators import Simulators
from simulators.seed import seed_demo

# A throwaway account and tenant that exist only inside the demo's simulators.
GMI_API_KEY = "demo-gmi-key"
BILLOMAT_ID = "demo"
BILLOMAT_API_KEY = "demo-billomat-key"

EXPORT_ACCOUNT = "demo-export"
IMPORT_ACCOUNT = "demo-import"
# Billomat's inbox is for what the business receives; its own sales invoices and credit notes
# travel the other way (the import).  Leaving those types out of the export also keeps the
# documents the import puts into GMI from being sent straight back.
EXPORT_TYPES = ("INCOMING_INVOICE", "RECEIPT", "STATEMENT", "TRAVEL_EXPENSES")
IMPORT_TAGS = ("Billomat", "belegsync-demo")
IMPORT_COMPANY = "Demo GmbH (aus Billomat)"

# Short retry tiers: a transient failure during the demo is retried within seconds.
RETRY_DELAYS = "2s,5s,15s"
# The demo stops its consumers itself; this only ends them should the demo die without it.
CONSUMER_IDLE_EXIT = 120
STOP_GRACE_SECONDS = 10.0
TICK_SECONDS = 0.25
LOG_TAIL_LINES = 12

START_HINT = (
    'start it with "rabbitmq-server -detached" '
    '(or "docker run -d -p 5672:5672 rabbitmq:3.13"), '
    "or point BELEGSYNC_BROKER_URL at a running one"
)

IN_FLIGHT = frozenset({DocState.PENDING, DocState.UPLOADING, DocState.UPLOADED, DocState.RETRYING})
STUCK = frozenset({DocState.PARKED, DocState.HELD})
WAITING = frozenset({DocState.WAITING_APPROVAL, DocState.DRAFT})
LANDED = frozenset({DocState.SYNCED, DocState.UPLOADED})

DIRECTION_LABELS = {
    Direction.EXPORT: "export  GMI → Billomat inbox",
    Direction.IMPORT: "import  Billomat → GMI",
}


class DemoError(BelegsyncError):
    """The demo could not run, or did not end as it should (exit code 1).

    ``details`` are lines worth showing before the one-line reason (e.g. process log tails).
    """

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


@dataclass(frozen=True)
class DemoOptions:
    broker_url: str
    consumers: int = 2
    timeout: float = 60.0
    keep: bool = False
    later_changes: bool = True


@dataclass(frozen=True)
class Tally:
    """One direction's documents at one moment of a round."""

    direction: Direction
    expected: int
    synced: int
    waiting: int
    in_flight: int
    stuck: int

    @property
    def label(self) -> str:
        return DIRECTION_LABELS[self.direction]


@dataclass
class RoundResult:
    name: str
    title: str
    expected: dict[str, int]
    synced: dict[str, int]
    waiting: dict[str, int]
    seconds: float
    producer: list[str]


class DemoView(Protocol):
    """What the command shows while the demo runs (the console, or nothing)."""

    def note(self, label: str, text: str) -> None: ...

    def round_started(self, title: str, tallies: list[Tally]) -> None: ...

    def round_progress(self, tallies: list[Tally]) -> None: ...

    def round_finished(self, result: RoundResult) -> None: ...

    def report(self, report: DemoReport, settings: Settings) -> None: ...


@dataclass
class DemoReport:
    """Everything the demo found out; ``to_json`` is the ``--json`` output."""

    ok: bool
    problems: list[str]
    queue_prefix: str
    broker: str
    database: str
    kept: str | None
    accounts: list[dict[str, Any]]
    rounds: list[RoundResult]
    later_changes: dict[str, list[dict[str, Any]]]
    overview: list[dict[str, Any]]
    export: list[dict[str, Any]]
    import_: list[dict[str, Any]]
    simulator_state: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    cleanup: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # ``import`` is a keyword in Python only; in JSON it sits next to ``export``.
        return {("import" if k == "import_" else k): v for k, v in data.items()}


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


# ---------------------------------------------------------------------------------------------
# Processes: one producer per round, N consumers for the whole demo


def process_env(settings: Settings) -> dict[str, str]:
    """The sandbox's settings as the environment of a child process, nothing of the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELEGSYNC_")}
    assert settings.secret_key is not None
    env.update(
        BELEGSYNC_DATABASE_URL=settings.database_url,
        BELEGSYNC_BROKER_URL=settings.broker_url,
        BELEGSYNC_QUEUE_PREFIX=settings.queue_prefix,
        BELEGSYNC_SECRET_KEY=settings.secret_key.get_secret_value(),
        BELEGSYNC_SECRET_KEY_FILE=str(settings.secret_key_file),
        BELEGSYNC_GMI_BASE_URL=settings.gmi_base_url,
        BELEGSYNC_BILLOMAT_BASE_URL=settings.billomat_base_url,
        BELEGSYNC_RETRY_DELAYS=settings.retry_delays,
        BELEGSYNC_METRICS_PORT="0",
        BELEGSYNC_LOG_FORMAT="text",
        BELEGSYNC_LOG_LEVEL="INFO",
    )
    # The children must run this very code, also from a checkout that is not installed.
    code_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (code_root, env.get("PYTHONPATH")) if p)
    return env


class Fleet:
    """The demo's child processes, each logging into the sandbox."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self._env = process_env(settings)
        self._root = root
        self.consumers: list[subprocess.Popen[bytes]] = []
        self.producers: list[subprocess.Popen[bytes]] = []

    def _spawn(
        self, log_name: str, args: list[str], *, capture_stdout: bool = False
    ) -> subprocess.Popen[bytes]:
        with open(self._root / log_name, "ab") as log:
            return subprocess.Popen(  # noqa: S603 - our own interpreter running our own CLI
                [sys.executable, "-m", "shared.cli", *args],
                env=self._env,
                cwd=self._root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture_stdout else log,
                stderr=log,
                # Own session: Ctrl-C reaches only the demo, which stops them in the right order.
                start_new_session=True,
            )

    def start_consumers(self, count: int) -> None:
        args = ["consume", "--idle-exit", str(CONSUMER_IDLE_EXIT), "--metrics-port", "0"]
        for number in range(1, count + 1):
            self.consumers.append(self._spawn(f"consumer-{number}.log", args))

    def produce_once(self) -> subprocess.Popen[bytes]:
        """The producer's report lines come on stdout; its log goes to producer.log."""
        process = self._spawn("producer.log", ["produce", "--once"], capture_stdout=True)
        self.producers.append(process)
        return process

    def consumers_alive(self) -> int:
        return sum(1 for p in self.consumers if p.poll() is None)

    def stop(self) -> None:
        """SIGTERM lets a consumer finish the message in hand; whoever lingers is killed."""
        running = [p for p in (*self.producers, *self.consumers) if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for process in self.producers:
            if process.stdout is not None:
                process.stdout.close()

    def log_tail(self) -> list[str]:
        lines: list[str] = []
        for path in sorted(self._root.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            lines += [f"{path.name}: {line}" for line in tail]
        return lines


# ---------------------------------------------------------------------------------------------
# Running: rounds of "produce once, let the consumers work, wait until it settles"


def expected_synced(sandbox: Sandbox) -> dict[Direction, int]:
    """What should end up synced, from the simulators' data and the accounts' rules."""
    rules = sandbox.export_rules
    export = sum(
        1
        for doc in sandbox.gmi_before
        if rules.rejection(
            document_type=doc["document_type"],
            tags=doc["tags"],
            document_date=_day(doc["document_date"]),
            is_archived=doc["is_archived"],
        )
        is None
        and rules.approval_rejection(doc["approval"]) is None
    )
    imported = sum(
        1
        for kind in sandbox.import_rules.document_kinds
        for doc in sandbox.sims.billomat.documents(BILLOMAT_ID, kind)
        if doc["status"] != "DRAFT"
    )
    return {Direction.EXPORT: export, Direction.IMPORT: imported}


def tallies(db: Database, expected: Mapping[Direction, int]) -> list[Tally]:
    """Ledger counts per direction (the demo has one account of each)."""
    by_direction = {Direction(row["direction"]): row["counts"] for row in overview(db)}
    result = []
    for direction in Direction:
        counts = by_direction.get(direction, {})
        result.append(
            Tally(
                direction=direction,
                expected=expected[direction],
                synced=counts.get(DocState.SYNCED.value, 0),
                waiting=sum(counts.get(s.value, 0) for s in WAITING),
                in_flight=sum(counts.get(s.value, 0) for s in IN_FLIGHT),
                stuck=sum(counts.get(s.value, 0) for s in STUCK),
            )
        )
    return result


def run_round(
    sandbox: Sandbox,
    fleet: Fleet,
    view: DemoView,
    name: str,
    title: str,
    expected: Mapping[Direction, int],
    timeout: float,
) -> RoundResult:
    """Poll once, then watch the ledger until nothing is in flight any more."""
    started = time.monotonic()
    view.round_started(title, tallies(sandbox.db, expected))
    producer = fleet.produce_once()
    current = wait_until_settled(sandbox.db, fleet, producer, expected, started + timeout, view)
    assert producer.stdout is not None
    lines = producer.stdout.read().decode(errors="replace").splitlines()
    result = RoundResult(
        name=name,
        title=title,
        expected={t.direction.value: t.expected for t in current},
        synced={t.direction.value: t.synced for t in current},
        waiting={t.direction.value: t.waiting for t in current},
        seconds=round(time.monotonic() - started, 2),
        producer=lines,
    )
    view.round_finished(result)
    return result


def wait_until_settled(
    db: Database,
    fleet: Fleet,
    producer: subprocess.Popen[bytes],
    expected: Mapping[Direction, int],
    deadline: float,
    view: DemoView,
) -> list[Tally]:
    """Settled: the producer published everything and no document is in flight."""
    while True:
        current = tallies(db, expected)
        view.round_progress(current)
        in_flight = sum(t.in_flight for t in current)
        code = producer.poll()
        if code is not None and code != 0:
            raise DemoError(f"the producer failed (exit code {code})", fleet.log_tail())
        if code == 0 and in_flight == 0:
            return current
        if in_flight and fleet.consumers_alive() == 0:
            raise DemoError(
                "every consumer exited while documents were in flight", fleet.log_tail()
            )
        if time.monotonic() > deadline:
            summary = ", ".join(
                f"{t.direction.value} {t.synced}/{t.expected} synced" for t in current
            )
            raise DemoError(
                f"the documents did not settle in time ({summary}, {in_flight} in flight); "
                "rerun with --keep to keep the logs",
                fleet.log_tail(),
            )
        time.sleep(TICK_SECONDS)


def make_later_changes(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    """Approve one document whose workflow is pending in GMI, finish the draft in Billomat."""
    gmi, billomat = sandbox.sims.gmi, sandbox.sims.billomat
    pending_workflow = {d["uid"] for d in sandbox.gmi_before if d["approval"] is False}
    approved: list[dict[str, Any]] = []
    for row in documents(sandbox.db, account=EXPORT_ACCOUNT, state=DocState.WAITING_APPROVAL):
        uid = int(row["source_id"])
        if uid in pending_workflow:
            gmi.approve(GMI_API_KEY, uid)
            approved.append({"gmi_uid": uid, "document_number": row["document_number"]})
            break
    finished: list[dict[str, Any]] = []
    for row in documents(sandbox.db, account=IMPORT_ACCOUNT, state=DocState.DRAFT):
        kind, doc_id = row["source_kind"], int(row["source_id"])
        billomat.complete(BILLOMAT_ID, kind, doc_id)
        number = billomat.document(BILLOMAT_ID, kind, doc_id)["number"]
        finished.append({"kind": kind, "billomat_id": doc_id, "number": number})
    return {"approved_in_gmi": approved, "finished_in_billomat": finished}


# ---------------------------------------------------------------------------------------------
# Reporting: where every document ended up, and whether that is what should have happened


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _approval_label(value: bool | None) -> str:
    return {None: "no workflow", False: "pending", True: "approved"}[value]


def export_rows(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Each GMI document: its ledger state and, if it landed, the Billomat inbox document."""
    rules = sandbox.export_rules
    ledger = {r["source_id"]: r for r in documents(sandbox.db, account=EXPORT_ACCOUNT)}
    inbox = {str(i["id"]): i for i in sandbox.sims.billomat.inbox(BILLOMAT_ID)}
    now = {d["uid"]: d for d in sandbox.sims.gmi.documents(GMI_API_KEY)}
    before = {d["uid"]: d for d in sandbox.gmi_before}
    uids = sorted(set(before) | {int(uid) for uid in ledger})
    rows = []
    for uid in uids:
        doc = before.get(uid) or now[uid]
        row = ledger.get(str(uid))
        target = inbox.get(row["target_id"]) if row and row["target_id"] else None
        if row is None:
            state = "not selected"
            reason = rules.rejection(
                document_type=doc["document_type"],
                tags=doc["tags"],
                document_date=_day(doc["document_date"]),
                is_archived=doc["is_archived"],
            )
        else:
            state = row["state"]
            reason = None if state == DocState.SYNCED else row["last_error"]
        rows.append(
            {
                "gmi_uid": uid,
                "document_number": doc["document_number"],
                "document_type": doc["document_type"],
                "company": doc["company_name"],
                "approval": _approval_label(doc["approval"]),
                "approval_now": _approval_label(now[uid]["approval"]) if uid in now else None,
                "state": state,
                "reason": reason,
                "billomat_inbox_id": target["id"] if target else None,
                "inbox_document_type": target["document_type"] if target else None,
                "archived_in_gmi": now[uid]["is_archived"] if uid in now else None,
            }
        )
    return rows


def import_rows(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Each Billomat document of the imported kinds: its ledger state and its GMI document."""
    ledger = {
        (r["source_kind"], r["source_id"]): r for r in documents(sandbox.db, account=IMPORT_ACCOUNT)
    }
    gmi_now = {str(d["uid"]): d for d in sandbox.sims.gmi.documents(GMI_API_KEY)}
    rows = []
    for kind in sandbox.import_rules.document_kinds:
        for doc in sandbox.sims.billomat.documents(BILLOMAT_ID, kind):
            row = ledger.get((kind, str(doc["id"])))
            target = gmi_now.get(row["target_id"]) if row and row["target_id"] else None
            state = row["state"] if row else "not listed"
            rows.append(
                {
                    "kind": kind,
                    "billomat_id": doc["id"],
                    "document_number": doc["number"] or None,
                    "status": doc["status"],
                    "client": doc["party_name"],
                    "state": state,
                    "reason": None if state == DocState.SYNCED else (row or {}).get("last_error"),
                    "gmi_uid": target["uid"] if target else None,
                    "gmi_document_type": target["document_type"] if target else None,
                    "gmi_company": target["company_name"] if target else None,
                    "gmi_tags": target["tags"] if target else None,
                }
            )
    return rows


def simulator_state(sandbox: Sandbox) -> dict[str, Any]:
    """The raw facts on both sides, so a reader (or a test) can check the demo's claims."""
    sims = sandbox.sims

    def gmi_doc(d: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("uid", "document_type", "document_number", "company_name", "tags", "approval")
        return {k: d[k] for k in (*keys, "is_archived", "source", "sha256")}

    return {
        "gmi_documents_before": [gmi_doc(d) for d in sandbox.gmi_before],
        "gmi_documents_after": [gmi_doc(d) for d in sims.gmi.documents(GMI_API_KEY)],
        "billomat_documents": [
            {k: d[k] for k in ("id", "kind", "status", "number", "pdf_sha256")}
            for kind in sandbox.import_rules.document_kinds
            for d in sims.billomat.documents(BILLOMAT_ID, kind)
        ],
        "billomat_inbox": [
            {
                "id": i["id"],
                "document_type": i["document_type"],
                "marker": i["metadata"].get("BELEGSYNC_REF"),
                "sha256": i["sha256"],
                "filesize": i["filesize"],
            }
            for i in sims.billomat.inbox(BILLOMAT_ID)
        ],
    }


def find_problems(
    sandbox: Sandbox,
    expected: Mapping[Direction, int],
    exported: list[dict[str, Any]],
    imported: list[dict[str, Any]],
) -> list[str]:
    """Every landed document exactly once with its own bytes, and as many as expected."""
    problems: list[str] = []
    export_id = sandbox.accounts[Direction.EXPORT].id
    inbox = sandbox.sims.billomat.inbox(BILLOMAT_ID)
    markers = Counter(i["metadata"].get("BELEGSYNC_REF") for i in inbox)
    gmi_now = {d["uid"]: d for d in sandbox.sims.gmi.documents(GMI_API_KEY)}
    inbox_by_id = {i["id"]: i for i in inbox}
    ours = set()
    for row in exported:
        if row["state"] in STUCK:
            problems.append(f"GMI {row['gmi_uid']} is {row['state']}: {row['reason']}")
        if row["state"] not in LANDED:
            continue
        marker = export_marker(export_id, row["gmi_uid"])
        ours.add(marker)
        if markers[marker] != 1:
            problems.append(f"GMI {row['gmi_uid']} is in the inbox {markers[marker]} times")
        item = inbox_by_id.get(row["billomat_inbox_id"])
        source = gmi_now.get(row["gmi_uid"])
        if item is None or source is None or item["sha256"] != source["sha256"]:
            problems.append(f"GMI {row['gmi_uid']}: the inbox does not hold its bytes")
    strays = sum(n for marker, n in markers.items() if marker not in ours)
    if strays:
        problems.append(f"{strays} inbox document(s) belong to no synced GMI document")

    pdfs = {
        (kind, d["id"]): d["pdf_sha256"]
        for kind in sandbox.import_rules.document_kinds
        for d in sandbox.sims.billomat.documents(BILLOMAT_ID, kind)
    }
    hashes = Counter(d["sha256"] for d in gmi_now.values())
    for row in imported:
        if row["state"] in STUCK:
            problems.append(
                f"Billomat {row['kind']} {row['billomat_id']} is {row['state']}: {row['reason']}"
            )
        if row["state"] != DocState.SYNCED:
            continue
        pdf = pdfs[(row["kind"], row["billomat_id"])]
        target = gmi_now.get(row["gmi_uid"]) if row["gmi_uid"] is not None else None
        if target is None or target["sha256"] != pdf:
            problems.append(f"Billomat {row['kind']} {row['billomat_id']}: GMI lacks its PDF")
        elif hashes[pdf] != 1:
            problems.append(
                f"Billomat {row['kind']} {row['billomat_id']} is in GMI {hashes[pdf]} times"
            )

    synced = {
        Direction.EXPORT: sum(1 for r in exported if r["state"] == DocState.SYNCED),
        Direction.IMPORT: sum(1 for r in imported if r["state"] == DocState.SYNCED),
    }
    for direction, count in synced.items():
        if count != expected[direction]:
            problems.append(f"{direction.value}: {count} synced, {expected[direction]} expected")
    return problems


# ---------------------------------------------------------------------------------------------
# The whole demo


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C does (only the main thread may set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def run_demo(options: DemoOptions, view: DemoView) -> DemoReport:
    """Set up, run, report, clean up; DemoError when the demo cannot run or fails on the way.

    Ctrl-C and SIGTERM clean up too, and end in a DemoError that says so.
    """
    clock = time.monotonic()
    broker = open_broker(options.broker_url, new_queue_prefix())
    teardown = Teardown()
    teardown.add(
        f"deleted the queues and exchanges {broker.topology.prefix}.*", delete_topology, broker
    )
    try:
        with interruptible():
            try:
                report = _run(options, view, teardown, broker, clock)
            finally:
                teardown.run()
    except KeyboardInterrupt:
        raise DemoError(
            f"interrupted after {time.monotonic() - clock:.1f}s; cleaned up: "
            + "; ".join(teardown.done)
        ) from None
    report.cleanup = list(teardown.done)
    report.seconds["total"] = round(time.monotonic() - clock, 2)
    return report


def _run(
    options: DemoOptions, view: DemoView, teardown: Teardown, broker: Broker, clock: float
) -> DemoReport:
    sandbox = create_sandbox(teardown, broker, options.keep)
    describe_sandbox(sandbox, broker, view)
    fleet = Fleet(sandbox.settings, sandbox.root)
    teardown.add("stopped the producer and the consumers", fleet.stop)
    seconds = {"setup": round(time.monotonic() - clock, 2)}

    expected = expected_synced(sandbox)
    fleet.start_consumers(options.consumers)
    first = f"first sync: {options.consumers} consumers, one producer poll"
    rounds = [run_round(sandbox, fleet, view, "first_sync", first, expected, options.timeout)]
    changes: dict[str, list[dict[str, Any]]] = {"approved_in_gmi": [], "finished_in_billomat": []}
    if options.later_changes:
        changes = make_later_changes(sandbox)
        expected = {
            Direction.EXPORT: expected[Direction.EXPORT] + len(changes["approved_in_gmi"]),
            Direction.IMPORT: expected[Direction.IMPORT] + len(changes["finished_in_billomat"]),
        }
        title = describe_changes(changes)
        rounds.append(
            run_round(sandbox, fleet, view, "later_changes", title, expected, options.timeout)
        )
    # Nothing may move while the report is read.
    fleet.stop()
    report = build_report(sandbox, broker, options, rounds, changes, expected)
    report.seconds = seconds | {r.name: r.seconds for r in rounds}
    view.report(report, sandbox.settings)
    return report


def describe_sandbox(sandbox: Sandbox, broker: Broker, view: DemoView) -> None:
    sims = sandbox.sims
    view.note(
        "simulators", f"GMI {sims.gmi_base_url} · Billomat {sims.billomat.api_url(BILLOMAT_ID)}"
    )
    invoices = sims.billomat.documents(BILLOMAT_ID, "invoices")
    drafts = sum(1 for d in invoices if d["status"] == "DRAFT")
    view.note(
        "demo data",
        f"GMI: {len(sandbox.gmi_before)} documents (one ~3 MB PDF) · Billomat: "
        f"{len(invoices) - drafts} invoices, "
        f"{len(sims.billomat.documents(BILLOMAT_ID, 'credit-notes'))} credit notes, "
        f"{drafts} draft",
    )
    view.note("database", f"{sandbox.root / 'belegsync.db'} (fresh, migrated, own Fernet key)")
    view.note("broker", f"{broker.safe_url} · queue prefix {broker.topology.prefix}")
    view.note(
        EXPORT_ACCOUNT,
        f"GMI → Billomat inbox: types {', '.join(EXPORT_TYPES)}; approval required; "
        "archive in GMI after transfer",
    )
    view.note(
        IMPORT_ACCOUNT,
        f"Billomat invoices, credit-notes → GMI: tags {', '.join(IMPORT_TAGS)}; "
        f"company {IMPORT_COMPANY!r}",
    )


def describe_changes(changes: Mapping[str, list[dict[str, Any]]]) -> str:
    parts = [f"approved {c['document_number']} in GMI" for c in changes["approved_in_gmi"]]
    parts += [
        f"finished draft {c['kind'].rstrip('s')} {c['billomat_id']} in Billomat (now {c['number']})"
        for c in changes["finished_in_billomat"]
    ]
    return "later changes: " + (", ".join(parts) or "none") + "; one more poll"


def build_report(
    sandbox: Sandbox,
    broker: Broker,
    options: DemoOptions,
    rounds: list[RoundResult],
    changes: dict[str, list[dict[str, Any]]],
    expected: Mapping[Direction, int],
) -> DemoReport:
    exported, imported = export_rows(sandbox), import_rows(sandbox)
    problems = find_problems(sandbox, expected, exported, imported)
    service = AccountService(sandbox.db, lambda: sandbox.box)
    return DemoReport(
        ok=not problems,
        problems=problems,
        queue_prefix=broker.topology.prefix,
        broker=broker.safe_url,
        database=str(sandbox.root / "belegsync.db"),
        kept=str(sandbox.root) if options.keep else None,
        accounts=[service.describe(a, with_keys=False) for a in service.list()],
        rounds=rounds,
        later_changes=changes,
        overview=overview(sandbox.db),
        export=exported,
        import_=imported,
        simulator_state=simulator_state(sandbox),
    )
