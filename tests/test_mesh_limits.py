"""Gate names and message sizes on a real mosquitto: any printable gate name joins the mesh,
and a message far past the mesh's limit is refused by the shipped broker config and kept
away from a gate's memory."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kits.mesh import Broker, MeshGate, password, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from scanner.config import MAX_GATE_ID, load_config
from scanner.decide.model import Reason
from scanner.errors import ConfigError
from scanner.mesh.broker import Received
from scanner.mesh.hlc import HybridClock, Stamp
from scanner.mesh.localbroker import shipped_settings
from scanner.mesh.message import MAX_PAYLOAD, scans_topic

NAME_PAIRS = [("gate-a", "north-1"), ("Nord Eingang Ü", "北门 2"), ("demo-north-1", "gate b")]
HUGE = 21 * 1024 * 1024
MB = 1024 * 1024


@pytest.mark.parametrize("name", ["gate-a", "north-1", "demo-north-1", "Nord Eingang Ü",
                                  "北门 2", "x" * MAX_GATE_ID])
def test_the_config_accepts_any_printable_gate_name(name: str) -> None:
    assert load_config(env={"GATE_ID": name}).gate_id == name


@pytest.mark.parametrize("name", ["north/1", "gate+", "#", "gate:a", " north", "north ",
                                  "north\x1b[2J", "x" * (MAX_GATE_ID + 1)])
def test_the_config_refuses_a_gate_name_mqtt_cannot_carry(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^gate_id: expected a printable name of at most "
                                          r"64 characters.* \(set by GATE_ID\)$"):
        load_config(env={"GATE_ID": name})


printable_names = st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]),
                          min_size=1, max_size=MAX_GATE_ID).filter(str.isprintable)
stamps = st.builds(Stamp, st.integers(0, 10**13 - 1), st.integers(0, 10**6 - 1),
                   printable_names)


@given(stamps, stamps)
def test_stamp_text_sorts_as_stamps_do_and_parses_back_whatever_the_node(a: Stamp,
                                                                         b: Stamp) -> None:
    assert Stamp.parse(str(a)) == a
    assert (str(a) < str(b)) == (a < b)


def test_a_clock_stamps_with_a_hyphenated_node() -> None:
    clock = HybridClock("north-1", physical=lambda: 1000)
    first, second = clock.now(), clock.now()
    assert Stamp.parse(str(second)) == Stamp(1000, 1, "north-1") and first < second


@pytest.fixture
def gates() -> Iterator[list[MeshGate]]:
    made: list[MeshGate] = []
    yield made
    for g in made:
        g.close()


@pytest.mark.parametrize(("first", "second"), NAME_PAIRS)
@pytest.mark.slow
def test_gates_with_any_printable_name_share_scans(tmp_path: Path, gates: list[MeshGate],
                                                  first: str, second: str) -> None:
    broker = Broker(tmp_path / "broker", [first, second]).start()
    try:
        a, b = (MeshGate(tmp_path / f"g{i}", name, broker).start()
                for i, name in enumerate((first, second)))
        gates += [a, b]
        granted = a.check(1)
        assert wait_for(lambda: granted.scan_id in b.scan_ids())
        refused = b.check(1).decision
        assert refused.reason is Reason.ALREADY_INSIDE
        assert refused.extra["entered_gate"] == first
        other = b.check(2)
        assert wait_for(lambda: other.scan_id in a.scan_ids())
        nodes = {Stamp.parse(r.hlc).node for r in a.mesh.records()}
        assert nodes == {first, second}
    finally:
        broker.stop()


def publish_in_child(broker: Broker, user: str, size: int) -> subprocess.CompletedProcess[str]:
    """A payload of ``size`` bytes under the user's own topic, from another process: its
    memory is not the gate's."""
    # Refused: the broker disconnected it before an acknowledgement, which is what a limit
    # does (paho would reconnect and send it again until a timeout).
    code = f"""
import threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="big-{user}")
c.username_pw_set({user!r}, {password(user)!r})
gone = threading.Event()
c.on_disconnect = lambda *_args: gone.set()
c.connect("127.0.0.1", {broker.port})
c.loop_start()
info = c.publish({scans_topic(user)!r}, b"x" * {size}, qos=1)
deadline = time.monotonic() + 20
while not info.is_published() and not gone.is_set() and time.monotonic() < deadline:
    time.sleep(0.01)
print("acked" if info.is_published() else "refused")
c.disconnect()
c.loop_stop()
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_gate_never_holds_a_message_past_its_limit(tmp_path: Path,
                                                     gates: list[MeshGate]) -> None:
    """The broker here has no limits of its own (an old config): the gate's MQTT 5 Maximum
    Packet Size has it drop the 21 MB message instead of sending it."""
    broker = Broker(tmp_path / "broker", ["A", "B", "big"]).start()
    try:
        a, b = (MeshGate(tmp_path / n, n, broker).start() for n in "AB")
        gates += [a, b]
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            done = publish_in_child(broker, "big", HUGE)
            assert done.stdout.strip() == "acked", done.stderr  # the broker took it...
            after = b.check(1)  # ...and sends A what follows it, in order
            assert wait_for(lambda: after.scan_id in a.scan_ids())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 5 * MB, f"the gate held {peak / MB:.1f} MB"
    finally:
        broker.stop()


def test_an_oversized_message_that_arrives_is_dropped_unparsed_with_one_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A broker that ignores the Maximum Packet Size: the message reaches the link's inbox
    and the gate drops it before decoding, saying so once per topic."""
    broker = Broker(tmp_path / "broker", ["A"]).start()
    gate = MeshGate(tmp_path / "A", "A", broker).start()
    try:
        big = Received(scans_topic("intruder"), b"{" * (MAX_PAYLOAD + 1))
        with caplog.at_level(logging.WARNING, logger="scanner.mesh"):
            for _ in range(3):
                gate.link.inbox.post(big)
            assert wait_for(lambda: gate.link.codec.dropped["oversized"] == 3)
        lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(lines) == 1 and "gates/intruder/scans" in lines[0]
    finally:
        gate.close()
        broker.stop()


def vm_peak(pid: int) -> int:
    """The process's peak resident memory in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_the_shipped_broker_config_refuses_a_huge_message_without_holding_it(
        tmp_path: Path) -> None:
    assert {"message_size_limit 1048576", "max_packet_size 1049600"} <= set(shipped_settings())
    broker = Broker(tmp_path / "broker", ["A", "big"], shipped=True).start()
    received: list[int] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="listener")  # MQTT 3.1.1
    listener.username_pw_set("A", password("A"))
    listener.on_message = lambda _c, _u, msg: received.append(len(msg.payload))
    try:
        listener.connect("127.0.0.1", broker.port)
        listener.subscribe("gates/#", qos=1)
        listener.loop_start()
        time.sleep(0.3)  # the subscription is in place
        assert broker.proc is not None
        before = vm_peak(broker.proc.pid)
        done = publish_in_child(broker, "big", HUGE)
        assert done.stdout.strip() == "refused", done.stderr
        assert publish_in_child(broker, "big", 1000).stdout.strip() == "acked"
        assert wait_for(lambda: received == [1000]), received
        assert vm_peak(broker.proc.pid) - before < 4 * MB
    finally:
        listener.loop_stop()
        listener.disconnect()
        broker.stop()
