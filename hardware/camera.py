"""Cameras through OpenCV's VideoCapture: V4L2 devices, RTSP/HTTP streams, video and image
files (replays, tests, benches).

A capture thread reads continuously and keeps only the newest frame; the consumer always
gets the latest one, so a slow decode never builds a backlog of stale frames (latency
stays one frame, not a queue). Grey conversion happens on the consumer side, only for
frames that are actually handed over. A device or stream that fails is reopened with
backoff; a file ends at its end unless ``loop`` is set.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hardware.reads import Frame, StatusFn, ignore_status, now_ns
from hardware.reconnect import BACKOFF_CAP, BACKOFF_FIRST, DeviceSource, Reconnect

log = logging.getLogger(__name__)

DEFAULT_WIDTH = 640
DEFAULT_HEIGHT = 480
DEFAULT_FPS = 30.0
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".pgm"})


def classify(spec: str) -> str:
    """``device`` (index or /dev/videoN), ``stream`` (a URL), ``image`` or ``video`` file.
    A regular file under /dev (a recording in /dev/shm) is a file: opened as a V4L2
    device it would never open, and its reader would wait for frames for ever."""
    if _is_index(spec) or (spec.startswith("/dev/") and not Path(spec).is_file()):
        return "device"
    if "://" in spec:
        return "stream"
    return "image" if Path(spec).suffix.lower() in IMAGE_SUFFIXES else "video"


def _is_index(spec: str) -> bool:
    """A camera number: ASCII digits (``str.isdigit`` alone takes other scripts' too)."""
    return spec.isascii() and spec.isdigit()


class Camera(DeviceSource):
    """Iterate to get grey ``Frame``s; ``stop()`` ends the iteration from any thread.

    ``realtime`` applies to files: True replays them at their own frame rate with the same
    newest-frame-wins policy as a camera; False hands over every frame, as fast as the
    consumer takes them (decode throughput benches, deterministic tests).
    """

    def __init__(self, spec: str, *, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT,
                 fps: float = DEFAULT_FPS, loop: bool = False, realtime: bool = True,
                 name: str | None = None, on_status: StatusFn = ignore_status,
                 backoff_first: float = BACKOFF_FIRST,
                 backoff_cap: float = BACKOFF_CAP) -> None:
        self.spec = spec
        self.kind = classify(spec)
        self.width = width
        self.height = height
        self.fps = fps
        self.loop = loop
        self.keep_all = not realtime and self.kind in ("video", "image")
        self.name = name or f"camera:{spec}"
        self.link = Reconnect(self.name, on_status, backoff_first, backoff_cap, log)
        self._cond = threading.Condition()
        self._slot: tuple[Any, int, int] | None = None  # (bgr image, captured_ns, index)
        self._taken = 0        # index of the last frame handed over
        self._done = False
        self._thread: threading.Thread | None = None
        self.frames_read = 0

    def probe(self) -> None:
        """Whether the camera or file is there, without OpenCV (which would print its own
        warnings): a device node opens, a file exists; a stream is not checked."""
        if self.kind == "device":
            path = f"/dev/video{self.spec}" if _is_index(self.spec) else self.spec
            os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK))
        elif self.kind != "stream" and not Path(self.spec).is_file():
            raise FileNotFoundError(f"no such file: {self.spec}")

    def stop(self) -> None:
        super().stop()
        with self._cond:
            self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        cv2 = _cv2()

        self._thread = threading.Thread(target=self._capture, name=self.name, daemon=True)
        self._thread.start()
        try:
            while (item := self._take()) is not None:
                image, captured, index, dropped = item
                grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                yield Frame(grey, self.name, captured, index, dropped)
        finally:
            self.stop()
            self._thread.join(timeout=2.0)

    def _take(self) -> tuple[Any, int, int, int] | None:
        with self._cond:
            while not self.link.stopped.is_set():
                if self._slot is not None and self._slot[2] > self._taken:
                    image, captured, index = self._slot
                    dropped = index - self._taken - 1
                    self._taken = index
                    self._cond.notify_all()  # a keep_all producer waits for this
                    return image, captured, index, dropped
                if self._done:
                    return None
                self._cond.wait()
        return None

    def _put(self, image: Any) -> None:
        captured = now_ns()
        self.link.alive_ns = captured
        with self._cond:
            if self.keep_all:
                while self._slot is not None and self._slot[2] > self._taken \
                        and not self.link.stopped.is_set():
                    self._cond.wait()
            self.frames_read += 1
            self._slot = (image, captured, self.frames_read)
            self._cond.notify_all()

    # --- capture thread -------------------------------------------------------------------

    def _capture(self) -> None:
        try:
            if self.kind == "image":
                self._pump_image()
            elif self.kind == "video":
                self._pump_file()
            else:
                self._pump_device()
        except Exception as exc:  # a capture thread must end visibly, never silently hang
            self.link.status(f"{self.name} capture failed: {exc!r}")
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _pump_device(self) -> None:
        while (cap := self.link.open(self._open_device)) is not None:
            try:
                while not self.link.stopped.is_set():
                    ok, image = cap.read()
                    if not ok:
                        self.link.status(f"{self.name} lost; reopening")
                        break
                    self._put(image)
            finally:
                cap.release()

    def _open_device(self) -> Any:
        cv2 = _cv2()

        if self.kind == "device":
            index: int | str = int(self.spec) if _is_index(self.spec) else self.spec
            cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(self.spec)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open {self.spec}")
        if self.kind == "device":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            # V4L2 otherwise queues several buffers: each one is a frame of latency.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _pump_file(self) -> None:
        cv2 = _cv2()

        while not self.link.stopped.is_set():
            cap = cv2.VideoCapture(self.spec)
            if not cap.isOpened():
                self.link.status(f"{self.name} cannot open video file")
                return
            fps = cap.get(cv2.CAP_PROP_FPS) or self.fps
            try:
                self._replay(lambda cap=cap: cap.read(), fps)
            finally:
                cap.release()
            if not self.loop:
                return

    def _pump_image(self) -> None:
        cv2 = _cv2()

        image = cv2.imread(self.spec, cv2.IMREAD_COLOR)
        if image is None:
            self.link.status(f"{self.name} cannot read image file")
            return
        # Converted here once, not on every replayed frame (__iter__ passes grey through).
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        remaining = [True]

        def once() -> tuple[bool, Any]:
            # One frame per pass; ``loop`` repeats it at the configured rate.
            ok, remaining[0] = remaining[0], self.loop
            return ok, image

        self._replay(once, self.fps)

    def _replay(self, read: Any, fps: float) -> None:
        """Hand over frames from ``read`` until it fails; paced at ``fps`` unless keep_all."""
        period = 1.0 / fps if fps > 0 else 0.0
        due = time.monotonic()
        while not self.link.stopped.is_set():
            self.link.alive()
            if not self.keep_all:
                delay = due - time.monotonic()
                if delay > 0 and self.link.stopped.wait(delay):
                    return
                due += period
            ok, image = read()
            if not ok:
                return
            self._put(image)


def _cv2() -> Any:
    """OpenCV, told to keep its own warnings (a camera that cannot open, a V4L2 retry) off
    stderr: the source says what happened in its one status line instead."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    return cv2
