"""docker-compose.yml: valid for docker-compose, scalable consumers, and in step with the code.

The environment variables must be ones ``shared.settings.Settings`` reads, the commands ones the
``belegsync`` CLI has, and the ports the ones Prometheus scrapes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.prom import PROMETHEUS_CONFIG, REPO, require_tool

COMPOSE_FILE = REPO / "docker-compose.yml"
BELEGSYNC_SERVICES = ("migrate", "producer", "consumer", "webhooks", "simulators")
METRICS_PORT = 9108
FERNET_LIKE_KEY = "Gq3xv0S1yV4lq8b2t6Zr5nH9wJc7kE1mP0aB3dF6gH8="


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = compose()["services"]
    assert name in services, f"no service {name!r}"
    svc: dict[str, Any] = services[name]
    return svc


def command(name: str) -> list[str]:
    cmd = service(name)["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def depends(name: str) -> dict[str, str]:
    return {k: v["condition"] for k, v in service(name)["depends_on"].items()}


def run_docker_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = require_tool("docker-compose", "docker-compose")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BELEGSYNC_")}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**clean, **env},
        timeout=120,
    )


# -- validity ------------------------------------------------------------------------------------


def test_docker_compose_accepts_the_file_with_and_without_the_demo_profile() -> None:
    env = {"BELEGSYNC_SECRET_KEY": FERNET_LIKE_KEY}
    plain = run_docker_compose("config", "-q", env=env)
    assert plain.returncode == 0, plain.stderr
    demo = run_docker_compose("--profile", "demo", "config", "-q", env=env)
    assert demo.returncode == 0, demo.stderr


def test_docker_compose_refuses_to_start_without_a_secret_key() -> None:
    result = run_docker_compose("config", "-q", env={})
    assert result.returncode != 0
    assert "BELEGSYNC_SECRET_KEY" in result.stderr


def test_resolved_config_passes_the_secret_key_to_every_belegsync_service() -> None:
    result = run_docker_compose(
        "--profile", "demo", "config", env={"BELEGSYNC_SECRET_KEY": FERNET_LIKE_KEY}
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    for name in BELEGSYNC_SERVICES:
        assert resolved[name]["environment"]["BELEGSYNC_SECRET_KEY"] == FERNET_LIKE_KEY, name


# -- structure -----------------------------------------------------------------------------------


def test_consumer_can_be_scaled() -> None:
    consumer = service("consumer")
    assert "container_name" not in consumer
    assert "ports" not in consumer


def test_simulators_run_only_in_the_demo_profile() -> None:
    assert service("simulators")["profiles"] == ["demo"]
    for name, svc in compose()["services"].items():
        if name != "simulators":
            assert "profiles" not in svc, name


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("rabbitmq", r"rabbitmq:3\.13-management"),
        ("postgres", r"postgres:16"),
        ("prometheus", r"prom/prometheus(:v?[\d.]+)?"),
        ("grafana", r"grafana/grafana(:[\d.]+)?"),
    ],
)
def test_infrastructure_images(name: str, image: str) -> None:
    assert re.fullmatch(image, service(name)["image"])


def test_belegsync_services_share_one_image_built_from_the_dockerfile() -> None:
    images = {service(n)["image"] for n in BELEGSYNC_SERVICES}
    builds = {str(service(n)["build"]) for n in BELEGSYNC_SERVICES}
    assert len(images) == 1
    assert builds == {"."}
    assert (REPO / "Dockerfile").is_file()


def test_databases_and_broker_have_healthchecks_and_belegsync_waits_for_them() -> None:
    assert "pg_isready" in service("postgres")["healthcheck"]["test"]
    assert "rabbitmq-diagnostics" in service("rabbitmq")["healthcheck"]["test"]
    assert depends("migrate") == {"postgres": "service_healthy"}
    for name in ("producer", "consumer", "webhooks"):
        assert depends(name) == {
            "postgres": "service_healthy",
            "rabbitmq": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name


def test_migrate_runs_once() -> None:
    assert command("migrate") == ["db", "upgrade"]
    assert service("migrate")["restart"] == "no"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("producer", ["produce", "--metrics-port", "9108"]),
        ("consumer", ["consume", "--metrics-port", "9108"]),
        ("webhooks", ["webhooks", "--port", "8090", "--metrics-port", "9108"]),
        (
            "simulators",
            [
                "simulate",
                "--host",
                "0.0.0.0",  # noqa: S104 - the simulators listen inside their container
                "--gmi-port",
                "8081",
                "--billomat-port",
                "8082",
                "--seed-demo",
            ],
        ),
    ],
)
def test_service_commands(name: str, expected: list[str]) -> None:
    assert command(name) == expected


def test_rabbitmq_enables_the_prometheus_plugin_from_deploy() -> None:
    volumes = service("rabbitmq")["volumes"]
    mount = next(v for v in volumes if v.endswith("/etc/rabbitmq/enabled_plugins:ro"))
    host_path = REPO / mount.split(":")[0]
    assert re.fullmatch(r"\[[a-z_, ]*\]\.\s*", host_path.read_text())
    assert "rabbitmq_prometheus" in host_path.read_text()


def test_prometheus_mounts_its_config_and_rules() -> None:
    prometheus = service("prometheus")
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_metrics_ports_match_what_prometheus_scrapes() -> None:
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    dns_ports = {
        sd["names"][0]: sd["port"] for job in scrape for sd in job.get("dns_sd_configs", [])
    }
    for name in ("producer", "consumer", "webhooks"):
        assert int(option(command(name), "--metrics-port")) == dns_ports[name] == METRICS_PORT
        # The container healthcheck asks the same port.
        probe = " ".join(service(name).get("healthcheck", {}).get("test", []))
        assert f"127.0.0.1:{METRICS_PORT}/healthz" in probe, name


def test_webhooks_port_is_the_published_one() -> None:
    port = option(command("webhooks"), "--port")
    assert [p.split(":")[-1] for p in service("webhooks")["ports"]] == [port]


def test_simulator_ports_are_the_published_ones() -> None:
    args = command("simulators")
    published = sorted(p.split(":")[-1] for p in service("simulators")["ports"])
    assert published == sorted([option(args, "--gmi-port"), option(args, "--billomat-port")])


# -- environment ---------------------------------------------------------------------------------


def belegsync_environment() -> dict[str, Any]:
    envs = [service(n)["environment"] for n in BELEGSYNC_SERVICES]
    for env in envs[1:]:
        assert env == envs[0], "every belegsync service must share the one environment anchor"
    return dict(envs[0])


def test_environment_points_at_the_stack_services_and_logs_json() -> None:
    env = belegsync_environment()
    assert env["BELEGSYNC_DATABASE_URL"] == (
        "postgresql+psycopg://belegsync:belegsync@postgres:5432/belegsync"
    )
    assert env["BELEGSYNC_BROKER_URL"] == "amqp://belegsync:belegsync@rabbitmq:5672//"
    assert env["BELEGSYNC_LOG_FORMAT"] == "json"
    assert re.fullmatch(r"\$\{BELEGSYNC_SECRET_KEY:\?.+\}", env["BELEGSYNC_SECRET_KEY"])
    # The broker credentials in the URL are the ones RabbitMQ is created with.
    rabbit = service("rabbitmq")["environment"]
    assert (rabbit["RABBITMQ_DEFAULT_USER"], rabbit["RABBITMQ_DEFAULT_PASS"]) == (
        "belegsync",
        "belegsync",
    )
    pg = service("postgres")["environment"]
    assert (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]) == ("belegsync",) * 3


def test_every_belegsync_variable_is_one_the_code_reads() -> None:
    settings = pytest.importorskip(
        "shared.settings", reason="shared/settings.py (the lead's Settings) does not exist yet"
    )
    read = {"BELEGSYNC_" + name.upper() for name in settings.Settings.model_fields}
    used = {k for k in belegsync_environment() if k.startswith("BELEGSYNC_")}
    # Interpolated variables (${BELEGSYNC_...}) must be real settings too.
    text = COMPOSE_FILE.read_text()
    used |= set(re.findall(r"\$\{(BELEGSYNC_[A-Z_]+)", text))
    assert used, "no BELEGSYNC_ variables found"
    assert used <= read, f"compose sets variables the code never reads: {sorted(used - read)}"


@pytest.mark.parametrize("name", BELEGSYNC_SERVICES)
def test_service_command_exists_in_the_cli(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli = pytest.importorskip("app.cli", reason="the belegsync CLI does not exist yet")
    args = command(name)
    # --help after the options: click rejects an unknown command or option before it prints
    # help, so exit 0 means every word of the compose command is known to the CLI.
    code = cli.main([*args, "--help"])
    err = capsys.readouterr().err.strip()
    assert code == 0, f"belegsync {' '.join(args)} -> exit {code}: {err}"
