"""Fixtures shared by every test module: a small simulated vivenu on real loopback HTTP.

    sim_world    World(seed=7): 2 events x 300 tickets
    sim_server   a started SimServer serving sim_world (token "sim-token"), stopped after
    api_client   a VivenuClient pointed at sim_server, with short backoff so retry tests
                 stay fast
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings
from kits.sim import SIM_TOKEN, TEST_BACKOFF

from scanner.config import Secret
from scanner.sim import SimServer, World
from scanner.vivenu.client import VivenuClient

# The browser and screenshot-folder fixtures of the kiosk page's tests.
pytest_plugins = ("kits.browser", "kits.gate")

# A shared CI machine can stall any example past hypothesis' 200 ms deadline; speed is the
# benchmarks' business, so CI runs without one.
settings.register_profile("ci", deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def sim_world() -> World:
    return World(seed=7, events=2, tickets_per_event=300)


@pytest.fixture
def sim_server(sim_world: World) -> Iterator[SimServer]:
    with SimServer(sim_world, token=SIM_TOKEN) as server:
        yield server


@pytest.fixture
def api_client(sim_server: SimServer) -> Iterator[VivenuClient]:
    with VivenuClient(sim_server.url, Secret(SIM_TOKEN), backoff=TEST_BACKOFF) as client:
        yield client
