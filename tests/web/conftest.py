"""The console served by real uvicorn on a free port, over the pipeline's database, broker and
simulators; a logged-in ``requests`` session for HTTP-level tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from app.users import UserService
from app.web.app import Console, build_console, create_app
from app.web.server import ServerThread
from shared.metrics import Metrics
from tests.e2e.conftest import (  # noqa: F401 - fixtures reused here
    Pipeline,
    pipeline,
    pipeline_factory,
    sims,
)

USER = "anna"
PASSWORD = "korrekt Pferd Batterie 7"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


@dataclass
class RunningConsole:
    origin: str
    console: Console
    pipeline: Pipeline

    def url(self, path: str) -> str:
        return self.origin + path

    def login(self, user: str = USER, password: str = PASSWORD) -> requests.Session:
        """A browser-like session, logged in (asserts that it worked)."""
        session = requests.Session()
        response = self.try_login(session, user, password)
        assert response.status_code == 303, response.text[:500]
        return session

    def try_login(self, session: requests.Session, user: str, password: str) -> requests.Response:
        page = session.get(self.url("/login"), timeout=10)
        return session.post(
            self.url("/login"),
            data={"csrf": csrf_of(page.text), "name": user, "password": password, "next": "/"},
            allow_redirects=False,
            timeout=30,
        )

    def csrf(self, session: requests.Session, path: str = "/") -> str:
        return csrf_of(session.get(self.url(path), timeout=10).text)


@pytest.fixture
def web(pipeline: Pipeline) -> Iterator[RunningConsole]:  # noqa: F811
    settings = pipeline.settings
    assert settings.secret_key is not None
    console = build_console(
        settings, pipeline.db, pipeline.box, settings.secret_key.get_secret_value(),
        Metrics(role="web"),
    )  # fmt: skip
    UserService(pipeline.db).add(USER, PASSWORD)
    server = ServerThread(create_app(console), name="test-web")
    port = server.start("127.0.0.1", 0)
    try:
        yield RunningConsole(f"http://127.0.0.1:{port}", console, pipeline)
    finally:
        server.stop()


from tests.web.browser import browser_context, playwright_instance, shots  # noqa: E402, F401
