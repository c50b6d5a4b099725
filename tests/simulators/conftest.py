"""Fixtures for the simulator tests: running servers, a controllable clock, ready accounts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from sim_support import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY, FakeClock

from simulators import BillomatSimulator, GmiSimulator


@pytest.fixture
def clock() -> FakeClock:
    # 10:00:00.5 Berlin time in winter (UTC+1), half a second into a fresh 15-minute window.
    return FakeClock(datetime(2026, 11, 2, 9, 0, 0, 500000, tzinfo=UTC))


@pytest.fixture
def gmi(clock: FakeClock) -> Iterator[GmiSimulator]:
    sim = GmiSimulator(clock=clock).start()
    sim.add_account(GMI_KEY)
    yield sim
    sim.stop()


@pytest.fixture
def billomat(clock: FakeClock) -> Iterator[BillomatSimulator]:
    sim = BillomatSimulator(clock=clock).start()
    sim.add_tenant(BILLOMAT_ID, BILLOMAT_KEY)
    yield sim
    sim.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def gmi_http(gmi: GmiSimulator, http: requests.Session) -> requests.Session:
    http.headers.update({"X-API-KEY": GMI_KEY, "Accept": "application/json"})
    return http


@pytest.fixture
def billomat_http(billomat: BillomatSimulator, http: requests.Session) -> requests.Session:
    http.headers.update({"X-BillomatApiKey": BILLOMAT_KEY})
    return http


@pytest.fixture
def bm_url(billomat: BillomatSimulator) -> str:
    return billomat.api_url(BILLOMAT_ID)
