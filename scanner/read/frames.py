"""Camera frames to raw reads: the cheap pass on every frame, the full pass every Nth."""

from __future__ import annotations

from collections.abc import Iterator

from hardware.reads import FrameSource, RawRead
from scanner.read.decode import Decoder


class DecodingSource:
    """A ``ReadSource`` made of a ``FrameSource`` and a ``Decoder``.

    ``full_every`` N: frames 0, N, 2N, ... get the full format set with rotation; the others
    only the fast QR pass. 1 means every frame is full; 0 means never.
    """

    def __init__(self, frames: FrameSource, decoder: Decoder, full_every: int = 5) -> None:
        self.frames = frames
        self.decoder = decoder
        self.full_every = full_every
        self.name = frames.name
        self.decoded = 0      # frames through the decoder
        self.dropped = 0      # frames the camera replaced before we got to them

    def stop(self) -> None:
        self.frames.stop()

    @property
    def alive_ns(self) -> int | None:
        """The camera's liveness (the decoder runs on the pipeline's thread)."""
        alive: int | None = getattr(self.frames, "alive_ns", None)
        return alive

    @property
    def connected(self) -> bool | None:
        connected: bool | None = getattr(self.frames, "connected", None)
        return connected

    def __iter__(self) -> Iterator[RawRead]:
        for frame in self.frames:
            full = self.full_every > 0 and self.decoded % self.full_every == 0
            results = self.decoder.decode(frame.image, full=full)
            self.decoded += 1
            self.dropped += frame.dropped
            for found in results:
                data = found.text if found.text is not None else found.data
                yield RawRead(data, frame.source, frame.captured_ns, found.symbology,
                              found.decode_ms)
