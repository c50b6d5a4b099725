"""docker-compose.yml's `web` service: the console on the shared image, after the migrations,
published on localhost only, probed on its own /healthz."""

from __future__ import annotations

from tests.deploy.test_compose import command, depends, option, service


def test_web_service_serves_the_console_after_the_migrations() -> None:
    args = command("web")
    assert args[0] == "web"
    port = option(args, "--port")
    assert option(args, "--host") == "0.0.0.0"  # noqa: S104 - inside its container
    assert service("web")["ports"] == [f"127.0.0.1:{port}:{port}"]
    probe = " ".join(service("web")["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in probe
    assert service("web")["image"] == service("producer")["image"]
    assert service("web")["environment"] == service("producer")["environment"]
    assert depends("web") == {
        "postgres": "service_healthy",
        "rabbitmq": "service_healthy",
        "migrate": "service_completed_successfully",
    }
