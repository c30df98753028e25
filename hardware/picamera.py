"""Cameras through libcamera's picamera2: the Raspberry Pi camera modules on the CSI
connector, which bookworm no longer offers as V4L2 webcams that OpenCV could open.

picamera2 is not on PyPI in a form that builds here; it comes from the system package
``python3-picamera2`` (with libcamera's Python bindings), which the gate's venv sees
through ``--system-site-packages``. It is imported only when such a camera is opened.

Frames are taken in YUV420: its first ``height`` rows are the luminance plane, the grey
image the decoder wants, so no colour conversion runs on the Pi's CPU. picamera2 keeps
capturing into its own buffers; ``capture_array`` returns the next finished frame, so a slow
decode skips frames instead of queueing them.

A camera that cannot be opened (not connected, in use by another process) is retried with
backoff like every device; a missing picamera2 module is ``PiCameraUnavailable`` at once,
since retrying cannot install it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from typing import Any

from hardware.reads import Frame, StatusFn, ignore_status, now_ns
from hardware.reconnect import BACKOFF_CAP, BACKOFF_FIRST, DeviceSource, Reconnect

log = logging.getLogger(__name__)

MODULE = "picamera2"
INSTALL_HINT = ("install the system package python3-picamera2 and give the venv the "
                "system's site-packages (python3 -m venv --system-site-packages)")


class PiCameraUnavailable(ImportError):
    """picamera2 (or libcamera below it) cannot be imported on this machine."""


def picamera2_module() -> Any:
    """The picamera2 module, or PiCameraUnavailable saying how to install it."""
    try:
        return importlib.import_module(MODULE)
    except ImportError as exc:
        raise PiCameraUnavailable(f"picamera2 is not importable ({exc}); {INSTALL_HINT}") \
            from exc


def libcamera_cameras() -> list[dict[str, Any]]:
    """libcamera's cameras as picamera2 lists them (``Model``, ``Location``, ``Id``,
    ``Num``); empty when picamera2 is not importable."""
    try:
        module = picamera2_module()
    except PiCameraUnavailable:
        return []
    return [dict(info) for info in module.Picamera2.global_camera_info()]


class PiCamera(DeviceSource):
    """Iterate to get grey ``Frame``s from libcamera camera ``index``; ``stop()`` ends the
    iteration after the frame being captured."""

    def __init__(self, index: int = 0, *, width: int = 640, height: int = 480,
                 fps: float = 30.0, name: str | None = None,
                 on_status: StatusFn = ignore_status, backoff_first: float = BACKOFF_FIRST,
                 backoff_cap: float = BACKOFF_CAP) -> None:
        self.module = picamera2_module()  # fail at construction: retrying cannot install it
        self.index = index
        self.width = width
        self.height = height
        self.fps = fps
        self.name = name or f"picamera2:{index}"
        self.link = Reconnect(self.name, on_status, backoff_first, backoff_cap, log)
        self.frames_read = 0

    def __iter__(self) -> Iterator[Frame]:
        # libcamera reports a camera that went away as a RuntimeError from the capture.
        return self.link.sessions(self._open, self._frames, self._close,
                                  errors=(OSError, RuntimeError))

    def probe(self) -> None:
        """Open the camera once and release it, as the first open of a reader would."""
        self._close(self._open())

    def _open(self) -> Any:
        cameras = self.module.Picamera2.global_camera_info()
        if self.index >= len(cameras):
            raise OSError(f"no libcamera camera {self.index} ({len(cameras)} connected)")
        try:
            camera = self.module.Picamera2(self.index)
        except Exception as exc:  # libcamera raises RuntimeError/IndexError while busy
            raise OSError(f"cannot open libcamera camera {self.index}: {exc}") from exc
        try:
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "YUV420"},
                controls={"FrameRate": self.fps})
            camera.configure(config)
            camera.start()
        except Exception as exc:
            camera.close()
            raise OSError(f"cannot start libcamera camera {self.index}: {exc}") from exc
        return camera

    def _frames(self, camera: Any) -> Iterator[Frame]:
        while not self.link.stopped.is_set():
            image = camera.capture_array("main")
            captured = now_ns()
            self.link.alive_ns = captured
            self.frames_read += 1
            # The Y plane; the slice drops the chroma rows and any stride padding.
            grey = image[:self.height, :self.width]
            yield Frame(grey, self.name, captured, self.frames_read, 0)

    def _close(self, camera: Any) -> None:
        try:
            camera.stop()
        finally:
            camera.close()
