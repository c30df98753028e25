"""A recording stand-in for the ``picamera2`` module (libcamera cannot run here), with the
calls the adapter makes: ``Picamera2(n)``, ``global_camera_info``,
``create_video_configuration``, ``configure``, ``start``, ``capture_array``, ``stop``,
``close``. Frames are YUV420 arrays as picamera2 returns them: the luminance plane (a real
barcode image on a white page) over half as many chroma rows. No tests here."""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any

import numpy as np

from scanner.bench.decode import default_samples

SAMPLES = Path(os.environ.get("BARCODE_SAMPLES") or default_samples())
CODE128 = SAMPLES / "code128-1" / "1.png"  # reads "168901"


def yuv420_page(image: Any, width: int, height: int) -> Any:
    """``image`` (grey) centred on a white ``width`` x ``height`` page, as YUV420."""
    luma = np.full((height, width), 255, np.uint8)
    h, w = image.shape
    top, left = (height - h) // 2, (width - w) // 2
    luma[top:top + h, left:left + w] = image
    chroma = np.full((height // 2, width), 128, np.uint8)
    return np.vstack([luma, chroma])


def barcode_image(path: Path = CODE128) -> Any:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"cannot read {path}"
    return image


def fake_module(cameras: int = 1, image: Any = None, *, fail_open: int = 0,
                calls: list[tuple[Any, ...]] | None = None) -> types.ModuleType:
    """A ``picamera2`` module with ``cameras`` cameras showing ``image``; the first
    ``fail_open`` constructions raise as a busy camera does. ``module.calls`` records."""
    module = types.ModuleType("picamera2")
    log: list[tuple[Any, ...]] = [] if calls is None else calls
    failures = [fail_open]

    class Picamera2:
        def __init__(self, camera_num: int = 0) -> None:
            log.append(("Picamera2", camera_num))
            if failures[0] > 0:
                failures[0] -= 1
                raise RuntimeError("Failed to acquire camera: Device or resource busy")
            self.size = (640, 480)
            self.started = False

        @staticmethod
        def global_camera_info() -> list[dict[str, Any]]:
            return [{"Model": "imx708", "Location": 2, "Rotation": 180,
                     "Id": f"/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a/{n}", "Num": n}
                    for n in range(cameras)]

        def create_video_configuration(self, main: dict[str, Any] | None = None,
                                       **kwargs: Any) -> dict[str, Any]:
            log.append(("create_video_configuration", main, kwargs))
            return {"main": dict(main or {}), **kwargs}

        def configure(self, config: dict[str, Any]) -> None:
            log.append(("configure", config))
            self.size = config["main"]["size"]

        def start(self) -> None:
            log.append(("start",))
            self.started = True

        def capture_array(self, name: str = "main") -> Any:
            assert self.started, "capture_array before start"
            log.append(("capture_array", name))
            width, height = self.size
            page = image if image is not None else barcode_image()
            return yuv420_page(page, width, height)

        def stop(self) -> None:
            log.append(("stop",))
            self.started = False

        def close(self) -> None:
            log.append(("close",))

    module.Picamera2 = Picamera2  # type: ignore[attr-defined]
    module.calls = log  # type: ignore[attr-defined]
    return module
