"""What every code source hands over, and the one seam each device sits behind.

Line sources (serial handheld, keyboard wedge, stdin) yield ``RawRead``: one code as the
device sent it, undecoded and unchecked. A camera yields ``Frame``: decoding belongs to the
reader, not to the device. Both protocols are iterables with an idempotent ``stop()`` that
may be called from any thread; iteration ends after ``stop()`` or at end of input.

This package knows nothing of tickets and never imports ``scanner``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

# One line for a person, e.g. "serial /dev/ttyACM0 vanished (...); reopening in 0.5 s".
StatusFn = Callable[[str], None]


def ignore_status(_message: str) -> None:
    """The default status sink: with it, a source logs its own lines; a caller that passes
    another sink takes them over, so each line is said once."""


@dataclass(frozen=True, slots=True)
class RawRead:
    """One code as a device delivered it; nothing here has been validated."""

    data: bytes | str
    source: str
    captured_ns: int                 # time.monotonic_ns() when the code arrived
    symbology: str | None = None     # when the device or decoder knows it
    decode_ms: float = 0.0           # time spent decoding an image; 0 for line devices
    truncated: bool = False          # the device sent more than the line limit; data is cut


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera image, already grey, with the moment it left the capture device."""

    image: Any                       # numpy uint8 array, shape (h, w)
    source: str
    captured_ns: int                 # time.monotonic_ns() right after the grab
    index: int                       # frames the capture thread has read so far
    dropped: int                     # frames skipped since the previous handed-over one


class ReadSource(Protocol):
    name: str

    def __iter__(self) -> Iterator[RawRead]: ...

    def stop(self) -> None: ...


class FrameSource(Protocol):
    name: str

    def __iter__(self) -> Iterator[Frame]: ...

    def stop(self) -> None: ...


# The longest line a device source buffers before it gives up on it (scanner/ has its own
# limit for what it accepts; this package cannot import it).
DEFAULT_MAX_LENGTH = 512


def now_ns() -> int:
    return time.monotonic_ns()
