"""A throw-away RabbitMQ cluster of the installed ``rabbitmq-server``, on this machine.

Each node gets its own node name (with a per-run suffix, so two test runs never meet), AMQP
and distribution ports, data, log, config and plugin files in a temp dir, and its own Erlang
cookie there (``HOME``), so nothing here can reach the machine's own node ``rabbit@localhost``
on 5672.  Every ``rabbitmqctl`` call names its node with ``-n``.  Nodes are started in a
process group of their own and killed by that group's id; their pids are also written to
``PIDS_DIR`` so that a run killed before its finalizers could run is cleaned up by the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
PIDS_DIR = Path("/tmp/belegsync-cluster-test")
START_TIMEOUT = 120.0


def tool(name: str) -> str | None:
    """The server's own scripts: the /usr/sbin wrappers would switch to the rabbitmq user."""
    path = RABBITMQ_BIN / name
    if path.exists():
        return str(path)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1):
            return True
    except OSError:
        return False


@dataclass
class Node:
    name: str  # e.g. bsct1-1a2b3c@localhost
    port: int
    dist_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = None
    stops: int = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def short(self) -> str:
        return self.name.split("@", 1)[0]

    @property
    def pid_file(self) -> Path:
        return PIDS_DIR / f"{self.short}.pgid"


@dataclass
class RabbitCluster:
    """Three (or ``size``) nodes, started, clustered, stopped and killed by this test run."""

    root: Path
    size: int = 3
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.cookie = self.root / ".erlang.cookie"
        self.cookie.write_text(secrets.token_hex(16))
        self.cookie.chmod(0o400)
        (self.root / "enabled_plugins").write_text("[].\n")
        for n in range(1, self.size + 1):
            base = self.root / f"node{n}"
            base.mkdir()
            node = Node(f"bsct{n}-{self.run_id}@localhost", free_port(), free_port(), base)
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = 127.0.0.1:{node.port}\n"
                "log.console = false\n"
                "log.file.level = info\n"
                # A loaded two-core test machine: give peers time before declaring them gone.
                "net_ticktime = 20\n"
            )
            # Without a file of its own the node would read the machine's rabbitmq-env.conf,
            # which names the machine's node.
            (base / "rabbitmq-env.conf").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")
            self.nodes.append(node)

    # -- environment -----------------------------------------------------------------------------

    def env(self, node: Node | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        base = node.base if node is not None else self.root
        env.update(
            HOME=str(self.root),  # the cookie
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf")
            if node
            else str(self.nodes[0].base / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        if node is not None:
            env.update(
                RABBITMQ_NODENAME=node.name,
                RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                RABBITMQ_NODE_PORT=str(node.port),
                RABBITMQ_DIST_PORT=str(node.dist_port),
                RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
                RABBITMQ_LOG_BASE=str(base / "log"),
                RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
                RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
                RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
                # One scheduler each: three brokers share two cores with everything else.
                RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +A 8",
                ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}",
            )
        return env

    def ctl(self, node: Node, *args: str, timeout: float = 120.0, check: bool = True) -> str:
        """``rabbitmqctl -n <node> …`` (never without ``-n``: the machine has its own node)."""
        command = [tool("rabbitmqctl") or "rabbitmqctl", "-n", node.name, *args]
        result = subprocess.run(
            command, env=self.env(), capture_output=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {node.name} {' '.join(args)} failed: "
                f"{result.stderr.decode(errors='replace').strip()[-800:]}"
            )
        return result.stdout.decode(errors="replace")

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, node: Node) -> None:
        """Start a node's Erlang VM in a process group of its own (returns at once)."""
        assert node.process is None or node.process.poll() is not None, f"{node.name} runs"
        (node.base / "log").mkdir(exist_ok=True)
        out = open(node.base / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it open
        node.process = subprocess.Popen(
            [tool("rabbitmq-server") or "rabbitmq-server"],
            env=self.env(node),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        PIDS_DIR.mkdir(parents=True, exist_ok=True)
        node.pid_file.write_text(str(node.process.pid))

    def await_started(self, node: Node, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"{node.name} exited: {self.tail(node)}")
            if port_open(node.port):
                self.ctl(node, "await_startup", "--timeout", "60")
                return
            time.sleep(0.5)
        raise RuntimeError(f"{node.name} did not start within {timeout:.0f}s: {self.tail(node)}")

    def form(self) -> None:
        """Start every node and join the others to the first."""
        for node in self.nodes:
            self.start(node)
        for node in self.nodes:
            self.await_started(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        self.await_members(len(self.nodes))

    def running_nodes(self, via: Node) -> list[str]:
        status = json.loads(self.ctl(via, "cluster_status", "--formatter", "json"))
        return sorted(status.get("running_nodes", []))

    def await_members(self, count: int, timeout: float = 60.0) -> None:
        via = self.alive()[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.running_nodes(via)) == count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the cluster did not reach {count} running nodes")

    def kill(self, node: Node) -> None:
        """SIGKILL the node's whole process group: a machine that just went away."""
        if node.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait(30)
        node.process = None
        node.stops += 1

    def shutdown(self, node: Node) -> None:
        """Stop the node the orderly way (``rabbitmqctl shutdown``)."""
        self.ctl(node, "shutdown", "--timeout", "60", check=False)
        if node.process is not None:
            try:
                node.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(30)
            node.process = None
        node.stops += 1

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def destroy(self) -> None:
        """Kill every node this run started (by process group) and forget them."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(30)
            node.process = None
            node.pid_file.unlink(missing_ok=True)

    # -- inspection ------------------------------------------------------------------------------

    def queue_info(self, via: Node, name: str) -> dict[str, Any]:
        """leader, members, online and messages of one queue, as RabbitMQ reports them."""
        rows = json.loads(
            self.ctl(
                via,
                "list_queues",
                "name",
                "leader",
                "members",
                "online",
                "messages",
                "--formatter",
                "json",
            )
        )
        for row in rows:
            if row.get("name") == name:
                return dict(row)
        raise KeyError(name)

    def node_named(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def tail(self, node: Node, lines: int = 15) -> str:
        texts = []
        for path in [node.base / "stdout.log", *sorted((node.base / "log").glob("*.log"))]:
            if path.exists():
                texts.append(path.read_text(errors="replace").splitlines()[-lines:])
        return " | ".join(line for text in texts for line in text)[-2000:]


def kill_leftovers() -> list[str]:
    """Kill node groups a previous, killed test run left behind (their pids are on file).

    Returns what happened to each pid file, for the test of this function.
    """
    report: list[str] = []
    if not PIDS_DIR.is_dir():
        return report
    for pid_file in sorted(PIDS_DIR.glob("bsct*.pgid")):
        try:
            pgid = int(pid_file.read_text().strip())
            # Only a process group whose leader still runs with our node name.
            environ = Path(f"/proc/{pgid}/environ").read_bytes()
            ours = f"RABBITMQ_NODENAME={pid_file.stem}@".encode()
            if any(entry.startswith(ours) for entry in environ.split(b"\0")):
                os.killpg(pgid, signal.SIGKILL)
                report.append(f"{pid_file.stem}: killed {pgid}")
            else:
                report.append(f"{pid_file.stem}: {pgid} is not ours")
        except (OSError, ValueError) as e:
            report.append(f"{pid_file.stem}: {e!r}")
        pid_file.unlink(missing_ok=True)
    return report
