"""The provisioned Grafana dashboard and its provisioning files, checked without a server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import Metrics
from tests.deploy.prom import (
    DASHBOARD,
    REPO,
    dashboard_panels,
    dashboard_queries,
    substitute_grafana_variables,
)

PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def datasource_provisioning() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    return loaded


def content_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard_panels() if p["type"] != "row"]


def test_dashboard_has_a_stable_uid_and_a_current_schema() -> None:
    d = dashboard()
    assert d["uid"] == "belegsync-overview"
    assert d["schemaVersion"] >= 36
    assert d["title"]


def test_datasource_variable_defaults_to_the_provisioned_prometheus() -> None:
    (provisioned,) = datasource_provisioning()["datasources"]
    assert provisioned["type"] == "prometheus"
    assert provisioned["url"] == "http://prometheus:9090"
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    assert ds["current"]["value"] == provisioned["uid"]


def test_every_panel_queries_prometheus_through_the_datasource_variable() -> None:
    panels = content_panels()
    assert len(panels) >= 10
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_only_known_grafana_variables_are_used() -> None:
    for panel in content_panels():
        for target in panel["targets"]:
            substitute_grafana_variables(target["expr"])  # raises on an unknown variable


def test_unknown_grafana_variable_is_caught() -> None:
    with pytest.raises(ValueError, match="variable"):
        substitute_grafana_variables("rate(x[$__rate_intervall])")


def _all_exprs() -> str:
    return "\n".join(" ".join(q.expr.split()) for q in dashboard_queries())


@pytest.mark.parametrize(
    "needle",
    [
        # throughput by direction and outcome
        "sum by (direction, outcome) (rate(belegsync_documents_processed_total[",
        # end-to-end latency quantiles
        "histogram_quantile(0.5, sum by (direction, le) "
        "(rate(belegsync_sync_latency_seconds_bucket[",
        "histogram_quantile(0.9, sum by (direction, le) "
        "(rate(belegsync_sync_latency_seconds_bucket[",
        "histogram_quantile(0.99, sum by (direction, le) "
        "(rate(belegsync_sync_latency_seconds_bucket[",
        # queue depths of every role
        "max by (queue, role) (belegsync_queue_messages)",
        # parked by error class
        "sum by (direction, error_class) (increase(belegsync_parked_total[",
        # API errors and 429s
        'belegsync_api_requests_total{status_class!="2xx"}',
        "rate(belegsync_rate_limited_total[",
        # quota per account
        "min by (api, account) (belegsync_api_quota_remaining)",
        # stale accounts
        "time() - max by (account) (belegsync_last_successful_poll_timestamp_seconds)"
        " > 3 * max by (account) (belegsync_poll_interval_seconds)",
        # consumers up
        'up{job="belegsync-consumer"}',
        # polls by result
        "sum by (direction, result) (rate(belegsync_polls_total[",
    ],
)
def test_dashboard_answers_the_operators_questions(needle: str) -> None:
    assert needle in _all_exprs()


def test_dashboard_provider_loads_from_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "belegsync.yml").read_text())
    (entry,) = provider["providers"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{entry['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_metric_names_in_the_dashboard_are_ones_the_code_exposes(
    recorded_metrics: Metrics,
) -> None:
    # A cheap guard against typos; test_queries_live evaluates every query on real data.
    text = generate_latest(recorded_metrics.registry).decode()
    exposed = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    used = set(re.findall(r"\bbelegsync_[a-z_]+", _all_exprs()))
    assert used
    assert used <= exposed, used - exposed
