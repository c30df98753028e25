"""sd_notify over a real AF_UNIX datagram socket, as systemd provides it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kits.run import NotifySocket

from scanner.run.notify import Notifier, watchdog_period


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


def test_ready_status_watchdog_and_stopping_arrive_in_order(listener: NotifySocket) -> None:
    notifier = listener.notifier()
    assert notifier.ready() and notifier.status("3/3 workers up")
    assert notifier.watchdog() and notifier.stopping()
    assert listener.drain() == ["READY=1", "STATUS=3/3 workers up", "WATCHDOG=1", "STOPPING=1"]


def test_an_abstract_socket_name_is_reached() -> None:
    sock = NotifySocket(abstract=f"gate-test-{uuid.uuid4().hex}")
    try:
        assert sock.notifier().ready()
        assert sock.drain() == ["READY=1"]
    finally:
        sock.close()


def test_a_status_with_newlines_is_sent_as_one_line(listener: NotifySocket) -> None:
    listener.notifier().status("lane hung\nserial-1 restarting")
    assert listener.drain() == ["STATUS=lane hung serial-1 restarting"]


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog()
    assert notifier.watchdog_period is None


def test_a_socket_name_that_is_no_path_disables_notifying() -> None:
    assert not Notifier.from_env({"NOTIFY_SOCKET": "relative/notify"}).enabled


def test_a_vanished_socket_is_reported_as_not_sent(tmp_path: Path) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled and not notifier.ready()


def test_pings_are_due_at_half_the_watchdog_interval() -> None:
    assert watchdog_period({"WATCHDOG_USEC": "20000000"}, os.getpid()) == 10.0


def test_a_watchdog_armed_for_another_process_is_ignored() -> None:
    env = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert watchdog_period(env, os.getpid()) is None


@pytest.mark.parametrize("usec", ["", "0", "soon", "-5"])
def test_no_or_a_bad_watchdog_interval_means_no_pings(usec: str) -> None:
    assert watchdog_period({"WATCHDOG_USEC": usec}, os.getpid()) is None
