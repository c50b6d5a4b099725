"""A small threaded HTTP server for Prometheus scrapes and container health probes.

``/metrics`` serves the process's explicit registry, ``/healthz`` says the process lives and
``/readyz`` runs the readiness checks the entrypoint passes in.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import choose_encoder

from shared.metrics import Metrics

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Mapping[str, bool]]


def no_checks() -> Mapping[str, bool]:
    """Readiness without dependencies: ready as soon as the server answers."""
    return {}


class _Server(ThreadingHTTPServer):
    # Scrape and probe threads must never keep a stopping process alive.
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        readiness: ReadinessCheck,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.metrics = metrics
        self.readiness = readiness
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "belegsync-health"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            self._readyz()
        else:
            self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

    def _metrics(self) -> None:
        # Honour the scraper's Accept header (Prometheus asks for OpenMetrics when it can).
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        self._send(200, encoder(self.server.metrics.registry), content_type)

    def _readyz(self) -> None:
        checks: dict[str, bool]
        try:
            checks = {str(k): bool(v) for k, v in self.server.readiness().items()}
        except Exception:
            # A broken check must not take the probe endpoint down with it: report not ready.
            log.exception("readiness check raised")
            checks = {"readiness_check": False}
        ready = all(checks.values())
        body = json.dumps(checks, sort_keys=True).encode() + b"\n"
        self._send(200 if ready else 503, body, "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Every scrape would otherwise print an access line on stderr.
        log.debug("%s - " + format, self.address_string(), *args)


class HealthServer:
    """A running (or disabled) health server; ``port`` is None when it does not serve."""

    def __init__(self, server: _Server | None = None) -> None:
        self._server = server
        self._thread: threading.Thread | None = None
        if server is not None:
            # A short poll interval keeps stop() (which waits for the loop to notice) quick.
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"health-server:{server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_address[1])

    @property
    def enabled(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        """Stop serving and free the port; calling it again does nothing."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    metrics: Metrics,
    port: int,
    host: str = "0.0.0.0",  # noqa: S104 - containers are scraped from outside
    readiness: ReadinessCheck = no_checks,
) -> HealthServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread.

    ``port`` 0 means "do not serve". When the port cannot be bound (typically: already in
    use), one warning is logged and a disabled server returned: losing metrics must not stop
    documents from being synced.
    """
    if port == 0:
        return HealthServer(None)
    try:
        server = _Server((host, port), metrics, readiness)
    except OSError as e:
        log.warning(
            "metrics and health endpoints disabled: cannot listen on %s:%d (%s)",
            host,
            port,
            e.strerror or e,
        )
        return HealthServer(None)
    log.info("serving /metrics, /healthz and /readyz on %s:%d", host, server.server_address[1])
    return HealthServer(server)
