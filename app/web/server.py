"""uvicorn in a background thread on a socket bound up front: the console, the webhook receiver
and the tests all serve their ASGI apps this way.

Binding before the thread starts makes ``start`` raise OSError at once for a taken port and
know the port chosen for 0; the thread then only runs uvicorn's loop.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

# A request still running when the process stops gets this long to finish.
GRACEFUL_SHUTDOWN_SECONDS = 5
# Idle keep-alive connections are closed after this; a console page load reuses one.
KEEP_ALIVE_SECONDS = 5


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 picks a free port); OSError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class ServerThread:
    """One uvicorn server for one ASGI app, running in a daemon thread until ``stop``."""

    def __init__(
        self,
        app: Any,
        *,
        name: str,
        proxy_headers: bool = False,
        forwarded_allow_ips: str | None = None,
    ) -> None:
        self._app = app
        self._name = name
        self._proxy_headers = proxy_headers
        self._forwarded_allow_ips = forwarded_allow_ips
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None

    def start(self, host: str, port: int, *, ready_timeout: float = 30.0) -> int:
        """Listen on ``host:port`` and serve; returns the port.  OSError when it is taken."""
        import uvicorn  # heavy; only the processes that serve HTTP load it

        self._socket = bind(host, port)
        self._port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,  # the process's own logging configuration applies
            access_log=False,  # the apps log what matters (one line per webhook, per change)
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            proxy_headers=self._proxy_headers,
            forwarded_allow_ips=self._forwarded_allow_ips,
        )
        # No access lines, whatever logging configuration a host process brings: they would
        # repeat what the apps log themselves, and carry query strings into the logs.
        logging.getLogger("uvicorn.access").disabled = True
        self._server = uvicorn.Server(config)
        sockets = [self._socket]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": sockets}, name=self._name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + ready_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise OSError(f"{self._name}: the HTTP server did not start")
            if time.monotonic() > deadline:
                raise OSError(f"{self._name}: the HTTP server did not start in time")
            time.sleep(0.01)
        return self.port

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self._name} is not running")
        return self._port

    def stop(self) -> None:
        """Stop taking requests, let running ones finish briefly, free the port; idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=GRACEFUL_SHUTDOWN_SECONDS + 5)
            if self._thread.is_alive():
                log.warning("%s did not stop in time", self._name)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = None

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
