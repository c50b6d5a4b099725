"""`belegsync web` as a real process: serves health and login, refuses a taken port in one
line, stops on SIGTERM, and logs no secret."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from app.users import UserService
from tests.e2e.conftest import Pipeline, settings_env
from tests.web.conftest import PASSWORD, USER, csrf_of


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_web_command_serves_the_console_and_stops_on_sigterm(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    UserService(pipeline.db).add(USER, PASSWORD)
    pipeline.add_export()
    port = free_port()
    log = tmp_path / "web.log"
    process = pipeline.spawn("web", "--port", str(port), log=log)
    origin = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"web exited early:\n{log.read_text()}")
        try:
            return requests.get(f"{origin}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    pipeline.wait_until(listening, timeout=30, what="the web console")
    browser = requests.Session()
    page = browser.get(f"{origin}/", timeout=10)
    assert page.url.startswith(f"{origin}/login")
    answer = browser.post(
        f"{origin}/login",
        data={"csrf": csrf_of(page.text), "name": USER, "password": PASSWORD},
        timeout=30,
    )
    assert "acme-export" in answer.text

    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(20) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("web did not stop on SIGTERM")
    output = log.read_text()
    assert "web console on http://127.0.0.1" in output
    assert f"{USER} logged in" in output
    assert PASSWORD not in output
    assert pipeline.settings.secret_key is not None
    assert pipeline.settings.secret_key.get_secret_value() not in output


def test_web_command_on_a_taken_port_says_so_in_one_line(pipeline: Pipeline) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*pipeline_command(), "web", "--port", str(port)],
            env=settings_env(pipeline.settings), capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
    assert result.returncode == 1
    [line] = [ln for ln in result.stderr.splitlines() if "error" in ln]
    assert f"cannot listen on 127.0.0.1:{port}" in line


def pipeline_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "app.cli"]
