"""Plumbing the benchmarks share: machine state, scratch databases, simulators, processes, output.

Nothing here measures anything; each ``bench/<name>.py`` decides what to time and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app import bootstrap
from shared import migrations
from shared.accounts import AccountChanges, AccountService
from shared.broker import Broker
from shared.crypto import SecretBox, generate_key
from shared.db import Database
from shared.domain import Direction
from shared.settings import Settings
from simulators import GmiSimulator, Simulators

REPO = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "BELEGSYNC_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BROKER_URL = os.environ.get("BELEGSYNC_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
DB_KINDS = ("sqlite", "postgresql")

RAISED_GMI_LIMITS = {
    "gmi_calls_per_minute": 10**6,
    "gmi_calls_per_day": 10**8,
    "gmi_uploads_per_hour": 10**7,
}

GMI_KEY = "gmi-bench-key-0001"
BILLOMAT_ID = "bench"
BILLOMAT_KEY = "bm-bench-key-0002"


# ---------------------------------------------------------------------------------------------
# the machine


def load_average() -> float:
    """The 1-minute load average (runnable + waiting processes; 2.0 saturates this machine)."""
    return os.getloadavg()[0]


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    # The command name may contain spaces and parentheses; fields resume after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def _ours(pid: int) -> bool:
    me = os.getpid()
    for _ in range(20):
        if pid == me:
            return True
        if pid <= 1:
            return False
        pid = _ppid(pid)
    return False


def other_activity() -> dict[str, int]:
    """Processes outside this benchmark that compete for the CPU: test runs, linters, services."""
    watched = {
        "pytest": "pytest",
        "mypy": "mypy",
        "ruff": "ruff",
        "belegsync": "app.cli",
        "docker": "dockerd",
    }
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for label, needle in watched.items():
            if needle in cmdline and not _ours(int(entry.name)):
                found[label] = found.get(label, 0) + 1
    return found


@dataclass
class MachineNote:
    """What else the machine was doing, sampled at the start and the end of a benchmark."""

    cpus: int = field(default_factory=lambda: os.cpu_count() or 0)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    load_start: float = field(default_factory=load_average)
    activity_start: dict[str, int] = field(default_factory=other_activity)
    load_end: float | None = None
    activity_end: dict[str, int] | None = None
    python: str = field(default_factory=lambda: sys.version.split()[0])

    def finish(self) -> None:
        self.load_end = load_average()
        self.activity_end = other_activity()

    def describe(self) -> str:
        def busy(activity: dict[str, int] | None) -> str:
            if not activity:
                return "nothing else seen"
            return ", ".join(f"{n} {label}" for label, n in sorted(activity.items()))

        end = "?" if self.load_end is None else f"{self.load_end:.2f}"
        return (
            f"{self.started} UTC, {self.cpus} cores, Python {self.python}; "
            f"load(1m) {self.load_start:.2f} -> {end}; "
            f"other processes at start: {busy(self.activity_start)}; "
            f"at end: {busy(self.activity_end)}"
        )


# ---------------------------------------------------------------------------------------------
# statistics and printing


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Spread:
    """Median of repeated runs with their range (min, max)."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    def show(self, fmt: str = "{:.1f}") -> str:
        if self.n == 0:
            return "-"
        if self.n == 1:
            return fmt.format(self.median)
        return f"{fmt.format(self.median)} ({fmt.format(self.low)}–{fmt.format(self.high)})"


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1
) -> None:
    """A plain-text table; the first ``left`` columns (labels) are left-aligned, numbers right."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i < left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def common_arguments(parser: argparse.ArgumentParser, *, repeat: int = 3) -> None:
    parser.add_argument(
        "--repeat", type=int, default=repeat, help=f"runs per configuration [{repeat}]"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")


def db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        nargs="+",
        choices=DB_KINDS,
        default=list(DB_KINDS),
        help="ledger databases to measure [both]",
    )


def emit_json(benchmark: str, note: MachineNote, parameters: dict[str, Any], data: Any) -> None:
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "machine": asdict(note),
                "parameters": parameters,
                "results": data,
            },
            indent=2,
            default=str,
        )
    )


def progress(message: str) -> None:
    """Progress goes to stderr so that ``--json`` output stays clean."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# services


