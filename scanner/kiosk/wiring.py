"""A kiosk for a running gate: its parts filled from ``scanner.app.Gate`` and an act stage.

``gate run`` (and ``gate demo``) call ``from_gate``; what only the daemon knows (readiness
and heartbeats, whether the reader is connected, the API's last outcome) comes in as
callables.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from scanner.kiosk import counts
from scanner.kiosk.parts import Annuls, KioskParts, Probes, WebSettings
from scanner.kiosk.server import KioskServer
from scanner.status import gather, mesh_status
from scanner.supervise import Desk, Holds

if TYPE_CHECKING:
    from scanner.act import ActStage
    from scanner.app import Gate


def from_gate(gate: Gate, stage: ActStage, web: WebSettings, *,
              health: Callable[[], tuple[bool, list[str]]],
              online: Callable[[], bool | None] = Probes.online,
              reader_connected: Callable[[], bool | None] = Probes.reader_connected,
              frames_per_second: Callable[[], float | None] = Probes.frames_per_second,
              clock_ok: Callable[[], bool] = Probes.clock_ok,
              desk: Desk | None = None) -> KioskServer:
    """A kiosk server (not started) on ``gate``'s gatekeeper, journal and store.

    ``desk``: the one the gate's lanes hold tickets with (``gate.desk`` under ``gate run``),
    else a desk of its own on ``stage``."""
    engine, gate_id = gate.journal_engine, gate.config.gate_id
    if desk is None:
        desk = Desk(gate.journal, gate.gatekeeper, stage.submit,
                    Holds(gate.config.policy.confirm_timeout), release=stage.release)
    annuls: Annuls = gate.journal
    parts = KioskParts(
        gate_id=gate_id,
        listener=stage.fanout.subscribe("kiosk"),
        check=partial(gate.gatekeeper.check, source="kiosk"),
        submit=desk.submit,
        status=lambda: gather(gate),
        health=health,
        tallies=lambda: counts.tallies(engine, gate_id),
        latencies=lambda: counts.latencies(engine, gate_id),
        annuls=annuls,
        desk=desk,
        probes=Probes(online=online, reader_connected=reader_connected,
                      frames_per_second=frames_per_second, clock_ok=clock_ok,
                      clock_offset=gate.clock_offset, settings=gate.store.settings,
                      fire_alarm=lambda: stage.fire_alarm,
                      mesh=lambda: mesh_status(gate) if gate.config.mesh.url else None),
    )
    return KioskServer(web, parts)
