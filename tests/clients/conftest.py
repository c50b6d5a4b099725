"""Fixtures for the API client tests: the simulators and the recorded-response fakes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.billomat import BillomatClient
from shared.gmi import GmiClient
from shared.http import Quota

from .fakes import FakeBillomat, FakeGmi


@dataclass
class RecordingHooks:
    """ApiHooks that remember every call, as metrics would count them."""

    responses: list[tuple[str, str, int | None]] = field(default_factory=list)
    quotas: list[tuple[str, Quota]] = field(default_factory=list)
    rate_limited: list[str] = field(default_factory=list)

    def on_response(self, api: str, endpoint: str, status: int | None, seconds: float) -> None:
        assert seconds >= 0
        self.responses.append((api, endpoint, status))

    def on_quota(self, api: str, quota: Quota) -> None:
        self.quotas.append((api, quota))

    def on_rate_limited(self, api: str) -> None:
        self.rate_limited.append(api)


@dataclass
class Backend:
    """One implementation of both APIs: the project's simulators or the fakes."""

    name: str
    gmi: Any
    billomat: Any
    gmi_base_url: str
    billomat_url_template: str

    def new_gmi(self, **client_kwargs: Any) -> tuple[str, GmiClient]:
        key = f"GMI-{uuid.uuid4().hex.upper()}"
        self.gmi.add_account(key, name="Contract GmbH")
        return key, GmiClient(key, base_url=self.gmi_base_url, **client_kwargs)

    def new_billomat(self, **tenant_kwargs: Any) -> tuple[str, str, BillomatClient]:
        billomat_id = f"t{uuid.uuid4().hex[:10]}"
        key = f"bm{uuid.uuid4().hex}"
        self.billomat.add_tenant(billomat_id, key, **tenant_kwargs)
        client = BillomatClient(billomat_id, key, url_template=self.billomat_url_template)
        return billomat_id, key, client


def _start_simulators() -> Any:
    try:
        from simulators import Simulators
    except ImportError:
        pytest.skip("simulators.Simulators does not exist yet")
    return Simulators(host="127.0.0.1", gmi_port=0, billomat_port=0).start()


@pytest.fixture(scope="module", params=["fake", "simulators"])
def _backend_module(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        gmi, billomat = FakeGmi().start(), FakeBillomat().start()
        try:
            yield Backend("fake", gmi, billomat, gmi.base_url, billomat.url_template)
        finally:
            gmi.stop()
            billomat.stop()
        return
    sims = _start_simulators()
    try:
        yield Backend(
            "simulators", sims.gmi, sims.billomat, sims.gmi_base_url, sims.billomat_url_template
        )
    finally:
        sims.stop()


@pytest.fixture
def backend(_backend_module: Backend) -> Iterator[Backend]:
    yield _backend_module
    _backend_module.gmi.clear_faults()
    _backend_module.billomat.clear_faults()


@pytest.fixture
def fake_gmi() -> Iterator[FakeGmi]:
    server = FakeGmi().start()
    yield server
    server.stop()


@pytest.fixture
def fake_billomat() -> Iterator[FakeBillomat]:
    server = FakeBillomat().start()
    yield server
    server.stop()


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()
