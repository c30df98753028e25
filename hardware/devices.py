"""What is attached: serial ports, cameras, input devices and GPIO chips, for ``gate devices``
and ``gate setup``.

Every listing reads a ``/dev`` root (and takes pyserial's and libcamera's listings as
arguments) so tests can point it at a directory of their own. Device nodes are asked what
they are through their kernel interfaces (V4L2 ``VIDIOC_QUERYCAP``, the GPIO character
device's chip info, evdev capabilities); a node that cannot be opened is still listed, with
the reason (a technician not in the ``input`` or ``video`` group sees why).

This package knows nothing of tickets and never imports ``scanner``.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# struct v4l2_capability: driver[16] card[32] bus_info[32] version capabilities device_caps
# reserved[3]; VIDIOC_QUERYCAP = _IOR('V', 0, that struct).
_V4L2_CAP = struct.Struct("16s32s32sIII12x")
VIDIOC_QUERYCAP = 0x80000000 | (_V4L2_CAP.size << 16) | (ord("V") << 8)
V4L2_CAP_VIDEO_CAPTURE = 0x1
V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x1000
V4L2_CAP_DEVICE_CAPS = 0x80000000
# The CSI receivers' raw nodes: there, but only libcamera (picamera2) makes pictures of them.
CSI_DRIVERS = frozenset({"unicam", "rp1-cfe"})
# struct gpiochip_info: name[32] label[32] lines; GPIO_GET_CHIPINFO_IOCTL = _IOR(0xB4, 1, it).
_CHIP_INFO = struct.Struct("32s32sI")
GPIO_GET_CHIPINFO = 0x80000000 | (_CHIP_INFO.size << 16) | (0xB4 << 8) | 0x01
# Words in a keyboard's name or by-id link that mark a barcode scanner in keyboard mode.
SCANNER_WORDS = re.compile(r"scan|barcode|honeywell|zebra|symbol|datalogic|newland|"
                           r"metrologic|hand ?held|zebex|inateck|netum|eyoyo", re.IGNORECASE)


@dataclass(frozen=True)
class SerialPort:
    device: str                      # /dev/ttyACM0
    by_id: tuple[str, ...] = ()      # stable /dev/serial/by-id names for it
    description: str = ""
    hwid: str = ""

    @property
    def stable(self) -> str:
        """The name to configure: a by-id link survives replugging into another port."""
        return self.by_id[0] if self.by_id else self.device


@dataclass(frozen=True)
class CameraDevice:
    kind: str                        # "v4l2" or "libcamera"
    device: str                      # /dev/videoN, or the libcamera number
    name: str = ""
    driver: str = ""
    capture: bool | None = None      # a V4L2 node that gives pictures; None: unknown
    error: str = ""

    @property
    def source(self) -> str:
        """The reader source that reads it: picamera2 for libcamera cameras."""
        return "picamera2" if self.kind == "libcamera" else "camera"

    @property
    def usable(self) -> bool:
        """A camera a reader can open as it is (not a codec node, not a raw CSI node)."""
        return self.kind == "libcamera" or (bool(self.capture)
                                            and self.driver not in CSI_DRIVERS)


@dataclass(frozen=True)
class InputDevice:
    path: str                        # /dev/input/eventN
    by_id: tuple[str, ...] = ()
    name: str = ""
    keyboard: bool = False           # types digits and Enter: a keyboard-wedge candidate
    scanner: bool = False            # a keyboard whose name says barcode scanner
    error: str = ""

    @property
    def stable(self) -> str:
        return self.by_id[0] if self.by_id else self.path


@dataclass(frozen=True)
class GpioChip:
    path: str
    name: str = ""
    label: str = ""
    lines: int | None = None
    error: str = ""


@dataclass(frozen=True)
class Devices:
    serial: tuple[SerialPort, ...] = ()
    cameras: tuple[CameraDevice, ...] = ()
    inputs: tuple[InputDevice, ...] = ()
    gpio_chips: tuple[GpioChip, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for port, out in zip(self.serial, doc["serial"], strict=True):
            out["stable"] = port.stable
        for cam, out in zip(self.cameras, doc["cameras"], strict=True):
            out |= {"source": cam.source, "usable": cam.usable}
        for dev, out in zip(self.inputs, doc["inputs"], strict=True):
            out["stable"] = dev.stable
        return doc


def discover(dev: Path = Path("/dev"), *,
             ports: Callable[[], Iterable[Any]] | None = None,
             libcamera: Callable[[], list[dict[str, Any]]] | None = None) -> Devices:
    """Everything attached under ``dev``. ``ports`` lists pyserial ``ListPortInfo``s
    (default: pyserial's ``comports``), ``libcamera`` picamera2's camera info (default:
    ``hardware.picamera.libcamera_cameras``, empty without picamera2)."""
    if libcamera is None:
        from hardware.picamera import libcamera_cameras

        libcamera = libcamera_cameras
    notes = []
    try:
        cameras = [*libcamera_devices(libcamera()), *v4l2_devices(dev)]
    except Exception as exc:  # libcamera's bindings failing must not hide the rest
        notes.append(f"libcamera cameras not listed: {exc}")
        cameras = v4l2_devices(dev)
    return Devices(tuple(serial_ports(dev, ports)), tuple(cameras), tuple(input_devices(dev)),
                   tuple(gpio_chips(dev)), tuple(notes))


def _links(folder: Path) -> dict[str, list[str]]:
    """Real path -> the links in ``folder`` (``/dev/serial/by-id``) that point at it."""
    found: dict[str, list[str]] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for link in entries:
        found.setdefault(os.path.realpath(link), []).append(str(link))
    return found


def serial_ports(dev: Path, ports: Callable[[], Iterable[Any]] | None = None) -> list[SerialPort]:
    """pyserial's ports, each with its by-id names, and any by-id link pyserial missed (a
    pty or a driver without a sysfs device)."""
    if ports is None:
        from serial.tools.list_ports import comports

        ports = comports
    links = _links(dev / "serial" / "by-id")
    listed = []
    for info in ports():
        real = os.path.realpath(info.device)
        listed.append(SerialPort(info.device, tuple(links.pop(real, ())),
                                 _text(info.description), _text(info.hwid)))
    listed += [SerialPort(real, tuple(names)) for real, names in links.items()]
    return sorted(listed, key=lambda port: port.device)


def _text(value: Any) -> str:
    return "" if value in (None, "n/a") else str(value)


def _nodes(dev: Path, pattern: str) -> list[Path]:
    """``dev``'s entries matching ``pattern``, in number order (video2 before video10)."""
    def number(path: Path) -> tuple[int, str]:
        digits = re.sub(r"\D", "", path.name)
        return (int(digits) if digits else -1, path.name)

    return sorted(dev.glob(pattern), key=number)


