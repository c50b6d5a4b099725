"""``belegsync web``: the web console, with ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import logging
import threading

import click

from app.cli.app import App
from app.cli.run import pass_app, stop_on_signals
from shared.errors import BelegsyncError

log = logging.getLogger("belegsync")


def fernet_key_material(app: App) -> str | None:
    """The Fernet key itself (the console derives its signing secret from it)."""
    if app.settings.secret_key is not None:
        return app.settings.secret_key.get_secret_value().strip()
    path = app.settings.secret_key_file
    return path.read_text().strip() if path.exists() else None


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
    help="Port to listen on (0: any free port).",
)  # fmt: skip
@pass_app
def web(app: App, /, host: str, port: int) -> None:
    """Serve the web console: overview, accounts, documents, replay; login required.

    Create the first user with `belegsync users add NAME`.  Put a TLS proxy in front of it
    on a public network and set BELEGSYNC_WEB_SECURE_COOKIES=true.
    """
    from app.users import UserService
    from app.web.app import build_console, create_app
    from app.web.server import ServerThread
    from shared.logs import configure_logging
    from shared.metrics import Metrics

    configure_logging(app.settings.log_format, app.settings.log_level)
    db = app.migrated_db()
    box = app.secret_box  # creates the key file on first use, before its material is read
    console = build_console(app.settings, db, box, fernet_key_material(app), Metrics(role="web"))
    if not UserService(db).list():
        log.warning("no console user yet: nobody can log in (`belegsync users add NAME`)")
    server = ServerThread(
        create_app(console),
        name="web",
        proxy_headers=True,
        forwarded_allow_ips=app.settings.web_trusted_proxies,
    )
    try:
        bound = server.start(host, port)
    except OSError as e:
        raise BelegsyncError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    try:
        stop = threading.Event()
        stop_on_signals(stop)
        log.info("web console on http://%s:%d/ ; Ctrl-C stops it", host, bound)
        stop.wait()
    finally:
        server.stop()
    log.info("web console stopped")
