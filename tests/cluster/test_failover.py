"""The broker connection with several nodes, against the machine's RabbitMQ and closed ports.

Quick checks of what the three-node cluster test relies on: a node that refuses is skipped, a
lost node is not the first one tried again, the replication size of an existing queue does not
stop a process, and a bad URL is one clear line.  And of the cluster harness itself: it cannot
reach the machine's own node, and it kills only what an earlier run of it left behind.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from shared.broker import Broker
from shared.domain import Direction
from shared.errors import BrokerUnavailableError, SetupError
from shared.settings import Settings
from shared.topology import QUORUM_SIZE_ARG, Topology
from tests.cluster.rabbit import PIDS_DIR, Node, RabbitCluster, free_port, kill_leftovers, tool

PASSWORD = "node-secret-7"


def closed_node() -> str:
    """A URL nobody listens on (connection refused at once)."""
    return f"amqp://guest:{PASSWORD}@127.0.0.1:{free_port()}//"


@pytest.fixture
def topology(queue_prefix: str) -> Topology:
    return Topology(queue_prefix, (1, 2))


def cleanup(broker: Broker) -> None:
    try:
        broker.delete_all()
    finally:
        broker.close()


def test_a_refusing_node_is_skipped_and_the_next_one_taken(
    broker_url: str, topology: Topology
) -> None:
    broker = Broker(f"{closed_node()};{broker_url}", topology)
    broker.connect(retries=0)
    try:
        assert broker.ping()
        assert broker.node is not None
        assert broker.node.endswith(broker_url.split("@", 1)[1])
        assert broker.connects == 1
    finally:
        cleanup(broker)


class DeadNode:
    """A port that accepts TCP connections and closes them at once, counting them."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        self.attempts = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.attempts += 1
            conn.close()

    def close(self) -> None:
        self.socket.close()


def test_after_a_lost_connection_the_next_node_is_tried_first(
    broker_url: str, topology: Topology
) -> None:
    dead = DeadNode()
    broker = Broker(f"{broker_url};amqp://guest:guest@127.0.0.1:{dead.port}//", topology)
    try:
        broker.connect()
        assert dead.attempts == 0  # the first node answered
        broker.close()  # as when that node went away
        broker.connect()  # starts with the other node, which fails, then comes back
        assert dead.attempts == 1
        assert broker.ping()
        assert broker.connects == 2
    finally:
        dead.close()
        cleanup(broker)


def test_no_node_answering_is_one_error_naming_every_node_without_passwords(
    topology: Topology,
) -> None:
    broker = Broker(f"{closed_node()};{closed_node()}", topology)
    with pytest.raises(BrokerUnavailableError) as failed:
        broker.connect(retries=0)
    text = str(failed.value)
    assert text.count("amqp://guest:**@127.0.0.1:") == 2
    assert PASSWORD not in text
    assert PASSWORD not in repr(broker)


def test_a_queue_with_another_replication_size_is_taken_as_it_is(
    broker_url: str, queue_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    plain = Broker(broker_url, Topology(queue_prefix, (1,)))
    plain.connect()
    try:
        assert QUORUM_SIZE_ARG not in (
            plain.topology.work_queue(Direction.EXPORT).queue_arguments or {}
        )
        sized = Broker(broker_url, Topology(queue_prefix, (1,), quorum_replicas=1))
        with caplog.at_level(logging.WARNING, logger="shared.topology"):
            sized.connect()
        try:
            assert sized.ping()
            # the publish channel still works after the refused redeclare
            sized.publish_work(b"{}", Direction.EXPORT)
            assert sized.queue_depths()[("export", "work")].messages == 1
        finally:
            sized.close()
        assert "BELEGSYNC_QUORUM_REPLICAS applies to new queues only" in caplog.text
    finally:
        cleanup(plain)


def test_replication_size_is_declared_on_every_quorum_queue(queue_prefix: str) -> None:
    topology = Topology(queue_prefix, (1, 2), quorum_replicas=3)
    for _, _, queue in topology.queues():
        assert queue.queue_arguments is not None
        assert queue.queue_arguments["x-queue-type"] == "quorum"
        assert queue.queue_arguments[QUORUM_SIZE_ARG] == 3
    assert all(
        QUORUM_SIZE_ARG not in (q.queue_arguments or {})
        for _, _, q in Topology(queue_prefix, (1,)).queues()
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://rabbit:5672//",
        f"amqp://guest:{PASSWORD}@a:5672//;redis://b:6379/0",
        " ; ",
    ],
)
def test_a_bad_broker_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(SetupError) as refused:
        Settings(broker_url=url)
    message = str(refused.value)
    assert message.startswith("BELEGSYNC_BROKER_URL")
    assert PASSWORD not in message


def test_cli_says_in_one_line_what_is_wrong_with_the_broker_url() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "status"],
        env={"BELEGSYNC_BROKER_URL": f"amqp://guest:{PASSWORD}@a//;http://b//", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "BELEGSYNC_BROKER_URL" in lines[0]
    assert PASSWORD not in result.stderr


# -- the cluster harness keeps its hands off the machine's node ------------------------------


def test_cluster_harness_cannot_reach_the_machines_own_node(tmp_path: Path) -> None:
    if tool("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    cluster = RabbitCluster(tmp_path / "c")
    assert all(not node.name.startswith("rabbit@") for node in cluster.nodes)
    # Its own Erlang cookie: even a mistaken -n rabbit@localhost is refused.
    machine = Node("rabbit@localhost", 5672, 25672, tmp_path)
    with pytest.raises(RuntimeError, match="rabbitmqctl -n rabbit@localhost"):
        cluster.ctl(machine, "status", timeout=60)


def test_leftover_nodes_of_a_killed_run_are_killed_and_nothing_else(tmp_path: Path) -> None:
    PIDS_DIR.mkdir(parents=True, exist_ok=True)
    name = f"bsct9-{uuid.uuid4().hex[:6]}"
    ours = subprocess.Popen(
        ["sleep", "300"], env={"RABBITMQ_NODENAME": f"{name}@localhost"}, start_new_session=True
    )
    stranger = subprocess.Popen(["sleep", "300"], env={}, start_new_session=True)
    # Popen may return before the kernel has set up the new program's environment (vfork);
    # a real leftover has long been running.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if b"RABBITMQ_NODENAME" in Path(f"/proc/{ours.pid}/environ").read_bytes():
            break
        time.sleep(0.01)
    (PIDS_DIR / f"{name}.pgid").write_text(str(ours.pid))
    (PIDS_DIR / f"{name}x.pgid").write_text(str(stranger.pid))  # environ does not match
    try:
        report = kill_leftovers()
        assert f"{name}: killed {ours.pid}" in report, report
        assert f"{name}x: {stranger.pid} is not ours" in report, report
        assert ours.wait(30) == -signal.SIGKILL
        assert stranger.poll() is None
        assert not (PIDS_DIR / f"{name}.pgid").exists()
    finally:
        for process in (ours, stranger):
            if process.poll() is None:
                process.kill()
                process.wait(10)
