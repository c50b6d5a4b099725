"""Runs `belegsync demo` as a user would, in a directory of its own, and looks for leftovers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import amqp.exceptions
import pytest
from kombu import Connection

from app.bootstrap import topology
from app.demo import RETRY_DELAYS
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# What a user of belegsync already has in the directory the demo is started from.
USER_FILES = {"belegsync.db": b"the user's own database", "belegsync.key": b"the user's own key"}
USER_PREFIX = "belegsync-user-installation"


@dataclass
class DemoSandbox:
    """A working directory with the user's files, a private TMPDIR, and the demo's env."""

    cwd: Path
    tmpdir: Path
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "app.cli", "demo", *args]

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def temp_leftovers(self) -> list[str]:
        return sorted(p.name for p in self.tmpdir.iterdir())

    def user_files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.cwd.iterdir()}


@pytest.fixture
def demo_sandbox(tmp_path: Path) -> DemoSandbox:
    cwd = tmp_path / "user"
    tmpdir = tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    for name, content in USER_FILES.items():
        (cwd / name).write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELEGSYNC_")}
    env.update(
        TMPDIR=str(tmpdir),
        # The user's own installation: the demo must use neither its queues nor its files.
        BELEGSYNC_QUEUE_PREFIX=USER_PREFIX,
        BELEGSYNC_DATABASE_URL=f"sqlite:///{cwd / 'belegsync.db'}",
        BELEGSYNC_SECRET_KEY_FILE=str(cwd / "belegsync.key"),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return DemoSandbox(cwd, tmpdir, env)


@pytest.fixture
def demo(demo_sandbox: DemoSandbox, broker_url: str) -> DemoSandbox:
    demo_sandbox.env["BELEGSYNC_BROKER_URL"] = broker_url
    return demo_sandbox


def closed_port() -> int:
    """A local port nobody listens on (bound once by us, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_leftovers(broker_url: str, prefix: str) -> list[str]:
    """Queues and exchanges of ``prefix`` that still exist, by passive declare (creates none)."""
    names = topology(Settings(queue_prefix=prefix, retry_delays=RETRY_DELAYS))
    queues = [queue.name for _, _, queue in names.queues()]
    exchanges = [names.work_exchange, names.parking_exchange] + [
        names.retry_exchange(t) for t in range(len(names.retry_delays))
    ]
    found: list[str] = []
    with Connection(broker_url, connect_timeout=10) as conn:
        for queue in queues:
            channel = conn.channel()
            try:
                channel.queue_declare(queue=queue, passive=True)
                found.append(f"queue {queue}")
            except amqp.exceptions.NotFound:
                continue  # a failed passive declare closes the channel
            channel.close()
        for exchange in exchanges:
            channel = conn.channel()
            try:
                channel.exchange_declare(exchange.name, exchange.type, passive=True)
                found.append(f"exchange {exchange.name}")
            except amqp.exceptions.NotFound:
                continue
            channel.close()
    return found


def processes_with_prefix(prefix: str) -> list[int]:
    """Live processes whose environment names this queue prefix (the demo's children)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    marker = f"BELEGSYNC_QUEUE_PREFIX={prefix}".encode()
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids
