"""Beyond one machine: a three-node RabbitMQ cluster loses nodes while documents flow.

Export and import run on PostgreSQL with three `belegsync consume` processes, `belegsync
produce --once` in waves and a `belegsync webhooks` receiver, all given the three nodes in
kombu's failover syntax.  During the run the node leading the export work queue is killed
(SIGKILL), brought back, and then the queue's new leader is shut down.  Every document must
land exactly once, the ledger must agree with both targets, and no work or delay queue may keep
a message.  The figures (documents, node stops, reconnects, lost, duplicates) are printed.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app import bootstrap
from shared.accounts import AccountChanges
from shared.domain import Direction
from simulators import Simulators
from tests.cluster.rabbit import Node, RabbitCluster, free_port
from tests.conftest import PostgresDatabases, service_missing
from tests.e2e.conftest import RAISED_GMI_LIMITS, Pipeline, PipelineFactory, settings_env

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

GMI_KEY = "gmi-cluster-export"
TENANT = "clusterco"
IMPORT_GMI_KEY = "gmi-cluster-import"
IMPORT_TENANT = "clusterin"
HOOK_USER, HOOK_PASSWORD = "cluster-hook", "cluster-hook-secret"
# Per wave: wave 1 before the consumers start, wave 2 while the first node is down, wave 3
# while the second is.
EXPORT_WAVE = 40
IMPORT_WAVE = 16
# Slow enough answers that the consumers are busy when the nodes go away.
API_LATENCY = 0.15
RECONNECTED = re.compile(r"reconnected to RabbitMQ at \S+ \(connection (\d+)\)")


def sha(content: bytes | None) -> str:
    assert content is not None
    return hashlib.sha256(content).hexdigest()


def rotated(nodes: list[Node], start: int) -> str:
    """All nodes, in kombu's failover syntax, beginning with ``nodes[start]``."""
    order = nodes[start:] + nodes[:start]
    return ";".join(node.url for node in order)


@pytest.fixture
def cluster_pipeline(
    rabbit_cluster: RabbitCluster,
    pipeline_factory: PipelineFactory,
    postgres_databases: PostgresDatabases | None,
) -> Iterator[Pipeline]:
    if postgres_databases is None:
        service_missing("PostgreSQL")
        raise AssertionError("unreachable")
    url = postgres_databases.create(migrated=True)
    try:
        pipeline = pipeline_factory(
            url,
            broker_url=rotated(rabbit_cluster.nodes, 0),
            quorum_replicas=3,
            retry_delays="1s,2s,3s",
            max_attempts=30,
            # the simulator's GMI limits are raised below; belegsync's own count must know it
            **RAISED_GMI_LIMITS,
        )
        # The cluster is killed with its queues after this module: deleting a dozen quorum
        # queues across three nodes first would only cost half a minute.
        pipeline.broker_disposable = True
        yield pipeline
    finally:
        postgres_databases.drop(url)


class Run:
    """The documents of one run and where they must end up."""

    def __init__(self, pipeline: Pipeline, sims: Simulators, webhook_url: str) -> None:
        self.pipeline = pipeline
        self.sims = sims
        self.webhook_url = webhook_url
        self.exported: dict[str, int] = {}  # sha256 -> GMI uid
        self.imported: dict[str, int] = {}  # sha256 -> Billomat invoice id
        self.webhook_statuses: Counter[int] = Counter()

    def seed(self, wave: int, *, webhooks: bool) -> None:
        for n in range(EXPORT_WAVE):
            uid = self.sims.gmi.seed_document(GMI_KEY, document_number=f"W{wave}-{n:03d}")
            self.exported[sha(self.sims.gmi.document_content(GMI_KEY, uid))] = uid
        for _ in range(IMPORT_WAVE):
            bid = self.sims.billomat.add_document(IMPORT_TENANT, "invoices")
            self.imported[sha(self.sims.billomat.pdf_content(IMPORT_TENANT, "invoices", bid))] = bid
            if webhooks:
                status = self.sims.billomat.send_webhook(
                    self.webhook_url, billomat_id=IMPORT_TENANT, event="invoice.create",
                    kind="invoices", id=bid, auth=(HOOK_USER, HOOK_PASSWORD),
                )  # fmt: skip
                self.webhook_statuses[status] += 1

    @property
    def total(self) -> int:
        return len(self.exported) + len(self.imported)

    def synced(self) -> int:
        return Counter(self.pipeline.states().values()).get("synced", 0)


