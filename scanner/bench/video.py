"""Synthetic camera footage for tests and ``gate bench camera``: ticket QR codes rendered
with zxing-cpp onto a cluttered background, written with OpenCV's MJPG codec (works
headless, no external encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

WIDTH, HEIGHT, FPS = 640, 480, 30.0


def ticket_codes(count: int, prefix: str = "VT") -> list[str]:
    """Distinct barcodes shaped like vivenu ticket codes."""
    return [f"{prefix}-{index:06d}-{(index * 7919) % 1000003:07d}" for index in range(count)]


def write_ticket_video(path: str | Path, codes: Sequence[str], *, hold: int = 6,
                       gap: int = 3, scale: int = 5, seed: int = 7,
                       size: tuple[int, int] = (WIDTH, HEIGHT), fps: float = FPS,
                       lead: int = 0) -> int:
    """Write ``lead`` empty frames, then each code for ``hold`` frames and ``gap`` empty
    frames; return the frame count.

    Codes move a little between frames, like a ticket in a hand, and sit on static clutter
    so the decoder has something other than a white page to reject.
    """
    import cv2
    import numpy as np
    import zxingcpp

    width, height = size
    rng = np.random.default_rng(seed)
    background = np.full((height, width), 170, np.uint8)
    for _ in range(25):  # clutter: boxes of random grey, like a queue of people behind
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        w, h = int(rng.integers(10, 120)), int(rng.integers(10, 120))
        background[y:y + h, x:x + w] = int(rng.integers(40, 230))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write MJPG video to {path}")
    frames = 0
    try:
        for _ in range(lead):  # e.g. while the gate's first sync runs
            writer.write(cv2.cvtColor(background, cv2.COLOR_GRAY2BGR))
            frames += 1
        for number, code in enumerate(codes):
            symbol = np.asarray(zxingcpp.write_barcode_to_image(
                zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.QRCode), scale=scale))
            sh, sw = symbol.shape
            x0 = 60 + (number * 97) % max(1, width - sw - 120)
            y0 = 40 + (number * 53) % max(1, height - sh - 80)
            for step in range(hold):
                frame = background.copy()
                x, y = x0 + 3 * step, y0 + 2 * step
                frame[y:y + sh, x:x + sw] = symbol
                writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
                frames += 1
            for _ in range(gap):
                writer.write(cv2.cvtColor(background, cv2.COLOR_GRAY2BGR))
                frames += 1
    finally:
        writer.release()
    return frames