def port_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+psycopg", ""))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def require_services(db_kinds: Sequence[str], wait: float = 60.0) -> None:
    """Exit with a reason unless RabbitMQ (and PostgreSQL if asked for) answer within ``wait``.

    Other people's recovery tests restart the broker now and then; a short wait rides that out.
    """
    deadline = time.monotonic() + wait
    while True:
        missing = _missing_services(db_kinds)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise SystemExit("not reachable: " + "; ".join(missing))
        progress(f"waiting for {'; '.join(missing)} ...")
        time.sleep(2)


def _missing_services(db_kinds: Sequence[str]) -> list[str]:
    missing = []
    if not port_open(BROKER_URL, 5672):
        missing.append(f"RabbitMQ at {BROKER_URL}")
    if "postgresql" in db_kinds and not port_open(POSTGRES_ADMIN_URL, 5432):
        missing.append(f"PostgreSQL at {POSTGRES_ADMIN_URL} (or pass --db sqlite)")
    return missing


class ScratchDatabases:
    """Fresh migrated ledgers, cloned from one migrated template; all removed on exit.

    SQLite: files in a temporary directory. PostgreSQL: ``belegsync_bench_<run>_<n>`` databases
    created with ``TEMPLATE`` and dropped ``WITH (FORCE)``.
    """

    def __init__(self, kind: str) -> None:
        if kind not in DB_KINDS:
            raise ValueError(f"unknown database kind {kind!r}")
        self.kind = kind
        self.run = uuid.uuid4().hex[:8]
        self.dir = Path(tempfile.mkdtemp(prefix=f"belegsync-bench-{self.run}-"))
        self._created: list[str] = []
        self._template: str | None = None
        self._admin = (
            create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            if kind == "postgresql"
            else None
        )

    def __enter__(self) -> ScratchDatabases:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _pg_url(self, name: str) -> str:
        return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def _execute(self, sql: str, *, retry_for: float = 0.0) -> None:
        """Run one admin statement; keep trying for ``retry_for`` seconds while PostgreSQL is
        away (other people's recovery tests restart it)."""
        assert self._admin is not None
        deadline = time.monotonic() + retry_for
        while True:
            try:
                with self._admin.connect() as conn:
                    conn.execute(text(sql))
                return
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def _template_name(self) -> str:
        if self._template is None:
            if self.kind == "sqlite":
                path = self.dir / "template.db"
                migrations.upgrade(f"sqlite:///{path}")
                self._template = str(path)
            else:
                name = f"belegsync_bench_{self.run}_tpl"
                self._execute(f'CREATE DATABASE "{name}"')
                self._created.append(name)
                migrations.upgrade(self._pg_url(name))
                self._template = name
        return self._template

    def new(self) -> str:
        """The URL of a fresh, migrated, empty ledger."""
        template = self._template_name()
        number = len(self._created)
        if self.kind == "sqlite":
            path = self.dir / f"ledger-{number}.db"
            shutil.copy(template, path)
            self._created.append(str(path))
            return f"sqlite:///{path}"
        name = f"belegsync_bench_{self.run}_{number}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._created.append(name)
        return self._pg_url(name)

    def drop(self, url: str) -> None:
        """Remove one ledger now (long benchmarks should not pile databases up)."""
        if self.kind == "sqlite":
            database = make_url(url).database or ""
            for suffix in ("", "-wal", "-shm", ".locks"):
                Path(database + suffix).unlink(missing_ok=True)
            if database in self._created:
                self._created.remove(database)
            return
        name = make_url(url).database or ""
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', retry_for=90)
        if name in self._created:
            self._created.remove(name)

    def close(self) -> None:
        if self._admin is not None:
            for name in reversed(self._created):
                try:
                    self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', retry_for=90)
                except OperationalError as e:
                    progress(
                        f"WARNING: could not drop scratch database {name} ({_first_line(e)}); "
                        f'drop it by hand: DROP DATABASE "{name}" WITH (FORCE)'
                    )
            self._admin.dispose()
        self._created.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


