"""A three-node RabbitMQ cluster for the tests in this folder, and the end-to-end harness.

The cluster is started from the installed ``rabbitmq-server`` under node names, ports and
directories of its own (see ``tests/cluster/rabbit.py``) and killed afterwards whatever
happened: by the fixture's finalizer, on SIGTERM, and, should this process itself be killed,
by the next run (``kill_leftovers``).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.cluster.rabbit import RabbitCluster, kill_leftovers, tool
from tests.conftest import IN_CI

# The end-to-end harness (simulators, Pipeline, spawned `belegsync` processes) is the same.
from tests.e2e.conftest import pipeline_factory, sims  # noqa: F401


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    for name in ("rabbitmq-server", "rabbitmqctl"):
        if tool(name) is None:
            if IN_CI:
                pytest.fail(
                    f"{name} is needed for the cluster test (apt-get install rabbitmq-server)"
                )
            pytest.skip(f"{name} is not installed")
    kill_leftovers()
    cluster = RabbitCluster(Path(tmp_path_factory.mktemp("rabbit-cluster")))

    def on_term(signum: int, frame: FrameType | None) -> None:
        # Turn SIGTERM into an exception so the finally below kills the nodes.
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        cluster.form()
        yield cluster
    finally:
        cluster.destroy()
        signal.signal(signal.SIGTERM, previous)
