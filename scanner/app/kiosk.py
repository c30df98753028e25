"""The kiosk page composed: its parts filled from the gate's and an act stage, and in ``gate
run`` its server as the ``web`` worker.

``gate run`` (and ``gate demo``) call ``daemon_web``; what only the daemon knows (readiness
and heartbeats, whether the reader is connected, the API's last outcome) comes in as
callables. The worker sits in the OUTPUT stage, after the act stage in the list: it only
reads the act stage's fan-out queue, so nothing it does (a slow page, a scrape) can delay
the relay. Its heartbeat is the event broadcaster's loop: a stuck stream worker is a hung
kiosk, stopped and restarted by the supervisor like any other. A taken port is a failed
start, logged and retried with the supervisor's backoff; the gate goes on deciding without
its page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from scanner.app.gate import Gate
from scanner.kiosk import counts
from scanner.kiosk.parts import (
    DEFAULT_PIN_FILE,
    DEFAULT_SUPERVISOR_PIN_FILE,
    SYNCING,
    Annuls,
    KioskParts,
    Probes,
    WebOptions,
    WebSettings,
)
from scanner.kiosk.present import journaled_event
from scanner.kiosk.reader_probes import Rate, frames_decoded, readers_connected
from scanner.kiosk.server import KioskServer
from scanner.run.service import ServiceWorker
from scanner.run.worker import Stage
from scanner.status import first_sync, first_sync_words, gather, mesh_status, venue_status
from scanner.supervise import Desk, Holds

if TYPE_CHECKING:
    from scanner.act import ActStage
    from scanner.mesh.link import Link
    from scanner.run.readiness import Readiness
    from scanner.venue.channel import VenueWorker

log = logging.getLogger("scanner.kiosk")


def from_gate(gate: Gate, stage: ActStage, web: WebSettings, *,
              health: Callable[[], tuple[bool, list[str]]],
              online: Callable[[], bool | None] = Probes.online,
              reader_connected: Callable[[], bool | None] = Probes.reader_connected,
              frames_per_second: Callable[[], float | None] = Probes.frames_per_second,
              clock_ok: Callable[[], bool] = Probes.clock_ok,
              link: Link | None = None, venue: VenueWorker | None = None,
              desk: Desk | None = None) -> KioskServer:
    """A kiosk server (not started) on ``gate``'s gatekeeper, journal and store; ``link``:
    the mesh link running in this process, whose live state the page shows; ``venue``:
    the venue worker running here; ``desk``: the one the gate's lanes hold tickets with
    (``gate.desk`` under ``gate run``), else a desk of its own on ``stage``."""
    engine, gate_id = gate.journal_engine, gate.config.gate_id
    mesh_store, clock, book, zones = gate.mesh_store, gate.clock, gate.venue_book, gate.zones
    if desk is None:
        desk = Desk(gate.journal, gate.gatekeeper, stage.submit,
                    Holds(gate.config.policy.confirm_timeout), release=stage.release,
                    orders=book.orders if book is not None else None)
    annuls: Annuls = gate.journal
    journal, store = gate.journal, gate.store

    def journaled(limit: int) -> list[dict[str, Any]]:
        return [journaled_event(row, store.get(row["ticket_id"]) if row["ticket_id"] else None)
                for row in journal.latest(limit)]

    parts = KioskParts(
        gate_id=gate_id,
        listener=stage.fanout.subscribe("kiosk"),
        check=partial(gate.gatekeeper.check, source="kiosk"),
        submit=desk.submit,
        status=lambda: gather(gate, link),
        health=health,
        tallies=lambda: counts.tallies(engine, gate_id),
        latencies=lambda: counts.latencies(engine, gate_id),
        annuls=annuls,
        desk=desk,
        journaled=journaled,
        probes=Probes(online=online, reader_connected=reader_connected,
                      frames_per_second=frames_per_second, clock_ok=clock_ok,
                      clock_offset=gate.clock_offset, settings=gate.store.settings,
                      fire_alarm=lambda: stage.fire_alarm,
                      mesh=lambda: None if mesh_store is None
                      else mesh_status(mesh_store, link, clock),
                      venue=lambda: None if book is None else venue_status(book, venue),
                      zones=lambda: zones.snapshot(clock())["zones"]),
    )
    server = KioskServer(web, parts)
    if book is not None:  # a supervisor's order is on every page within a second
        book.on_change(lambda _orders: server.events.refresh())
    return server


def daemon_web(gate: Gate, readiness: Readiness) -> ServiceWorker:
    """The ``web`` worker of ``gate run``, serving on ``[web]``'s host and port."""
    cfg = gate.config.web
    readers = gate.reader_workers  # built now: a probe must never build a part
    guard = gate.clock_guard
    web = WebOptions(host=cfg.host, port=cfg.port, pin_file=cfg.pin_file or DEFAULT_PIN_FILE,
                     status_open=cfg.status_open,
                     supervisor_pin_file=cfg.supervisor_pin_file or DEFAULT_SUPERVISOR_PIN_FILE)
    def health() -> tuple[bool, list[str]]:
        _ok, reasons = readiness.health()
        # Not ready while the store is not whole: a code not synced yet would be denied.
        syncing = first_sync(gate.store.sync_states(), gate.config.events)
        if syncing is not None:
            reasons = [*reasons, f"{SYNCING}: {first_sync_words(syncing)}"]
        return not reasons, reasons

    server = from_gate(gate, gate.act, web, health=health, online=gate.reachability,
                       reader_connected=lambda: readers_connected(readers),
                       frames_per_second=Rate(lambda: frames_decoded(readers)),
                       clock_ok=lambda: guard.state().fine, link=gate.mesh_link,
                       venue=gate.venue_worker, desk=gate.desk)
    return ServiceWorker("web", server, heartbeat_timeout=gate.config.run.heartbeat_timeout,
                         stage=Stage.OUTPUT,
                         on_started=lambda: log.info("kiosk page on %s/", server.url))
