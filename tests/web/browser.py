"""Debian's headless Chromium driven by Playwright (no browser download), and screenshots.

Screenshots land in ``tests/web/artifacts/`` (gitignored; CI keeps the directory with the
run): one PNG per page a test visits, named after the test and the step.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("BELEGSYNC_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def chromium_missing() -> None:
    message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        chromium_missing()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def browser_context(playwright_instance: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh Chromium with its own profile; ``request.param``-free: German, 1280 wide."""
    profile = tempfile.mkdtemp(prefix="belegsync-chromium-")
    options: dict[str, Any] = getattr(request, "param", {}) or {}
    context = playwright_instance.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=ARGS,
        locale=options.get("locale", "de-DE"),
        java_script_enabled=options.get("javascript", True),
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(30_000)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


class Shots:
    """Saves a full-page screenshot per step: artifacts/<test>/<nn>-<step>.png."""

    def __init__(self, test_name: str) -> None:
        self.directory = ARTIFACTS / test_name
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.count = 0

    def __call__(self, page: Any, step: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name.replace("[", "-").replace("]", ""))
