"""``gate bench ...``: each benchmark lives in ``scanner/bench/<name>.py`` as ``command``."""

from __future__ import annotations

from scanner.cli.main import LazyGroup

BENCHES = {
    "sync": ("scanner.bench.sync:command", "Full and delta sync against the simulator."),
    "validate": ("scanner.bench.validate:command", "Decision latency with and without journal."),
    "upload": ("scanner.bench.upload:command", "Outbox drain rate against the simulator."),
    "decode": ("scanner.bench.decode:command", "Decode rates over barcode sample folders."),
    "camera": ("scanner.bench.camera:command", "Frames/s and capture-to-decision latency."),
    "mesh": ("scanner.bench.mesh:command", "Gates on one mosquitto: spread, partitions, cost."),
    "run": ("scanner.bench.run:command", "gate run: read-to-relay, READY time, idle cost."),
    "venue": ("scanner.bench.venue:command",
              "Gates with zones and the control room: spread, a split, capacity."),
    "kiosk": ("scanner.bench.kiosk:command", "Open pages' cost to the relay; read to paint."),
}


class BenchGroup(LazyGroup):
    commands_map = BENCHES


bench = BenchGroup(name="bench", help="Measure sync, decision, upload and decode speed.")