def produce_once(pipeline: Pipeline, logs: Path, wave: int) -> None:
    """`belegsync produce --once` as its own process, on the failover URL."""
    process = pipeline.spawn("produce", "--once", log=logs / f"produce-{wave}.log")
    assert process.wait(180) == 0, (logs / f"produce-{wave}.log").read_text()[-2000:]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def reconnects(log: Path) -> int:
    """Connections a process opened after its first one, from its log."""
    numbers = [int(m.group(1)) for m in RECONNECTED.finditer(log.read_text(errors="replace"))]
    return max(numbers, default=1) - 1


def test_three_node_cluster_loses_a_node_twice_and_every_document_lands_once(
    rabbit_cluster: RabbitCluster,
    cluster_pipeline: Pipeline,
    sims: Simulators,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster, pipeline = rabbit_cluster, cluster_pipeline
    prefix = pipeline.settings.queue_prefix
    logs = tmp_path / "logs"
    logs.mkdir()

    sims.gmi.add_account(GMI_KEY)
    sims.gmi.set_limits(GMI_KEY, per_minute=100_000, per_day=10**7)
    sims.billomat.add_tenant(TENANT, "bm-cluster", limit=100_000)
    pipeline.accounts.add(
        Direction.EXPORT,
        "cluster-export",
        AccountChanges(gmi_api_key=GMI_KEY, billomat_id=TENANT, billomat_api_key="bm-cluster"),
    )
    sims.gmi.add_account(IMPORT_GMI_KEY)
    sims.gmi.set_limits(IMPORT_GMI_KEY, per_minute=100_000, per_day=10**7, uploads_per_hour=10**5)
    sims.billomat.add_tenant(IMPORT_TENANT, "bm-cluster-in", limit=100_000)
    pipeline.accounts.add(
        Direction.IMPORT,
        "cluster-import",
        AccountChanges(
            gmi_api_key=IMPORT_GMI_KEY,
            billomat_id=IMPORT_TENANT,
            billomat_api_key="bm-cluster-in",
            document_kinds=["invoices"],
            webhook_username=HOOK_USER,
            webhook_password=HOOK_PASSWORD,
        ),
    )

    hook_port = free_port()
    receiver = pipeline.spawn(
        "webhooks", "--port", str(hook_port), "--host", "127.0.0.1", log=logs / "webhooks.log"
    )
    run = Run(pipeline, sims, f"http://127.0.0.1:{hook_port}/billomat/cluster-import")

    # Wave 1: polled and published before any consumer runs; the queues are created now,
    # on the first node, which therefore leads them.
    run.seed(1, webhooks=False)
    produce_once(pipeline, logs, 1)
    export_queue = f"{prefix}.{Direction.EXPORT.value}"
    info = cluster.queue_info(cluster.nodes[0], export_queue)
    assert len(info["members"]) == 3  # BELEGSYNC_QUORUM_REPLICAS=3

    for simulator in (sims.gmi, sims.billomat):
        simulator.set_faults(latency=API_LATENCY)
    # Each consumer starts on another node, as behind a load balancer.
    consumers = []
    for n in range(3):
        env = settings_env(pipeline.settings)
        env["BELEGSYNC_BROKER_URL"] = rotated(cluster.nodes, n)
        consumers.append(pipeline.spawn("consume", env=env, log=logs / f"consumer-{n}.log"))
    wait_for(lambda: run.synced() >= 10, 120, "the consumers to get going")

    # Stop 1: the node that leads the export work queue goes away without a word.
    first = cluster.node_named(info["leader"])
    cluster.kill(first)
    before = run.synced()
    run.seed(2, webhooks=True)  # webhooks and a poll while a node is missing
    produce_once(pipeline, logs, 2)
    wait_for(lambda: run.synced() > before + 10, 120, "progress with a node down")
    synced_during_first_stop = run.synced() - before

    # It comes back and catches up.
    cluster.start(first)
    cluster.await_started(first)
    cluster.await_members(3)
    survivor = next(n for n in cluster.alive() if n is not first)
    wait_for(
        lambda: first.name in cluster.queue_info(survivor, export_queue)["online"],
        120,
        f"{first.name} back among the export queue's replicas",
    )

    # Stop 2: another node, shut down the orderly way: the queue's leader now (unless a new
    # election under load gave the lead back to the first node).
    leader = cluster.node_named(cluster.queue_info(survivor, export_queue)["leader"])
    second = leader if leader is not first else survivor
    cluster.shutdown(second)
    before = run.synced()
    run.seed(3, webhooks=True)
    produce_once(pipeline, logs, 3)
    pipeline.wait_until(
        lambda: run.synced() == run.total, timeout=300, what=f"all {run.total} documents synced"
    )
    synced_during_second_stop = run.synced() - before

    # Delay queues hold noop duplicates (redeliveries, "being handled" waits) for a moment.
    broker = bootstrap.broker(pipeline.settings)
    broker.connect(retries=3)
    try:

        def queued() -> dict[str, int]:
            return {
                f"{label} ({role})": depth.messages
                for (label, role), depth in broker.queue_depths().items()
            }

        wait_for(lambda: not any(queued().values()), 120, "work and delay queues to drain")
        left = queued()
    finally:
        broker.close()

    for process in consumers:
        process.terminate()
    for process in consumers:
        assert process.wait(60) == 0
    receiver.terminate()
    assert receiver.wait(30) == 0
    for simulator in (sims.gmi, sims.billomat):
        simulator.clear_faults()

    # Billomat: every exported document exactly once, with its bytes.
    landed = Counter(item["sha256"] for item in sims.billomat.inbox(TENANT))
    # GMI: every imported document exactly once, with its bytes.
    in_gmi = Counter(d["sha256"] for d in sims.gmi.documents(IMPORT_GMI_KEY))
    lost = len(set(run.exported) - set(landed)) + len(set(run.imported) - set(in_gmi))
    duplicates = sum(c - 1 for c in landed.values() if c > 1)
    duplicates += sum(c - 1 for c in in_gmi.values() if c > 1)
    consumer_reconnects = [reconnects(logs / f"consumer-{n}.log") for n in range(3)]
    receiver_reconnects = reconnects(logs / "webhooks.log")
    figures = (
        f"\ncluster: {len(run.exported)} exported + {len(run.imported)} imported = {run.total} "
        f"documents; node stops: {first.short} killed and restarted, {second.short} shut down "
        f"({sum(n.stops for n in cluster.nodes)} stops); synced while down: "
        f"{synced_during_first_stop}, {synced_during_second_stop}; reconnects: consumers "
        f"{consumer_reconnects}, webhook receiver {receiver_reconnects}; webhook answers "
        f"{dict(run.webhook_statuses)}; lost {lost}, duplicates {duplicates}; left in queues: "
        f"{sum(left.values())}"
    )
    with capsys.disabled():  # the figures belong in CI's output, also when the test passes
        print(figures)
    assert landed == Counter(dict.fromkeys(run.exported, 1))
    assert in_gmi == Counter(dict.fromkeys(run.imported, 1))
    assert lost == 0
    assert duplicates == 0
    assert left == dict.fromkeys(left, 0)
    assert set(run.webhook_statuses) == {200}
    # Each stop took at least one consumer's node (they start on different nodes).
    assert sum(consumer_reconnects) >= 2

    # The ledger agrees with both targets.
    inbox_ids = {str(item["id"]) for item in sims.billomat.inbox(TENANT)}
    gmi_ids = {str(d["uid"]) for d in sims.gmi.documents(IMPORT_GMI_KEY)}
    rows = pipeline.ledger()
    assert len(rows) == run.total
    for row in rows:
        assert row["state"] == "synced", row
        assert row["target_id"] in (inbox_ids if row["direction"] == "export" else gmi_ids)
    assert len({(r["account"], r["target_id"]) for r in rows}) == run.total
