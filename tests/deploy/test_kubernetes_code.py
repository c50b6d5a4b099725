"""deploy/kubernetes agrees with the code: queue names, ports, probe paths, settings, commands.

Every expected value is read from the code (the broker topology, the settings model, the CLI's
default ports, a running health server), never copied from the manifests.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kombu.connection import Connection

from app.cli import main as cli_main
from app.cli.run import DEFAULT_PORTS
from producers.webhooks.receiver import PATH_PREFIX
from shared.broker import Broker
from shared.domain import Direction
from shared.health import serve
from shared.metrics import Metrics
from shared.settings import Settings
from shared.topology import Topology
from tests.conftest import TEST_SECRET_KEY
from tests.deploy.kube import BASE, Manifest, named, of_kind, render
from tests.deploy.prom import ALERTS, free_port

# The processes with a health server of their own (shared.health), by their command.
ROLE_OF_COMMAND = {"produce": "producer", "consume": "consumer", "webhooks": "webhooks"}
EXAMPLE_USER, EXAMPLE_PASSWORD = "default_user_x1", "cGFzc3dvcmQ-_="  # URL-safe base64 shape


def manifests() -> tuple[Manifest, ...]:
    return render(BASE)


def deployments() -> list[Manifest]:
    return of_kind(manifests(), "Deployment")


def main_container(deployment: Manifest) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def config() -> dict[str, str]:
    data: dict[str, str] = named(manifests(), "ConfigMap", "belegsync-config")["data"]
    return data


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def container_port(container: dict[str, Any], name: str) -> int:
    for port in container.get("ports", []):
        if port["name"] == name:
            return int(port["containerPort"])
    raise AssertionError(f"{container['name']} has no port named {name!r}")


def probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    return container_port(container, port) if isinstance(port, str) else int(port)


def settings_from_manifests(**overrides: Any) -> Settings:
    values = {k.removeprefix("BELEGSYNC_").lower(): v for k, v in config().items()}
    values = {k: v for k, v in values.items() if k in Settings.model_fields}
    return Settings(**(values | overrides))


def expanded_broker_url(container: dict[str, Any]) -> str:
    """The container's BELEGSYNC_BROKER_URL with the operator's credentials put in."""
    env = {e["name"]: e for e in container["env"]}
    for variable, key in (("BROKER_USERNAME", "username"), ("BROKER_PASSWORD", "password")):
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (rabbitmq_name() + "-default-user", key)
    value = str(env["BELEGSYNC_BROKER_URL"]["value"])
    value = value.replace("$(BROKER_USERNAME)", EXAMPLE_USER)
    return value.replace("$(BROKER_PASSWORD)", EXAMPLE_PASSWORD)


def rabbitmq_name() -> str:
    (cluster,) = of_kind(manifests(), "RabbitmqCluster")
    return str(cluster["metadata"]["name"])


# -- KEDA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", list(Direction), ids=lambda d: d.value)
def test_keda_scales_each_consumer_on_the_work_queue_it_consumes(direction: Direction) -> None:
    topology = Topology.from_settings(settings_from_manifests())
    scaled = [
        s
        for s in of_kind(manifests(), "ScaledObject")
        if option(
            main_container(named(manifests(), "Deployment", s["spec"]["scaleTargetRef"]["name"]))[
                "args"
            ],
            "--direction",
        )
        == direction.value
    ]
    assert len(scaled) == 1, f"one ScaledObject for the {direction.value} consumers"
    (trigger,) = scaled[0]["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == topology.work_queue_name(direction)
    assert trigger["metadata"]["mode"] == "QueueLength"
    # the vhost the consumers use
    consumer = main_container(
        named(manifests(), "Deployment", scaled[0]["spec"]["scaleTargetRef"]["name"])
    )
    node = Connection(Broker(expanded_broker_url(consumer), topology).nodes[0])
    assert trigger["metadata"]["vhostName"] == node.virtual_host
    auth = named(manifests(), "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert (ref["parameter"], ref["name"]) == ("host", rabbitmq_name() + "-default-user")


def test_every_consumer_direction_has_its_own_deployment() -> None:
    directions = sorted(
        option(main_container(d)["args"], "--direction") or "all"
        for d in deployments()
        if main_container(d)["args"][0] == "consume"
    )
    assert directions == sorted(d.value for d in Direction)


# -- ports and probes ----------------------------------------------------------------------------


def pipeline_deployments() -> list[str]:
    """Producer, consumers, webhook receiver: the processes with a health server of their own."""
    return [
        d["metadata"]["name"]
        for d in render(BASE)
        if d["kind"] == "Deployment" and main_container(d)["args"][0] in ROLE_OF_COMMAND
    ]


@pytest.mark.parametrize("name", pipeline_deployments())
def test_metrics_port_and_probes_are_the_ones_the_process_serves(name: str) -> None:
    container = main_container(named(manifests(), "Deployment", name))
    args = container["args"]
    role = ROLE_OF_COMMAND[args[0]]
    assert "BELEGSYNC_METRICS_PORT" not in config()
    expected = int(option(args, "--metrics-port") or DEFAULT_PORTS[role])
    assert container_port(container, "metrics") == expected
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    for probe in (liveness, readiness, container["startupProbe"]):
        assert probe_port(container, probe) == expected

    # The paths are answered by the real health server, and the readiness path says "not
    # ready" when a check fails (what takes a pod out of rotation).
    checks = {"database": True}
    server = serve(Metrics(role=role), free_port(), host="127.0.0.1", readiness=lambda: checks)
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert requests.get(base + liveness["httpGet"]["path"], timeout=5).status_code == 200
        assert requests.get(base + readiness["httpGet"]["path"], timeout=5).status_code == 200
        checks["database"] = False
        assert requests.get(base + readiness["httpGet"]["path"], timeout=5).status_code == 503
    finally:
        server.stop()


def test_pod_monitor_scrapes_every_process_under_the_job_names_the_alerts_use() -> None:
    monitor = named(manifests(), "PodMonitor", "belegsync")
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert {e["path"] for e in endpoints} == {"/metrics"}
    job_label = monitor["spec"]["jobLabel"]
    jobs = set()
    for deployment in deployments():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
        jobs.add(labels[job_label])
        ports = {p["name"] for p in main_container(deployment)["ports"]}
        scraped = [e["port"] for e in endpoints if e["port"] in ports]
        assert len(scraped) == 1, f"{deployment['metadata']['name']}: scraped on {scraped}"
    wanted = set(re.findall(r'job="([^"]+)"', ALERTS.read_text()))
    assert wanted, "the alert rules name no job"
    assert wanted <= jobs


def ingress_backend(path: str) -> dict[str, Any]:
    ingress = named(manifests(), "Ingress", "belegsync")
    for entry in ingress["spec"]["rules"][0]["http"]["paths"]:
        if entry["path"] == path:
            backend: dict[str, Any] = entry["backend"]["service"]
            return backend
    raise AssertionError(f"the Ingress has no path {path}")


def assert_service_reaches(service_name: str, port_name: str, deployment: Manifest) -> int:
    """The Service selects the deployment's pods and forwards ``port_name`` to its port."""
    service = named(manifests(), "Service", service_name)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == port_name]
    return container_port(main_container(deployment), port["targetPort"])


