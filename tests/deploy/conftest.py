"""Fixtures for the observability and deployment tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from shared import logs
from shared.metrics import Metrics
from tests.deploy.recorded import record_everything


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), role="consumer", version="1.2.3")


@pytest.fixture
def recorded_metrics(metrics: Metrics) -> Metrics:
    record_everything(metrics)
    return metrics


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes the root logger and the secret registry: undo both."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)
    logs.clear_secrets()
