"""Every dashboard query and alert expression, evaluated by a real Prometheus on real scrapes.

Prometheus scrapes a ``shared.health`` server whose ``Metrics`` has every series recorded, under
the job names the dashboard and alerts use. Each panel query must succeed and return data;
each alert expression must succeed, and the rule evaluator must report no error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shared.health import serve
from shared.metrics import Metrics
from tests.deploy.prom import (
    ALERTS,
    PrometheusServer,
    Query,
    alert_queries,
    alert_rules,
    dashboard_queries,
    free_port,
    run_prometheus,
)
from tests.deploy.recorded import record_everything

pytestmark = pytest.mark.prometheus

JOBS = ("belegsync-producer", "belegsync-consumer", "belegsync-webhooks")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    metrics = Metrics(CollectorRegistry(), role="consumer", version="9.9.9")
    health = serve(metrics, free_port(), host="127.0.0.1")
    assert health.enabled
    target = f"127.0.0.1:{health.port}"
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    try:
        with run_prometheus(workdir, {job: [target] for job in JOBS}, rule_files=[ALERTS]) as prom:
            record_everything(metrics)
            prom.wait_for_scrapes(JOBS, count=2)
            # A second round after Prometheus has seen the first, so rate() and increase()
            # have something to measure.
            record_everything(metrics)
            prom.wait_for_scrapes(JOBS, count=4)
            yield prom
    finally:
        health.stop()


def _ids(queries: list[Query]) -> list[str]:
    return [q.source for q in queries]


@pytest.mark.parametrize("query", dashboard_queries(), ids=_ids(dashboard_queries()))
def test_dashboard_query_succeeds_and_returns_data(
    prometheus: PrometheusServer, query: Query
) -> None:
    answer = prometheus.query(query.expr)
    assert answer["status"] == "success", f"{query.expr}: {answer.get('error')}"
    assert answer["data"]["result"], f"{query.source} returned no data: {query.expr}"


@pytest.mark.parametrize("query", alert_queries(), ids=_ids(alert_queries()))
def test_alert_expression_succeeds(prometheus: PrometheusServer, query: Query) -> None:
    answer = prometheus.query(query.expr)
    assert answer["status"] == "success", f"{query.expr}: {answer.get('error')}"


def test_rule_evaluator_loads_every_alert_and_reports_no_error(
    prometheus: PrometheusServer,
) -> None:
    expected = {rule["alert"] for rule in alert_rules()}
    deadline = time.monotonic() + 30
    while True:
        rules = prometheus.rules()
        if (
            all(r.get("lastEvaluation", "").startswith("2") for r in rules)
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.5)
    assert {r["name"] for r in rules} == expected
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"


def test_stale_account_and_parked_documents_make_their_alerts_pending(
    prometheus: PrometheusServer,
) -> None:
    # recorded.py stamps "stale-gmbh" 4,000 s back and parks documents: both conditions hold
    # now, and each alert waits out its `for` in state "pending".
    states = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = {r["name"]: r for r in prometheus.rules()}
        if (
            states["BelegsyncAccountNotPolled"]["state"] == "pending"
            and states["BelegsyncDocumentsParked"]["state"] == "pending"
        ):
            break
        time.sleep(0.5)
    stale = states["BelegsyncAccountNotPolled"]
    assert stale["state"] == "pending"
    assert [a["labels"]["account"] for a in stale["alerts"]] == ["stale-gmbh"]
    parked = states["BelegsyncDocumentsParked"]
    assert parked["state"] == "pending"
    assert {a["labels"]["error_class"] for a in parked["alerts"]} == {"permanent"}
    assert states["BelegsyncRateLimitedSustained"]["state"] == "pending"
    assert states["BelegsyncNoConsumerRunning"]["state"] == "inactive"
