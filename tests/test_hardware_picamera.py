"""The picamera2 source against a recording fake of picamera2's API (libcamera cannot run
here): what it asks of the camera, in order, and that its frames reach the real decoder."""

from __future__ import annotations

import sys
from itertools import islice

import pytest
from kits.picamera2_fake import CODE128, fake_module

from hardware.picamera import PiCamera, PiCameraUnavailable
from scanner.config import ReaderConfig
from scanner.errors import ConfigError
from scanner.read.registry import open_source, probe_source

needs_sample = pytest.mark.skipif(not CODE128.is_file(),
                                  reason=f"barcode samples absent at {CODE128}")


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch):
    module = fake_module(cameras=1)
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return module


@needs_sample
def test_frames_are_the_grey_plane_at_the_configured_size(picamera2) -> None:
    camera = PiCamera(0, width=640, height=480, fps=15.0)
    frames = list(islice(camera, 3))
    camera.stop()
    assert [f.image.shape for f in frames] == [(480, 640)] * 3
    assert [f.index for f in frames] == [1, 2, 3] and frames[0].source == "picamera2:0"
    assert frames[0].image[0, 0] == 255 and frames[0].image.min() < 64  # page and bars


@needs_sample
def test_the_camera_is_opened_configured_started_and_released_in_order(picamera2) -> None:
    camera = PiCamera(0, width=800, height=600, fps=20.0)
    iterator = iter(camera)
    next(iterator)
    camera.stop()
    list(iterator)  # the session ends and releases the camera
    names = [call[0] for call in picamera2.calls]
    assert names[:4] == ["Picamera2", "create_video_configuration", "configure", "start"]
    assert names[-2:] == ["stop", "close"] and "capture_array" in names
    _, main, extra = picamera2.calls[1]
    assert main == {"size": (800, 600), "format": "YUV420"}
    assert extra == {"controls": {"FrameRate": 20.0}}


@needs_sample
def test_the_gate_decodes_a_real_barcode_from_picamera2_frames(picamera2) -> None:
    config = ReaderConfig(source="picamera2", camera="0", full_every=1)
    source = open_source(config)
    read = next(iter(source))
    source.stop()
    assert (read.data, read.symbology, read.source) == ("168901", "Code128", "picamera2:0")


@needs_sample
def test_a_busy_camera_is_retried_and_then_read(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_module(fail_open=2)
    monkeypatch.setitem(sys.modules, "picamera2", module)
    lines: list[str] = []
    camera = PiCamera(0, on_status=lines.append, backoff_first=0.01, backoff_cap=0.01)
    frame = next(iter(camera))
    camera.stop()
    assert frame.image.shape == (480, 640)
    assert [c[0] for c in module.calls].count("Picamera2") == 3
    assert "busy" in lines[0] and lines[-1] == "picamera2:0 open again"


def test_without_picamera2_the_source_is_one_config_error_naming_the_package(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import raises ImportError
    with pytest.raises(PiCameraUnavailable):
        PiCamera(0)
    with pytest.raises(ConfigError, match=r"^reader\.source: picamera2 is not importable .*"
                                          r"python3-picamera2.*--system-site-packages"):
        open_source(ReaderConfig(source="picamera2"))


def test_a_camera_number_that_is_not_connected_fails_the_probe(picamera2) -> None:
    probe_source(ReaderConfig(source="picamera2", camera="0"), "readers[0]")
    with pytest.raises(ConfigError, match=r"^readers\[1\]\.camera: cannot open 1: "
                                          r"no libcamera camera 1 \(1 connected\)$"):
        probe_source(ReaderConfig(source="picamera2", camera="1"), "readers[1]")


def test_a_camera_that_is_not_a_number_is_refused(picamera2) -> None:
    with pytest.raises(ConfigError, match=r"^reader\.camera: the picamera2 source takes"):
        open_source(ReaderConfig(source="picamera2", camera="/dev/video0"))
