"""deploy/kubernetes: renders with kustomize, validates offline, carries the one set of alerts.

Agreement with the code (queue names, ports, probes, settings) is in test_kubernetes_code.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.kube import (
    BASE,
    CRD_SCHEMAS,
    KUBERNETES,
    OVERLAYS,
    Manifest,
    is_custom,
    named,
    of_kind,
    pod_specs,
    render,
    validate,
)
from tests.deploy.prom import ALERTS, DASHBOARD

TREES = [BASE, *OVERLAYS]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_generate", KUBERNETES / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest_id(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


# -- rendering and schemas ---------------------------------------------------------------------


def test_there_is_an_example_overlay() -> None:
    assert [p.name for p in OVERLAYS] == ["example"]


@pytest.mark.parametrize("tree", TREES, ids=lambda p: p.name)
def test_every_manifest_validates_against_its_schema(tree: Path) -> None:
    manifests = render(tree)
    kinds = {m["kind"] for m in manifests}
    # What the issue asks for is all there.
    assert {
        "Deployment", "Job", "Service", "Ingress", "Secret", "ConfigMap", "PodDisruptionBudget",
        "ScaledObject", "TriggerAuthentication", "RabbitmqCluster", "Cluster", "PodMonitor",
        "PrometheusRule",
    } <= kinds  # fmt: skip
    problems = []
    for manifest in manifests:
        try:
            validate(manifest)
        except (
            jsonschema.ValidationError,
            kubernetes_validate.ValidationError,
            kubernetes_validate.SchemaNotFoundError,
            AssertionError,
        ) as e:
            problems.append(f"{manifest_id(manifest)}: {str(e).splitlines()[0][:300]}")
    assert not problems, "\n".join(problems)


def test_every_custom_resource_kind_has_a_schema_kept_in_the_repo() -> None:
    custom = {(m["apiVersion"], m["kind"]) for m in render(BASE) if is_custom(m)}
    assert custom == {
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("keda.sh/v1alpha1", "TriggerAuthentication"),
        ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
        ("postgresql.cnpg.io/v1", "Cluster"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    }
    readme = (CRD_SCHEMAS / "README.md").read_text()
    for path in CRD_SCHEMAS.glob("*.json"):
        assert path.name in readme, f"{path.name}: where it came from is not in the README"


def mutated(manifest: Manifest, path: list[Any], key: str, value: Any) -> Manifest:
    changed = copy.deepcopy(manifest)
    node: Any = changed
    for step in path:
        node = node[step]
    node[key] = value
    return changed


@pytest.mark.parametrize(
    ("kind", "name", "path", "key", "value"),
    [
        # a misspelt field in a custom resource
        ("ScaledObject", "belegsync-consumer-export", ["spec"], "cooldownPeriods", 300),
        # a wrong type in a custom resource
        ("RabbitmqCluster", "belegsync-rabbitmq", ["spec"], "replicas", "three"),
        ("PodMonitor", "belegsync", ["spec", "podMetricsEndpoints", 0], "prot", "metrics"),
        # a misspelt field in a core kind
        ("Deployment", "belegsync-producer", ["spec", "template", "spec"], "securityContxt", {}),
        ("Ingress", "belegsync", ["spec"], "rules", "none"),
    ],
)
def test_validation_rejects_what_the_api_server_would(
    kind: str, name: str, path: list[Any], key: str, value: Any
) -> None:
    original = named(render(BASE), kind, name)
    validate(original)
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(mutated(original, path, key, value))


# -- one source for alerts and dashboard -------------------------------------------------------


def test_prometheus_rule_file_is_generated_from_alerts_yml() -> None:
    generated = KUBERNETES / "base" / "monitoring" / "prometheusrule.yaml"
    assert generated.read_text() == generator().render(ALERTS.read_text()), (
        "run `python deploy/kubernetes/generate.py` after changing deploy/prometheus/alerts.yml"
    )


@pytest.mark.parametrize("tree", TREES, ids=lambda p: p.name)
def test_rendered_prometheus_rule_carries_exactly_the_alert_rules(tree: Path) -> None:
    rule = named(render(tree), "PrometheusRule", "belegsync")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


@pytest.mark.parametrize("tree", TREES, ids=lambda p: p.name)
def test_grafana_dashboard_configmap_is_the_dashboard_file(tree: Path) -> None:
    config_map = named(render(tree), "ConfigMap", "belegsync-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["belegsync.json"]) == json.loads(DASHBOARD.read_text())


# -- what every workload has -------------------------------------------------------------------


@pytest.mark.parametrize("tree", TREES, ids=lambda p: p.name)
def test_pods_run_non_root_with_a_read_only_root_file_system_and_resources(tree: Path) -> None:
    for workload, spec in pod_specs(render(tree)):
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        assert spec["securityContext"]["runAsUser"] == 10001, workload  # the Dockerfile's user
        assert spec.get("automountServiceAccountToken") is False, workload
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", workload
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{workload}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where


def test_every_deployment_has_a_disruption_budget_selecting_its_pods() -> None:
    manifests = render(BASE)
    budgets = of_kind(manifests, "PodDisruptionBudget")
    for deployment in of_kind(manifests, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]


def test_producer_runs_twice_and_keeps_one_during_disruptions() -> None:
    manifests = render(BASE)
    assert named(manifests, "Deployment", "belegsync-producer")["spec"]["replicas"] == 2
    budget = named(manifests, "PodDisruptionBudget", "belegsync-producer")
    assert budget["spec"]["minAvailable"] == 1


def test_consumer_replicas_are_left_to_keda() -> None:
    manifests = render(BASE)
    for scaled in of_kind(manifests, "ScaledObject"):
        target = named(manifests, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"]  # an apply would fight the autoscaler
        spec = scaled["spec"]
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        assert spec["cooldownPeriod"] > 0


def test_broker_is_a_three_node_rabbitmq_cluster_and_postgres_a_cloudnativepg_cluster() -> None:
    manifests = render(BASE)
    assert named(manifests, "RabbitmqCluster", "belegsync-rabbitmq")["spec"]["replicas"] == 3
    database = named(manifests, "Cluster", "belegsync-db")
    assert database["spec"]["instances"] >= 2
    owner = database["spec"]["bootstrap"]["initdb"]["secret"]["name"]
    assert named(manifests, "Secret", owner)["type"] == "kubernetes.io/basic-auth"


def test_other_pods_wait_for_the_migration_job() -> None:
    manifests = render(BASE)
    job = named(manifests, "Job", "belegsync-db-upgrade")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    for deployment in of_kind(manifests, "Deployment"):
        init = deployment["spec"]["template"]["spec"]["initContainers"]
        assert any("belegsync db check" in " ".join(c.get("command", [])) for c in init)


def test_example_overlay_replaces_the_secret_and_names_the_webhook_host() -> None:
    manifests = render(KUBERNETES / "overlays" / "example")
    assert {m["metadata"].get("namespace") for m in manifests if m["kind"] != "Namespace"} == {
        "belegsync"
    }
    secrets = [m for m in of_kind(manifests, "Secret") if m["metadata"]["name"] == "belegsync"]
    assert len(secrets) == 1
    assert set(secrets[0]["data"]) == {"BELEGSYNC_SECRET_KEY", "BELEGSYNC_DATABASE_URL"}
    ingress = named(manifests, "Ingress", "belegsync")
    assert ingress["spec"]["rules"][0]["host"] == ingress["spec"]["tls"][0]["hosts"][0]
