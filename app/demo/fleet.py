"""The demo's child processes: one producer per round, N consumers for the whole demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.demo.model import CONSUMER_IDLE_EXIT, LOG_TAIL_LINES, STOP_GRACE_SECONDS
from shared.settings import Settings

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
    code_root = str(Path(__file__).resolve().parents[2])
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
                [sys.executable, "-m", "app.cli", *args],
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
