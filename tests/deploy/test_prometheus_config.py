"""deploy/prometheus: promtool accepts the config and rules, and the alerts fire as intended."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.prom import ALERTS, PROMETHEUS_CONFIG, REPO, alert_rules, require_tool

ALERT_UNIT_TESTS = REPO / "tests" / "deploy" / "alerts_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("promtool", "prometheus")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, check=False, cwd=REPO, timeout=120
    )


def test_promtool_accepts_the_prometheus_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_exactly_in_the_unit_test_scenarios() -> None:
    # alerts_test.yml feeds synthetic series and lists every alert that must (and by omission
    # must not) fire, with its rendered summary and description.
    result = promtool("test", "rules", str(ALERT_UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return loaded


def _job(name: str) -> dict[str, Any]:
    jobs = {j["job_name"]: j for j in _config()["scrape_configs"]}
    assert name in jobs, f"no scrape job {name!r}"
    job: dict[str, Any] = jobs[name]
    return job


@pytest.mark.parametrize(
    ("job", "service"),
    [
        ("belegsync-producer", "producer"),
        ("belegsync-consumer", "consumer"),
        ("belegsync-webhooks", "webhooks"),
    ],
)
def test_belegsync_jobs_discover_every_replica_through_compose_dns(job: str, service: str) -> None:
    (sd,) = _job(job)["dns_sd_configs"]
    assert sd["names"] == [service]
    assert sd["type"] == "A"
    assert sd["port"] == 9108


def test_rabbitmq_is_scraped_on_its_prometheus_plugin_port() -> None:
    (static,) = _job("rabbitmq")["static_configs"]
    assert static["targets"] == ["rabbitmq:15692"]


def test_config_loads_the_alert_rules() -> None:
    assert _config()["rule_files"] == ["alerts.yml"]
    assert (PROMETHEUS_CONFIG.parent / "alerts.yml").resolve() == ALERTS.resolve()


def test_every_alert_has_a_duration_a_severity_and_a_summary_and_description() -> None:
    rules = alert_rules()
    assert rules
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_the_required_conditions_each_have_an_alert() -> None:
    by_name = {rule["alert"]: rule for rule in alert_rules()}
    expr = {name: " ".join(rule["expr"].split()) for name, rule in by_name.items()}
    assert "(increase(belegsync_parked_total[30m])) > 0" in expr["BelegsyncDocumentsParked"]
    assert 'belegsync_queue_messages{role="parked"}' in expr["BelegsyncParkedQueueGrowing"]
    assert "belegsync_last_successful_poll_timestamp_seconds" in expr["BelegsyncAccountNotPolled"]
    assert (
        "> 3 * max by (account) (belegsync_poll_interval_seconds)"
        in expr["BelegsyncAccountNotPolled"]
    )
    assert "rate(belegsync_rate_limited_total[10m])) > 0" in expr["BelegsyncRateLimitedSustained"]
    assert by_name["BelegsyncRateLimitedSustained"]["for"] == "15m"
    assert 'up{job="belegsync-consumer"}' in expr["BelegsyncNoConsumerRunning"]
    assert 'belegsync_queue_messages{role="work"}' in expr["BelegsyncNoConsumerRunning"]
