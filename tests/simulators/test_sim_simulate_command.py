"""``simulate`` as an operator runs it: a process that prints its URLs and stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests
from click.testing import CliRunner

from simulators.cli import simulate

ROOT = Path(__file__).resolve().parents[2]


def test_simulate_prints_urls_serves_the_demo_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators", "--gmi-port", "0", "--billomat-port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, f"simulate exited early: {process.stderr.read() if process.stderr else ''}"
            lines.append(line.strip())
        gmi_line = next(line for line in lines if line.startswith("GMI"))
        billomat_line = next(line for line in lines if line.startswith("Billomat"))
        gmi_url = re.search(r"http://\S+/accounts/v3", gmi_line).group(0)  # type: ignore[union-attr]
        template = re.search(r"http://\S+/\{billomat_id\}/api", billomat_line).group(0)  # type: ignore[union-attr]
        assert "X-API-KEY: demo-gmi-key" in gmi_line
        assert "billomat id: demo" in billomat_line
        assert "X-BillomatApiKey: demo-billomat-key" in billomat_line

        documents = requests.get(
            gmi_url + "/documents", headers={"X-API-KEY": "demo-gmi-key"}, timeout=10
        ).json()
        invoices = requests.get(
            template.format(billomat_id="demo") + "/invoices",
            params={"format": "json"},
            headers={"X-BillomatApiKey": "demo-billomat-key"},
            timeout=10,
        ).json()

        assert documents["totalCount"] == 14  # 15 seeded, one of them archived
        assert max(int(r["fileSize"].split(".")[0]) for r in documents["records"]) > 3000
        assert invoices["invoices"]["@total"] == "7"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=10)
        finally:
            process.kill()
    assert returncode == 0


def test_simulate_reports_a_busy_port_as_a_one_line_error() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = CliRunner().invoke(simulate, ["--gmi-port", str(port), "--billomat-port", "0"])

    assert result.exit_code == 1
    assert "cannot listen" in result.output
