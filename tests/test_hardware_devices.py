"""``gate devices`` and ``hardware.devices``: real ptys behind /dev/serial/by-id links in a
/dev of the test's own, plus whatever this machine really has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tty
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from hardware.devices import CameraDevice, InputDevice, discover, serial_ports
from scanner.cli.setup_ask import candidates

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def pty_port() -> Iterator[str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def fake_dev(tmp_path: Path, port: str) -> Path:
    """A /dev with a by-id link to ``port``, a video node and an event node that are plain
    files (they cannot answer their ioctls), and no GPIO chip."""
    dev = tmp_path / "dev"
    (dev / "serial" / "by-id").mkdir(parents=True)
    (dev / "serial" / "by-id" / "usb-Honeywell_1900-if00").symlink_to(port)
    (dev / "input" / "by-id").mkdir(parents=True)
    (dev / "input" / "event3").write_bytes(b"")
    (dev / "input" / "by-id" / "usb-Barcode_Scanner-event-kbd").symlink_to("../event3")
    (dev / "video0").write_bytes(b"")
    return dev


def test_a_pty_behind_a_by_id_link_is_listed_with_its_stable_name(tmp_path: Path,
                                                                     pty_port: str) -> None:
    ports = serial_ports(fake_dev(tmp_path, pty_port), ports=list)
    assert [(p.device, p.stable) for p in ports] == [
        (pty_port, str(tmp_path / "dev/serial/by-id/usb-Honeywell_1900-if00"))]


def test_pyserial_ports_get_their_by_id_names_once(tmp_path: Path, pty_port: str) -> None:
    info = SimpleNamespace(device=pty_port, description="1900 Scanner", hwid="USB VID:PID=0C2E")
    ports = serial_ports(fake_dev(tmp_path, pty_port), ports=lambda: [info])
    assert len(ports) == 1 and ports[0].description == "1900 Scanner"
    assert ports[0].by_id == (str(tmp_path / "dev/serial/by-id/usb-Honeywell_1900-if00"),)


def test_nodes_that_cannot_answer_are_listed_with_the_reason(tmp_path: Path,
                                                             pty_port: str) -> None:
    found = discover(fake_dev(tmp_path, pty_port), ports=list, libcamera=list)
    assert [(c.device, c.capture, bool(c.error)) for c in found.cameras] == [
        (str(tmp_path / "dev/video0"), None, True)]
    assert [(i.path, i.stable, bool(i.error)) for i in found.inputs] == [
        (str(tmp_path / "dev/input/event3"),
         str(tmp_path / "dev/input/by-id/usb-Barcode_Scanner-event-kbd"), True)]
    assert found.gpio_chips == ()


def test_libcamera_cameras_come_first_and_are_read_through_picamera2(tmp_path: Path,
                                                                     pty_port: str) -> None:
    info = [{"Model": "imx708", "Id": "/base/i2c@88000/imx708@1a", "Num": 0}]
    found = discover(fake_dev(tmp_path, pty_port), ports=list, libcamera=lambda: info)
    assert (found.cameras[0].device, found.cameras[0].source) == ("0", "picamera2")
    assert found.cameras[0].usable and not found.cameras[1].usable


def test_setup_offers_scanners_and_cameras_a_reader_can_open() -> None:
    from hardware.devices import Devices, SerialPort

    found = Devices(
        serial=(SerialPort("/dev/ttyACM0", ("/dev/serial/by-id/usb-X-if00",)),),
        cameras=(CameraDevice("libcamera", "0", "imx708", capture=True),
                 CameraDevice("v4l2", "/dev/video0", "unicam-image", "unicam", True),
                 CameraDevice("v4l2", "/dev/video8", "USB Webcam", "uvcvideo", True),
                 CameraDevice("v4l2", "/dev/video19", "pispbe", "pispbe", False)),
        inputs=(InputDevice("/dev/input/event2", (), "Power Button"),
                InputDevice("/dev/input/event3", ("/dev/input/by-id/usb-Y-event-kbd",),
                            "Honeywell Scanner", keyboard=True, scanner=True)))
    assert [table for _line, table in candidates(found)] == [
        {"source": "serial", "port": "/dev/serial/by-id/usb-X-if00"},
        {"source": "picamera2", "camera": "0"},
        {"source": "camera", "camera": "/dev/video8"},
        {"source": "hid", "device": "/dev/input/by-id/usb-Y-event-kbd"}]


def test_gate_devices_json_lists_the_pty_and_the_text_names_it(tmp_path: Path,
                                                               pty_port: str) -> None:
    dev = fake_dev(tmp_path, pty_port)
    run = [sys.executable, "-m", "scanner.cli.main", "devices", "--dev", str(dev)]
    doc = json.loads(subprocess.run([*run, "--json"], cwd=REPO, capture_output=True,
                                    text=True, check=True).stdout)
    # pyserial adds this machine's own ports (/dev/ttyS0 ...) beside the pty
    listed = {p["device"]: p["stable"] for p in doc["serial"]}
    assert listed[pty_port].endswith("usb-Honeywell_1900-if00")
    assert set(doc) == {"serial", "cameras", "inputs", "gpio_chips", "notes"}
    text = subprocess.run(run, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert f"usb-Honeywell_1900-if00  -> {pty_port}" in text
    assert "cannot open" in text and "GPIO chips" in text


def test_this_machines_devices_are_listed_without_error() -> None:
    """Whatever /dev holds here (often nothing): the listing runs and is consistent."""
    found = discover()
    assert all(port.device for port in found.serial)
    assert all(chip.path.startswith("/dev/gpiochip") for chip in found.gpio_chips)
