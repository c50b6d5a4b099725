"""Server plumbing shared by both simulators: a keep-alive threaded HTTP server and a tiny router.

The simulators themselves are plain functions from :class:`Request` to :class:`Response`; this
module turns sockets into those and back, and knows how to "drop" a connection without answering.
"""

from __future__ import annotations

import contextlib
import http
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request; ``path`` is percent-decoded, ``query`` keeps order and repeats."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Message
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    def query_value(self, name: str) -> str | None:
        """The first value of a query parameter (PHP takes the last; nobody sends it twice)."""
        for key, value in self.query:
            if key == name:
                return value
        return None

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case (``application/json``)."""
        raw = self.header("Content-Type") or ""
        return raw.split(";", 1)[0].strip().lower()


@dataclass
class Response:
    """What to send back; ``drop`` means: send nothing and close the connection."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False

    @classmethod
    def dropped(cls) -> Response:
        return cls(status=0, drop=True)


App = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = (
        "HTTP/1.1"  # keep-alive: clients reuse connections like they do in production
    )
    server_version = "nginx"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus delayed ACKs add
    # ~40 ms to every keep-alive request and throughput collapses.
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections are closed eventually
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=unquote(parts.path),
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            response = self.server.app(request)
        except Exception:
            log.exception(
                "simulator %s crashed on %s %s", self.server.name, self.command, parts.path
            )
            response = Response(500, b"simulator error\n", "text/plain; charset=utf-8")
        if response.drop:
            # The work is done and stored; the client must see a dead connection, not an answer.
            self.close_connection = True
            return
        self._send(response)

    def _send(self, response: Response) -> None:
        phrase = http.HTTPStatus(response.status).phrase if response.status in _KNOWN else ""
        self.send_response(response.status, phrase)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.server.name, *args)


_KNOWN = frozenset(int(s) for s in http.HTTPStatus)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive threads would otherwise hold stop() until clients hang up
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, name: str) -> None:
        self.app = app
        self.name = name
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("%s: connection from %s failed", self.name, client_address, exc_info=True)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)


class HttpService:
    """Runs an :data:`App` on a background thread; ``port=0`` picks a free port."""

    def __init__(self, host: str, port: int, app: App, name: str) -> None:
        self.host = host
        self._requested_port = port
        self._app = app
        self._name = name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self._name} simulator is not started")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server((self.host, self._requested_port), self._app, self._name)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"{self._name}-simulator",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None


# --- routing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Callable[..., Response]

    @property
    def segments(self) -> list[str]:
        return [s for s in self.template.split("/") if s]


@dataclass(frozen=True)
class Match:
    """The route that fits (``route`` is None when only the method is wrong: answer 405)."""

    template: str
    route: Route | None
    params: dict[str, str]


class Router:
    """Path templates like ``/documents/{documentUid}``; literal segments beat placeholders."""

    def __init__(self, routes: Iterable[tuple[str, str, Callable[..., Response]]] = ()) -> None:
        self._routes = [Route(m, t, h) for m, t, h in routes]

    def add(self, method: str, template: str, handler: Callable[..., Response]) -> None:
        self._routes.append(Route(method, template, handler))

    def match(self, method: str, path: str) -> Match | None:
        """The best route for ``method``; a path known only under other methods gives 405."""
        parts = [s for s in path.split("/") if s]
        best: tuple[int, Route, dict[str, str]] | None = None
        other_method: str | None = None
        for route in self._routes:
            params = _match_segments(route.segments, parts)
            if params is None:
                continue
            if route.method != method:
                other_method = other_method or route.template
                continue
            literals = sum(1 for s in route.segments if not s.startswith("{"))
            if best is None or literals > best[0]:
                best = (literals, route, params)
        if best is not None:
            return Match(best[1].template, best[1], best[2])
        if other_method is not None:
            return Match(other_method, None, {})
        return None


def _match_segments(template: list[str], parts: list[str]) -> dict[str, str] | None:
    if len(template) != len(parts):
        return None
    params: dict[str, str] = {}
    for t, p in zip(template, parts, strict=True):
        if t.startswith("{") and t.endswith("}"):
            params[t[1:-1]] = p
        elif t != p:
            return None
    return params


NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def html_error(status: int) -> Response:
    """The page a reverse proxy in front of either API sends when the app behind it is sick."""
    phrase = http.HTTPStatus(status).phrase if status in _KNOWN else "Error"
    body = NGINX_PAGE.format(status=status, phrase=phrase).encode()
    return Response(status, body, "text/html")
