"""Run a real Prometheus server for tests, and collect the PromQL the deployment ships.

``run_prometheus`` starts ``prometheus`` on a free loopback port with a generated config that
scrapes the given targets every second; ``PrometheusServer.query`` evaluates PromQL against it.
``dashboard_queries`` and ``alert_queries`` list every expression of the Grafana dashboard and
the alert rules, with Grafana's variables replaced by concrete values.

Reusable outside tests/deploy (an end-to-end run can scrape real producers and consumers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "belegsync.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"

IN_CI = os.environ.get("CI", "").lower() == "true"

# What Grafana puts in for its built-in variables; the values only need to be valid durations
# that span a few 1-second scrapes.
GRAFANA_VARIABLES = {
    "$__rate_interval": "30s",
    "$__interval": "5s",
    "$__range": "1h",
}


def require_tool(name: str, package: str) -> str:
    """Path of a command-line tool; skips the test locally, fails it in CI, when absent."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        message = f"{name} is not installed (Debian package {package!r})"
        if IN_CI:
            pytest.fail(f"{message}; CI=true: .ci/run must install it")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute_grafana_variables(
    expr: str, variables: Mapping[str, str] = GRAFANA_VARIABLES
) -> str:
    """``expr`` with Grafana's built-in variables replaced; fails on any other variable."""

    def replace(match: re.Match[str]) -> str:
        name = "$" + (match.group(1) or match.group(2))
        if name not in variables:
            raise ValueError(f"unknown Grafana variable {name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(replace, expr)


@dataclass(frozen=True)
class Query:
    source: str  # "panel <title>" or "alert <name>"
    expr: str


def dashboard_panels(path: Path = DASHBOARD) -> list[dict[str, Any]]:
    """Every panel of the dashboard, including panels nested in collapsed rows."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries(
    path: Path = DASHBOARD, variables: Mapping[str, str] = GRAFANA_VARIABLES
) -> list[Query]:
    """Every panel target's expression; ``variables`` stand in for Grafana's built-ins."""
    return [
        Query(
            f"panel {panel['title']!r} {target.get('refId', '')}",
            substitute_grafana_variables(target["expr"], variables),
        )
        for panel in dashboard_panels(path)
        for target in panel.get("targets", [])
    ]


def alert_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_queries(path: Path = ALERTS) -> list[Query]:
    return [
        Query(f"alert {rule.get('alert') or rule.get('record')}", rule["expr"])
        for rule in alert_rules(path)
    ]


class PrometheusError(RuntimeError):
    pass


class PrometheusServer:
    """A Prometheus process started by ``run_prometheus``."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET an API path; an HTTP error answer (e.g. 400 for a bad query) is returned too."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
                body = response.read()
        except urllib.error.HTTPError as e:
            body = e.read()
        result: dict[str, Any] = json.loads(body)
        return result

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` answer: ``status`` is "success" or "error" (with ``error``)."""
        return self.get("/api/v1/query", {"query": expr})

    def result(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        if answer.get("status") != "success":
            raise PrometheusError(f"{expr!r}: {answer.get('errorType')}: {answer.get('error')}")
        data = answer["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        results: list[dict[str, Any]] = data["result"]
        return results

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until ``expr`` returns at least one sample; the samples."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.result(expr)
            if found:
                return found
            if time.monotonic() > deadline:
                raise PrometheusError(f"{expr!r} returned nothing within {timeout}s")
            time.sleep(0.25)

    def wait_for_scrapes(self, jobs: Sequence[str], count: int = 1, timeout: float = 30.0) -> None:
        """Wait until every target of every job has been scraped successfully ``count`` times."""
        for job in jobs:
            up = f'up{{job="{job}"}}'
            self.wait_for(
                f"(count({up} == 1) == count({up}))"
                f" and on () (min(count_over_time({up}[1h])) >= {count})",
                timeout,
            )

    def rules(self) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/rules")
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def write_config(
    path: Path,
    scrape_targets: Mapping[str, Sequence[str]],
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
) -> None:
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in scrape_targets.items()
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


@contextmanager
def run_prometheus(
    workdir: Path,
    scrape_targets: Mapping[str, Sequence[str]],
    *,
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
    startup_timeout: float = 60.0,
) -> Iterator[PrometheusServer]:
    """Start Prometheus scraping ``{job: ["host:port", ...]}``; stop it on exit.

    Skips locally and fails in CI when the ``prometheus`` binary is missing.
    """
    binary = require_tool("prometheus", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    write_config(config, scrape_targets, rule_files, interval)
    log_path = workdir / "prometheus.log"
    # The free port may be taken between probing and binding: try a few.
    for _attempt in range(3):
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.enable-lifecycle",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
        if _wait_ready(server, startup_timeout):
            break
        server.stop()
        if "address already in use" not in server.log_tail():
            raise PrometheusError(f"Prometheus did not start:\n{server.log_tail()}")
    else:
        raise PrometheusError(f"Prometheus found no free port:\n{server.log_tail()}")
    try:
        yield server
    finally:
        server.stop()


def _wait_ready(server: PrometheusServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(server.url + "/-/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False
