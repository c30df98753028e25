"""Camera source + decoder + hygiene on a real video file written with OpenCV."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from kits.waiting import Collect, wait_for

from hardware.camera import Camera, classify
from scanner.bench.video import ticket_codes, write_ticket_video
from scanner.read.decode import make_decoder
from scanner.read.frames import DecodingSource
from scanner.read.hygiene import Hygiene, Payload
from scanner.read.pipeline import Pipeline

CODES = ticket_codes(6, prefix="CAM")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "tickets.avi"
    write_ticket_video(path, CODES, hold=5, gap=2)
    return path


def run(source: DecodingSource) -> list[Payload]:
    payloads: list[Payload] = []
    Pipeline([source], Hygiene(window=2.0), lambda p: p,
             on_result=lambda p, r: payloads.append(p)).run()
    return payloads


def test_video_yields_each_ticket_exactly_once_in_order(video: Path) -> None:
    source = DecodingSource(Camera(str(video), realtime=False), make_decoder(), full_every=5)
    payloads = run(source)
    assert [p.text for p in payloads] == CODES
    assert source.decoded == len(CODES) * 7 and source.dropped == 0


def test_payloads_carry_symbology_and_capture_before_acceptance(video: Path) -> None:
    payloads = run(DecodingSource(Camera(str(video), realtime=False), make_decoder()))
    assert all(p.symbology == "QRCode" and p.source == f"camera:{video}" for p in payloads)
    assert all(0 < p.captured_ns <= p.accepted_ns and p.decode_ms > 0 for p in payloads)


def test_fast_pass_alone_reads_ticket_qr_codes(video: Path) -> None:
    payloads = run(DecodingSource(Camera(str(video), realtime=False), make_decoder(),
                                  full_every=0))
    assert [p.text for p in payloads] == CODES


def test_frames_are_grey_at_the_file_resolution(video: Path) -> None:
    frame = next(iter(Camera(str(video), realtime=False)))
    assert frame.image.ndim == 2 and frame.image.shape == (480, 640)


def test_slow_consumer_gets_the_newest_frame_not_a_backlog(video: Path) -> None:
    camera = Camera(str(video), fps=30.0)
    frames = []
    for frame in camera:
        frames.append(frame)
        time.sleep(0.2)  # a decode six frames long
        if len(frames) == 3:
            camera.stop()
    assert frames[1].dropped >= 3 and frames[2].index - frames[1].index >= 4


def test_video_file_ends_at_its_end(video: Path) -> None:
    assert sum(1 for _ in Camera(str(video), realtime=False)) == len(CODES) * 7


def test_loop_replays_a_file(video: Path) -> None:
    camera = Camera(str(video), realtime=False, loop=True)
    count = 0
    for _ in camera:
        count += 1
        if count == len(CODES) * 7 + 5:
            camera.stop()
    assert count == len(CODES) * 7 + 5


def test_image_file_is_one_frame(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.full((48, 64, 3), 200, np.uint8))
    frames = list(Camera(str(path), realtime=False))
    assert len(frames) == 1 and frames[0].image.shape == (48, 64)


def test_missing_camera_is_reported_and_retried_until_stopped() -> None:
    status: list[str] = []
    camera = Camera("/dev/video99", on_status=status.append, backoff_first=0.01,
                    backoff_cap=0.02)
    run = Collect(camera, camera.stop)
    wait_for(lambda: camera.link.failed_opens >= 3, "three open attempts")
    assert run.stop() and run.items == []
    assert len(status) == 1 and "cannot open" in status[0]  # once, not at every retry


@pytest.mark.parametrize(("spec", "kind"), [
    ("0", "device"), ("/dev/video2", "device"), ("rtsp://cam/stream", "stream"),
    ("http://cam/mjpg", "stream"), ("replay.avi", "video"), ("still.webp", "image")])
def test_specs_are_classified(spec: str, kind: str) -> None:
    assert classify(spec) == kind


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm on this machine")
def test_a_recording_kept_under_dev_is_a_file_not_a_device(video: Path) -> None:
    """It was opened as a V4L2 device, never opened, and the reader waited for ever."""
    copy = Path(tempfile.mkdtemp(dir="/dev/shm")) / video.name
    try:
        shutil.copyfile(video, copy)
        assert classify(str(copy)) == "video"
        assert len(list(Camera(str(copy), realtime=False))) == len(CODES) * 7
    finally:
        shutil.rmtree(copy.parent)


def test_a_camera_that_cannot_open_keeps_opencvs_own_warnings_off_stderr() -> None:
    """OpenCV writes its V4L2 complaints straight to fd 2, beside the source's one line."""
    script = ("import time\n"
              "from hardware.camera import Camera\n"
              "c = Camera('/dev/video99', backoff_first=0.01, backoff_cap=0.02)\n"
              "import threading\n"
              "threading.Thread(target=lambda: list(c), daemon=True).start()\n"
              "time.sleep(2); c.stop(); print(c.link.failed_opens)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={k: v for k, v in os.environ.items()
                                           if k != "OPENCV_LOG_LEVEL"})
    assert int(done.stdout) >= 2
    assert "WARN" not in done.stderr and "VIDEOIO" not in done.stderr, done.stderr
