"""Fixtures shared by every test module: a small simulated vivenu on real loopback HTTP.

    sim_world    World(seed=7): 2 events x 300 tickets
    sim_server   a started SimServer serving sim_world (token "sim-token"), stopped after
    api_client   a VivenuClient pointed at sim_server, with short backoff so retry tests
                 stay fast

``./run test`` spreads the tests over pytest-xdist workers. Each worker has its own tmp_path
root, and every server a test starts (simulator, mosquitto, PostgreSQL, ``gate run``'s page)
takes a free port or a socket in a folder of its own, so workers never meet. Tests that share
one expensive thing, or that bound real time, carry ``xdist_group``: ``--dist loadgroup``
(pyproject) keeps each group on one worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from kits.sim import SIM_TOKEN, TEST_BACKOFF

from scanner.config import Secret
from scanner.sim import SimServer, World
from scanner.vivenu.client import VivenuClient

# The browser and screenshot-folder fixtures of the kiosk page's tests, make_gate, and kg
# (a KioskGate over the test's simulator).
pytest_plugins = ("kits.browser", "kits.gate", "kits.kiosk")

# A shared CI machine, or the suite's own workers beside each other, can stall any example
# past hypothesis' 200 ms deadline or its too-slow check; speed is the benchmarks' business.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("CI") or os.environ.get("PYTEST_XDIST_WORKER"):
    settings.load_profile("ci")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """On a loadgroup worker a grouped test's id carries ``@group``; without it xdist has
    spread the group over the workers, silently (a pytest it does not know): fail loudly."""
    if (getattr(item.config.option, "loadgroup", False)
            and item.get_closest_marker("xdist_group") and "@" not in item.nodeid):
        pytest.fail("pytest-xdist did not keep this test's xdist_group on one worker: this "
                    "pytest and pytest-xdist disagree on node ids (see the pin in "
                    "pyproject.toml)", pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker (-n), the slow tests come first, and the groups holding one (the deploy
    bundle's is the suite's longest pole): the workers then end on quick tests together,
    instead of one finishing a long test while the others wait (longest first). A group
    keeps its order and stays whole, so its module fixtures are built once; a serial run
    keeps the files' order."""
    if not hasattr(config, "workerinput"):
        return
    slow_groups = {group for item in items
                   if item.get_closest_marker("slow") and (group := _group(item))}

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") or _group(item) in slow_groups:
            return 0
        # Hypothesis' tests only compute: last, they keep both cores busy while the
        # workers' last tests wait on subprocesses and brokers.
        return 2 if getattr(getattr(item, "obj", None), "is_hypothesis_test", False) \
            and not _group(item) else 1

    # Every worker sorts its identical collection alike (a stable sort).
    items.sort(key=rank)


def _group(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0]) if marker is not None and marker.args else ""


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
