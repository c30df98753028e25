"""Configuration name -> source factory. The only place ``reader.source`` is interpreted.

The names are the configuration's (``scanner.config.names.SOURCE_NAMES``); a test holds
``SOURCES`` to them. Tests pass their own ``factories`` mapping (through
``Gate(sources=...)``) to add a fake or a replay source instead of patching anything here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hardware.reads import ReadSource, StatusFn, ignore_status
from scanner.config import DEVICE_KEY, ReaderConfig
from scanner.errors import ConfigError
from scanner.printable import is_number

SourceFactory = Callable[[ReaderConfig, StatusFn], ReadSource]


def _camera(config: ReaderConfig, on_status: StatusFn) -> ReadSource:
    from hardware.camera import Camera
    from scanner.read.decode import make_decoder
    from scanner.read.frames import DecodingSource

    camera = Camera(config.camera, width=config.width, height=config.height, fps=config.fps,
                    on_status=on_status)
    return DecodingSource(camera, make_decoder(config.decoder, config.formats),
                          config.full_every)


def _picamera2(config: ReaderConfig, on_status: StatusFn) -> ReadSource:
    from hardware.picamera import PiCamera, PiCameraUnavailable
    from scanner.read.decode import make_decoder
    from scanner.read.frames import DecodingSource

    if not is_number(config.camera):
        raise ConfigError(f"reader.camera: the picamera2 source takes a libcamera camera "
                          f"number (0, 1, ...; see gate devices), got {config.camera!r}")
    try:
        camera = PiCamera(int(config.camera), width=config.width, height=config.height,
                          fps=config.fps, on_status=on_status)
    except PiCameraUnavailable as exc:
        raise ConfigError(f"reader.source: {exc}") from None
    return DecodingSource(camera, make_decoder(config.decoder, config.formats),
                          config.full_every)


def _serial(config: ReaderConfig, on_status: StatusFn) -> ReadSource:
    from hardware.serial_reader import SerialReader

    try:
        return SerialReader(config.port, baud=config.baud, terminator=config.terminator,
                            prefix=config.prefix.encode(), suffix=config.suffix.encode(),
                            max_length=config.max_length, on_status=on_status)
    except ValueError as exc:
        raise ConfigError(f"reader.terminator: {exc}") from None


def _hid(config: ReaderConfig, on_status: StatusFn) -> ReadSource:
    from hardware.hid_reader import HidReader

    if not config.device:
        raise ConfigError("reader.device: the hid source needs an evdev device path, "
                          "e.g. /dev/input/by-id/usb-...-event-kbd")
    try:
        return HidReader(config.device, layout=config.layout, max_length=config.max_length,
                         on_status=on_status)
    except ValueError as exc:
        raise ConfigError(f"reader.layout: {exc}") from None


def _stdin(config: ReaderConfig, on_status: StatusFn) -> ReadSource:
    from hardware.stdin_reader import StdinReader

    return StdinReader(max_length=config.max_length)


SOURCES: dict[str, SourceFactory] = {
    "camera": _camera,
    "picamera2": _picamera2,
    "serial": _serial,
    "hid": _hid,
    "stdin": _stdin,
}



def probe_source(config: ReaderConfig, key: str = "reader",
                 factories: Mapping[str, SourceFactory] | None = None) -> None:
    """Open the device ``config`` names once and release it, as the reader would at start,
    so ``gate config check`` fails on a wrong port or a camera that is not there.
    A ConfigError naming ``key``'s device key; stdin and test sources are not probed."""
    try:
        source = open_source(config, None, factories)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("reader.", f"{key}.", 1)) from None
    probe = getattr(getattr(source, "frames", source), "probe", None)
    if probe is None:
        return
    attr = DEVICE_KEY.get(config.source, "source")
    try:
        probe()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{key}.{attr}: cannot open {getattr(config, attr)}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None


def open_source(config: ReaderConfig, on_status: StatusFn | None = None,
                factories: Mapping[str, SourceFactory] | None = None) -> ReadSource:
    """The source ``config.source`` names; ``on_status`` hears its device news."""
    factories = SOURCES if factories is None else factories
    try:
        factory = factories[config.source]
    except KeyError:
        raise ConfigError(f"reader.source: unknown {config.source!r}; "
                          f"choose from {', '.join(sorted(factories))}") from None
    return factory(config, on_status or ignore_status)