class ShiftedClock:
    """``time.time`` plus ``offset`` seconds: seed documents "ten minutes ago", then reset."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def purge_work_queues(broker: Broker, directions: Sequence[Direction] = tuple(Direction)) -> None:
    """Drop every message waiting in these work queues (between runs of one benchmark)."""
    with broker.lock:
        channel = broker.connection.channel()  # type: ignore[no-untyped-call]  # kombu
        try:
            for direction in directions:
                channel.queue_purge(broker.topology.work_queue_name(direction))
        finally:
            channel.close()


def start_simulators(
    *,
    per_minute: int = 100_000,
    billomat_limit: int = 100_000,
    gmi_clock: ShiftedClock | None = None,
) -> Simulators:
    """Both simulators on free ports with one account each and the quotas raised."""
    sims = Simulators()
    if gmi_clock is not None:
        sims.gmi = GmiSimulator(clock=gmi_clock)
    sims.start()
    sims.gmi.add_account(GMI_KEY)
    sims.gmi.set_limits(GMI_KEY, per_minute=per_minute, per_day=10**7, uploads_per_hour=10**7)
    sims.billomat.add_tenant(BILLOMAT_ID, BILLOMAT_KEY, limit=billomat_limit)
    return sims


class SqlCounter:
    """What an engine does: DB-API connections opened, pool checkouts, transactions, statements.

    Listens to SQLAlchemy's public events.  Not counted: the product's SQLite PRAGMAs on every
    new connection (3, run on the raw connection) and PostgreSQL's ``pool_pre_ping`` (one
    ``SELECT 1`` round trip per checkout).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connects = 0
        self.checkouts = 0
        self.transactions = 0
        self.statements = 0
        self.verbs: dict[str, int] = {}
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "checkout", self._on_checkout)
        event.listen(engine, "begin", self._on_begin)
        event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_connect(self, *_: Any) -> None:
        self.connects += 1

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts += 1

    def _on_begin(self, *_: Any) -> None:
        self.transactions += 1

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements += 1
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        self.verbs[verb] = self.verbs.get(verb, 0) + 1

    def reset(self) -> None:
        self.connects = self.checkouts = self.transactions = self.statements = 0
        self.verbs = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "connects": self.connects,
            "checkouts": self.checkouts,
            "transactions": self.transactions,
            "statements": self.statements,
            "verbs": dict(sorted(self.verbs.items())),
        }

    def close(self) -> None:
        event.remove(self.engine, "connect", self._on_connect)
        event.remove(self.engine, "checkout", self._on_checkout)
        event.remove(self.engine, "begin", self._on_begin)
        event.remove(self.engine, "before_cursor_execute", self._on_execute)


# ---------------------------------------------------------------------------------------------
# child processes


@dataclass(frozen=True)
class Usage:
    """What a finished child process used.

    ``cpu_s`` comes from ``wait4``. ``peak_rss_kib`` is the largest ``VmHWM`` read from
    ``/proc/<pid>/status`` while the child ran (0 if never read): ``wait4``'s ``ru_maxrss`` is
    no use here, because Linux carries the parent's high-water mark over fork and exec.
    """

    cpu_s: float
    peak_rss_kib: int
    exit_code: int


def vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set size so far, 0 when it cannot be read (exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def reap(process: subprocess.Popen[bytes], timeout: float) -> Usage | None:
    """Wait for ``process`` (SIGKILL after ``timeout``) and return its resource usage.

    None when something else already reaped it (``Popen.poll()`` does that for an early exit).
    """
    deadline = time.monotonic() + timeout
    killed = False
    peak = 0
    while True:
        peak = max(peak, vm_hwm_kib(process.pid))
        try:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return Usage(usage.ru_utime + usage.ru_stime, peak, process.returncode)
        if time.monotonic() > deadline:
            if killed:
                raise RuntimeError(f"process {process.pid} survived SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + 10
        time.sleep(0.02)


def own_cpu_seconds() -> float:
    """CPU time of this process so far: the in-process simulators plus the benchmark driver."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


SERVICES = {"beam.smp": "rabbitmq", "postgres": "postgresql"}
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_cpu_seconds(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds a running process has used so far (0 when it cannot be read)."""
    try:
        return _stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return 0.0


def service_cpu() -> dict[str, dict[int, float]]:
    """CPU seconds so far of every RabbitMQ and PostgreSQL process, by service and pid."""
    found: dict[str, dict[int, float]] = {name: {} for name in SERVICES.values()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        service = SERVICES.get(comm)
        if service is None:
            continue
        found[service][int(entry.name)] = _stat_cpu_seconds(stat)
    return found


def service_cpu_delta(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds each service spent in between (processes that ended meanwhile are missed).

    Machine-wide: other people's tests using the same RabbitMQ or PostgreSQL are included.
    """
    return {
        service: sum(t - before.get(service, {}).get(pid, 0.0) for pid, t in pids.items())
        for service, pids in after.items()
    }


# ---------------------------------------------------------------------------------------------
# one run: settings, ledger, accounts, broker queues, processes


class Run:
    """One measured run: a ledger, a queue prefix of its own, the simulators, child processes.

    ``close()`` stops the children, deletes the run's queues and exchanges and drops the ledger.
    """

    def __init__(self, databases: ScratchDatabases, sims: Simulators, **overrides: Any) -> None:
        self.databases = databases
        self.sims = sims
        self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=databases.dir))
        self.database_url = databases.new()
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "broker_url": BROKER_URL,
            "queue_prefix": f"bench-{uuid.uuid4().hex[:10]}",
            "secret_key": generate_key(),
            "secret_key_file": self.dir / "belegsync.key",
            "gmi_base_url": sims.gmi_base_url,
            "billomat_base_url": sims.billomat_url_template,
            "retry_delays": "1s,2s,5s",
            # start_simulators raises GMI's limits; GMI announces nothing, so belegsync's own
            # count must be told as much (a benchmark with real limits overrides these)
            **RAISED_GMI_LIMITS,
        }
        values.update(overrides)
        self.settings = Settings(**values)
        self.db = Database(self.database_url)
        assert self.settings.secret_key is not None
        self.box = SecretBox(self.settings.secret_key.get_secret_value())
        self.accounts = AccountService(self.db, lambda: self.box)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.names: dict[int, str] = {}
        self.usage: dict[str, Usage] = {}
        self._logs: list[Any] = []

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- accounts ------------------------------------------------------------------------------

    def add_export(self, name: str = "bench-export", **rules: Any) -> int:
        changes = AccountChanges(
            gmi_api_key=GMI_KEY, billomat_id=BILLOMAT_ID, billomat_api_key=BILLOMAT_KEY, **rules
        )
        changes.require_approval = bool(changes.require_approval)
        changes.archive_after_transfer = bool(changes.archive_after_transfer)
        return self.accounts.add(Direction.EXPORT, name, changes).id

    def add_import(self, name: str = "bench-import", **rules: Any) -> int:
        changes = AccountChanges(
            gmi_api_key=GMI_KEY, billomat_id=BILLOMAT_ID, billomat_api_key=BILLOMAT_KEY, **rules
        )
        return self.accounts.add(Direction.IMPORT, name, changes).id

    # -- processes -----------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """These settings as the environment of a ``belegsync`` child process."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("BELEGSYNC_")}
        env.update(
            BELEGSYNC_DATABASE_URL=s.database_url,
            BELEGSYNC_BROKER_URL=s.broker_url,
            BELEGSYNC_QUEUE_PREFIX=s.queue_prefix,
            BELEGSYNC_SECRET_KEY=s.secret_key.get_secret_value() if s.secret_key else "",
            BELEGSYNC_GMI_BASE_URL=s.gmi_base_url,
            BELEGSYNC_BILLOMAT_BASE_URL=s.billomat_base_url,
            BELEGSYNC_RETRY_DELAYS=s.retry_delays,
            BELEGSYNC_METRICS_PORT="0",
            PYTHONPATH=str(REPO),
        )
        env.update(s.quota_environment())
        return env

    def spawn(self, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        """``belegsync <args>`` as a child process; its output goes to a log in the run dir."""
        log = open(self.dir / log_name, "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=self.env(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        self.names[process.pid] = log_name.removesuffix(".log")
        return process

    def log_text(self, log_name: str) -> str:
        path = self.dir / log_name
        return path.read_text(errors="replace") if path.exists() else ""

    def produce_once(self, timeout: float = 600.0) -> tuple[float, str]:
        """``belegsync produce --once`` as a child process: (seconds, its output)."""
        started = time.perf_counter()
        process = self.spawn("produce", "--once", log_name="produce.log")
        usage = reap(process, timeout)
        seconds = time.perf_counter() - started
        if usage is not None:
            self.usage["produce"] = usage
        self.processes.remove(process)
        output = self.log_text("produce.log")
        if process.returncode != 0:
            raise RuntimeError(f"produce --once failed ({process.returncode}):\n{output[-2000:]}")
        return seconds, output

    def wait_for_consumers(self, direction: Direction, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` consumers are attached to the direction's work queue."""
        broker = bootstrap.broker(self.settings)
        broker.connect(retries=3)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                depth = broker.queue_depths().get((direction.value, "work"))
                if depth is not None and depth.consumers >= count:
                    return
                for process in self.processes:
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"a child exited early ({process.returncode}); logs in {self.dir}"
                        )
                time.sleep(0.1)
        finally:
            broker.close()
        raise RuntimeError(f"{count} consumer(s) did not attach within {timeout:.0f}s")

    def wait_until(
        self, condition: Callable[[], bool], *, timeout: float, what: str, every: float = 0.1
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(every)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.dir}")

    def wait_for(self, process: subprocess.Popen[bytes], timeout: float) -> Usage:
        """Wait until a child exits by itself (SIGKILL after ``timeout``); its usage."""
        usage = reap(process, timeout)
        self.processes.remove(process)
        if usage is None:
            raise RuntimeError(f"child {process.pid} was reaped elsewhere; logs in {self.dir}")
        self.usage[self.names[process.pid]] = usage
        return usage

    def stop_processes(self, timeout: float = 30.0, *, kill: bool = False) -> None:
        """SIGTERM (a consumer finishes the message in hand), then SIGKILL after ``timeout``;
        ``kill=True`` sends SIGKILL at once (fine once every document is synced: it saves the
        consumers' second or two of shutting down, which nobody measures).

        Each child's resource usage lands in ``usage`` under its log name without ``.log``.
        """
        for process in self.processes:
            # Not Popen.send_signal: its poll() would reap the child and lose its usage.
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        for process in self.processes:
            usage = reap(process, timeout)
            if usage is not None:
                self.usage[self.names[process.pid]] = usage
        self.processes.clear()

    def close(self) -> None:
        """Clean up as much as possible; a failing step is reported, never raised, so that it
        cannot hide the error that ended the run."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("stop child processes", self.stop_processes),
            ("close logs", self._close_logs),
            ("delete the run's queues", self._delete_queues),
            ("dispose of the engine", self.db.dispose),
            ("drop the ledger", lambda: self.databases.drop(self.database_url)),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as e:
                progress(f"WARNING: could not {what}: {_first_line(e)}")

    def _close_logs(self) -> None:
        for log in self._logs:
            log.close()

    def _delete_queues(self) -> None:
        broker = bootstrap.broker(self.settings)
        try:
            broker.connect(retries=10)
            broker.delete_all()
        finally:
            broker.close()


@contextmanager
def simulators(**options: Any) -> Iterator[Simulators]:
    """``start_simulators(**options)`` for the length of a ``with`` block."""
    sims = start_simulators(**options)
    try:
        yield sims
    finally:
        sims.stop()


def _first_line(error: BaseException) -> str:
    return (str(error) or type(error).__name__).splitlines()[0][:200]
