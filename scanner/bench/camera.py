"""``gate bench camera``: decoded frames per second on one core, capture-to-decision latency.

Two runs over the same video (generated with ticket QR codes when ``--video`` is not given):

1. throughput: every frame handed over as fast as it is taken (no pacing, no drops), the
   fast pass on each frame and the full pass every ``full_every``-th, the whole process
   pinned to one CPU with OpenCV limited to one thread. Frames/s counts everything on that
   core: reading and decompressing the video, grey conversion, decoding.
2. latency: the video replayed at its own frame rate like a live camera (newest frame wins),
   through the real pipeline into a sink; for each accepted read, frame grab to sink return.
   The sink is the real Gatekeeper (empty temporary store, offline) when the composition
   root provides one, else hygiene only; the report says which.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from scanner.bench.stats import percentile
from scanner.config import ReaderConfig
from scanner.read.hygiene import Payload

if TYPE_CHECKING:
    from scanner.app import Gate


def pin_one_core() -> str:
    import cv2

    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}, cv2 threads 1"
    return "cv2 threads 1 (no CPU pinning on this OS)"


def throughput(video: str, reader: ReaderConfig) -> dict[str, Any]:
    from hardware.camera import Camera
    from scanner.read.decode import make_decoder
    from scanner.read.frames import DecodingSource

    decoder = make_decoder(reader.decoder, reader.formats)
    source = DecodingSource(Camera(video, realtime=False), decoder, reader.full_every)
    started = time.perf_counter()
    codes = {raw.data for raw in source}
    elapsed = time.perf_counter() - started
    return {"frames": source.decoded, "seconds": round(elapsed, 3),
            "frames_per_s": round(source.decoded / elapsed, 1),
            "decoder_only_frames_per_s": round(source.decoded / (decoder.busy_ms / 1000.0), 1),
            "ms_per_frame_decode": round(decoder.busy_ms / source.decoded, 3),
            "distinct_codes": len(codes), "decoder": decoder.name,
            "decoder_errors": decoder.errors, "full_every": reader.full_every}


def gatekeeper_sink(gate: Gate) -> tuple[str, Callable[[Payload], object]]:
    """The real Gatekeeper on an empty offline store."""
    from scanner.decide.model import Direction

    keeper = gate.gatekeeper
    keeper.check("WARM-UP", Direction.IN)  # first call opens the store
    return ("real Gatekeeper (empty store, offline)",
            lambda payload: keeper.check(payload.text, Direction.IN))


def latency(gate: Gate, video: str, reader: ReaderConfig, sink_label: str,
            sink: Callable[[Payload], object]) -> dict[str, Any]:
    from scanner.read.frames import DecodingSource
    from scanner.read.pipeline import latency_ms

    samples: list[float] = []

    def record(payload: Payload, _result: object) -> None:
        samples.append(latency_ms(payload))

    # Exactly the pipeline ``gate scan --source camera`` gets, replaying the file live.
    pipeline = gate.pipeline(replace(reader, source="camera", camera=video), sink,
                             on_result=record)
    pipeline.run()
    source = pipeline.sources[0]
    assert isinstance(source, DecodingSource)
    ordered = sorted(samples) or [float("nan")]
    return {"decisions": len(samples), "sink": sink_label,
            "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(percentile(ordered, 0.95), 2),
            "max_ms": round(ordered[-1], 2), "frames_dropped": source.dropped}


@click.command()
@click.option("--video", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Video file to replay (default: generate one with ticket QR codes).")
@click.option("--codes", default=40, show_default=True, help="Tickets in a generated video.")
@click.option("--full-every", type=int, default=None, help="Override reader.full_every.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def command(video: str | None, codes: int, full_every: int | None, as_json: bool) -> None:
    """Frames/s decoded on one core (fast path) and capture-to-decision p50/p95."""
    from dataclasses import replace

    from scanner.app import Gate
    from scanner.bench.video import ticket_codes, write_ticket_video
    from scanner.config import GateConfig, LookupConfig

    reader = ReaderConfig() if full_every is None else replace(ReaderConfig(),
                                                               full_every=full_every)
    pinning = pin_one_core()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gate-bench-")))
        if video is None:
            video = str(tmp / "tickets.avi")
            write_ticket_video(video, ticket_codes(codes))
        gate = stack.enter_context(Gate(GateConfig(db=str(tmp / "bench.db"),
                                                   lookup=LookupConfig(deadline_ms=0))))
        sink_label, sink = gatekeeper_sink(gate)
        result: dict[str, Any] = {"video": video, "cpu": pinning,
                                  "throughput": throughput(video, reader),
                                  "latency": latency(gate, video, reader, sink_label, sink)}
    result["goals"] = {"frames_per_s>=60": result["throughput"]["frames_per_s"] >= 60,
                       "p95_ms<=50": result["latency"]["p95_ms"] <= 50}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    t, lat = result["throughput"], result["latency"]
    click.echo(f"video {video} ({pinning})")
    click.echo(f"throughput: {t['frames_per_s']} frames/s end to end, "
               f"{t['decoder_only_frames_per_s']} frames/s decoder only "
               f"({t['frames']} frames, {t['ms_per_frame_decode']} ms/frame decode, "
               f"full pass every {t['full_every']}, {t['distinct_codes']} codes)")
    click.echo(f"latency capture->decision: p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, "
               f"max {lat['max_ms']} ms over {lat['decisions']} decisions; sink: {lat['sink']}")
    click.echo("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}"
                                     for k, v in result["goals"].items()))
