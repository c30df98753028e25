"""``gate bench ...``: each benchmark lives in ``scanner/bench/<name>.py`` as ``command``."""

from __future__ import annotations

from scanner.cli.main import LazyGroup

BENCHES = {
    "sync": "scanner.bench.sync:command",
    "validate": "scanner.bench.validate:command",
    "upload": "scanner.bench.upload:command",
    "decode": "scanner.bench.decode:command",
    "camera": "scanner.bench.camera:command",
}


class BenchGroup(LazyGroup):
    commands_map = BENCHES


bench = BenchGroup(name="bench", help="Measure sync, decision, upload and decode speed.")