def _ioctl(path: Path, request: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        return bytes(fcntl.ioctl(fd, request, bytearray(size)))
    finally:
        os.close(fd)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def v4l2_devices(dev: Path) -> list[CameraDevice]:
    found = []
    for node in _nodes(dev, "video*"):
        try:
            driver, card, _bus, _ver, caps, device_caps = _V4L2_CAP.unpack(
                _ioctl(node, VIDIOC_QUERYCAP, _V4L2_CAP.size))
        except OSError as exc:
            found.append(CameraDevice("v4l2", str(node), error=exc.strerror or str(exc)))
            continue
        # device_caps describes this node; capabilities the whole driver.
        mine = device_caps if caps & V4L2_CAP_DEVICE_CAPS else caps
        capture = bool(mine & (V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE))
        found.append(CameraDevice("v4l2", str(node), _cstr(card), _cstr(driver), capture))
    return found


def libcamera_devices(info: list[dict[str, Any]]) -> list[CameraDevice]:
    return [CameraDevice("libcamera", str(camera.get("Num", i)),
                         str(camera.get("Model", "")), str(camera.get("Id", "")), True)
            for i, camera in enumerate(info)]


def input_devices(dev: Path) -> list[InputDevice]:
    links = _links(dev / "input" / "by-id")
    found = []
    for node in _nodes(dev / "input", "event*"):
        names = tuple(links.get(os.path.realpath(node), ()))
        try:
            name, keyboard = _evdev_info(str(node))
        except OSError as exc:
            found.append(InputDevice(str(node), names, error=exc.strerror or str(exc)))
            continue
        words = " ".join([name, *names])
        found.append(InputDevice(str(node), names, name, keyboard,
                                 keyboard and bool(SCANNER_WORDS.search(words))))
    return found


def _evdev_info(path: str) -> tuple[str, bool]:
    """The device's name and whether it types digits and Enter (as a scanner does)."""
    import evdev
    from evdev import ecodes

    device = evdev.InputDevice(path)
    try:
        keys = set(device.capabilities().get(ecodes.EV_KEY, []))
        name = device.name
    finally:
        device.close()
    wanted = {ecodes.KEY_ENTER, ecodes.KEY_0, ecodes.KEY_1, ecodes.KEY_9}
    return name, wanted <= keys


def gpio_chips(dev: Path) -> list[GpioChip]:
    found = []
    for node in _nodes(dev, "gpiochip*"):
        try:
            name, label, lines = _CHIP_INFO.unpack(
                _ioctl(node, GPIO_GET_CHIPINFO, _CHIP_INFO.size))
        except OSError as exc:
            found.append(GpioChip(str(node), error=exc.strerror or str(exc)))
            continue
        found.append(GpioChip(str(node), _cstr(name), _cstr(label), lines))
    return found