def test_ingress_reaches_the_webhook_receiver_on_the_port_it_listens_on() -> None:
    deployment = next(d for d in deployments() if main_container(d)["args"][0] == "webhooks")
    listen = int(option(main_container(deployment)["args"], "--port") or 0)
    backend = ingress_backend(PATH_PREFIX)
    assert assert_service_reaches(backend["name"], backend["port"]["name"], deployment) == listen


def test_ingress_reaches_the_console_on_the_port_it_listens_on() -> None:
    deployment = next(d for d in deployments() if main_container(d)["args"][0] == "web")
    args = main_container(deployment)["args"]
    assert option(args, "--host") == "0.0.0.0"  # noqa: S104 - reached from the Service
    backend = ingress_backend("/")
    port = assert_service_reaches(backend["name"], backend["port"]["name"], deployment)
    assert port == int(option(args, "--port") or 0)


def test_console_probes_are_answered_by_the_real_console(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    deployment = next(d for d in deployments() if main_container(d)["args"][0] == "web")
    container = main_container(deployment)
    args = [str(a) for a in container["args"]]
    listen = int(option(args, "--port") or 0)
    probes = [container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")]
    for probe in probes:
        assert probe_port(container, probe) == listen
    # `belegsync web` as the pod runs it, on a free local port instead of the pod's.
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELEGSYNC_")}
    env |= {
        "BELEGSYNC_DATABASE_URL": sqlite_database_url,
        "BELEGSYNC_SECRET_KEY": TEST_SECRET_KEY,
        "BELEGSYNC_SECRET_KEY_FILE": str(tmp_path / "unused.key"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "belegsync web did not start"
                time.sleep(0.2)
        assert answer.status_code in (200, 302, 303, 307)  # the console (its login wall)
        for probe in probes:
            path = probe["httpGet"]["path"]
            assert requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(30)


# -- settings and commands -----------------------------------------------------------------------


def test_every_belegsync_variable_is_one_the_code_reads() -> None:
    read = {"BELEGSYNC_" + name.upper() for name in Settings.model_fields}
    used = set(config())
    for secret in of_kind(manifests(), "Secret"):
        used |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for deployment in deployments():
        used |= {e["name"] for e in main_container(deployment).get("env", [])}
    used = {name for name in used if name.startswith("BELEGSYNC_")}
    assert used, "no BELEGSYNC_ variables found"
    assert used <= read, f"variables the code never reads: {sorted(used - read)}"


def test_broker_url_names_every_node_of_the_rabbitmq_cluster() -> None:
    cluster = named(manifests(), "RabbitmqCluster", rabbitmq_name())
    name, replicas = rabbitmq_name(), cluster["spec"]["replicas"]
    for deployment in deployments():
        url = expanded_broker_url(main_container(deployment))
        broker = Broker(settings_from_manifests(broker_url=url).broker_url, Topology("x", (1,)))
        hosts = [Connection(node).hostname for node in broker.nodes]
        assert hosts == [f"{name}-server-{i}.{name}-nodes" for i in range(replicas)]
        assert EXAMPLE_PASSWORD not in broker.safe_url
    assert settings_from_manifests().quorum_replicas == replicas


def test_database_url_is_the_cloudnativepg_primary_with_its_owner() -> None:
    database = named(manifests(), "Cluster", "belegsync-db")
    initdb = database["spec"]["bootstrap"]["initdb"]
    owner = named(manifests(), "Secret", initdb["secret"]["name"])["stringData"]
    url = named(manifests(), "Secret", "belegsync")["stringData"]["BELEGSYNC_DATABASE_URL"]
    expected = (
        f"postgresql+psycopg://{owner['username']}:{owner['password']}"
        f"@{database['metadata']['name']}-rw:5432/{initdb['database']}"
    )
    assert url == expected
    assert initdb["owner"] == owner["username"]


def commands() -> list[tuple[str, list[str]]]:
    found = []
    for manifest in manifests():
        if manifest["kind"] not in ("Deployment", "Job"):
            continue
        spec = manifest["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{manifest['metadata']['name']}/{container['name']}"
            if "args" in container:
                found.append((where, [str(a) for a in container["args"]]))
            for line in container.get("command", []):
                for match in re.finditer(r"belegsync ([a-z][a-z -]*?)(?:;|$)", line):
                    found.append((where, shlex.split(match.group(1))))
    return found


@pytest.mark.parametrize(("where", "args"), commands(), ids=[w for w, _ in commands()])
def test_every_command_exists_in_the_cli(
    where: str, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # --help after the options: click refuses an unknown command or option first.
    code = cli_main([*args, "--help"])
    assert code == 0, f"{where}: belegsync {' '.join(args)} -> {capsys.readouterr().err}"


def test_manifests_name_no_real_looking_secret() -> None:
    for secret in of_kind(manifests(), "Secret"):
        text = yaml.safe_dump(secret.get("stringData", {}))
        assert "example" in text or "Gq3xv0S1yV4lq8b2t6Zr5nH9wJc7kE1mP0aB3dF6gH8=" in text
