"""The health server: /metrics, /healthz, /readyz over real HTTP, and a port already in use."""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.health import HealthServer, serve
from shared.metrics import Metrics
from tests.deploy.prom import free_port


def get(server: HealthServer, path: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


class Readiness:
    """A readiness check whose answers the test flips."""

    def __init__(self) -> None:
        self.checks = {"broker": True, "database": True}

    def __call__(self) -> Mapping[str, bool]:
        return dict(self.checks)


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
def server(recorded_metrics: Metrics, readiness: Readiness) -> Iterator[HealthServer]:
    srv = serve(recorded_metrics, free_port(), host="127.0.0.1", readiness=readiness)
    assert srv.enabled
    yield srv
    srv.stop()


def test_healthz_answers_ok_while_the_process_lives(server: HealthServer) -> None:
    assert get(server, "/healthz")[0::2] == (200, "ok\n")


def test_readyz_is_200_when_every_check_passes(server: HealthServer) -> None:
    status, content_type, body = get(server, "/readyz")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"broker": True, "database": True}


def test_readyz_is_503_and_names_the_failing_check(
    server: HealthServer, readiness: Readiness
) -> None:
    readiness.checks["database"] = False
    status, _, body = get(server, "/readyz")
    assert status == 503
    assert json.loads(body) == {"broker": True, "database": False}
    readiness.checks["database"] = True
    assert get(server, "/readyz")[0] == 200


def test_readyz_reports_not_ready_when_a_check_raises(recorded_metrics: Metrics) -> None:
    def broken() -> Mapping[str, bool]:
        raise ConnectionError("broker gone")

    with serve(recorded_metrics, free_port(), host="127.0.0.1", readiness=broken) as srv:
        status, _, body = get(srv, "/readyz")
        assert status == 503
        assert json.loads(body) == {"readiness_check": False}
        assert get(srv, "/healthz")[0] == 200


def test_readyz_without_checks_is_ready(recorded_metrics: Metrics) -> None:
    with serve(recorded_metrics, free_port(), host="127.0.0.1") as srv:
        assert get(srv, "/readyz")[0::2] == (200, "{}\n")


def test_metrics_serves_the_explicit_registry_in_text_format(server: HealthServer) -> None:
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {"belegsync_documents_processed", "belegsync_info", "belegsync_queue_messages"} <= names


def test_metrics_honours_an_openmetrics_accept_header(server: HealthServer) -> None:
    status, content_type, body = get(
        server, "/metrics", accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


def test_unknown_path_is_404(server: HealthServer) -> None:
    assert get(server, "/nothing")[0] == 404


def test_concurrent_scrapes_are_all_answered(server: HealthServer) -> None:
    statuses: list[int] = []

    def scrape() -> None:
        statuses.append(get(server, "/metrics")[0])

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert statuses == [200] * 8


def test_port_zero_means_no_server(
    recorded_metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    srv = serve(recorded_metrics, 0)
    assert (srv.enabled, srv.port) == (False, None)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    srv.stop()


def test_port_in_use_logs_one_warning_and_returns_a_disabled_server(
    recorded_metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.INFO, logger="shared.health"):
            srv = serve(recorded_metrics, port, host="127.0.0.1")
    assert (srv.enabled, srv.port) == (False, None)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert str(port) in warnings[0].getMessage()
    assert "in use" in warnings[0].getMessage()
    srv.stop()  # a disabled server stops without complaint


def test_stop_frees_the_port_and_can_be_called_twice(recorded_metrics: Metrics) -> None:
    port = free_port()
    first = serve(recorded_metrics, port, host="127.0.0.1")
    assert first.port == port
    first.stop()
    first.stop()
    second = serve(recorded_metrics, port, host="127.0.0.1")
    try:
        assert second.enabled
        assert get(second, "/healthz")[0] == 200
    finally:
        second.stop()
