"""/metrics: the gate's figures in Prometheus' text format.

Decision counts and decision latency come from the journal at every scrape (a custom
collector), so they match it exactly and survive restarts. Read-to-relay is only known in
the running process and is an ordinary histogram. Each gate gets its own registry, so two
servers in one process (tests) never share a metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from scanner.decide.model import ALARMS
from scanner.kiosk.counts import LATENCY_BUCKETS
from scanner.kiosk.parts import KioskParts
from scanner.tickets import parse_iso
from scanner.zones.export import zone_metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ALARM_VALUES = frozenset(reason.value for reason in ALARMS)
RELAY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def _timestamp(iso: str | None) -> float | None:
    try:
        return parse_iso(iso).timestamp() if iso else None
    except ValueError:
        return None


def _gauge(name: str, doc: str, value: float | bool | None) -> Iterator[Metric]:
    """A gauge, left out while its value is unknown (a scrape must not invent a 0)."""
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=float(value))


def _mesh(doc: dict[str, Any] | None) -> Iterator[Metric]:
    if doc is None:  # a gate on its own
        return
    yield from _gauge("gate_mesh_peers_connected", "Peer gates online on the venue mesh.",
                      doc.get("peers_connected"))
    yield from _gauge("gate_mesh_conflicts", "Admissions of one ticket on both sides of a "
                      "split.", doc.get("conflicts"))
    yield from _gauge("gate_mesh_venue_inside", "Tickets inside the venue (every gate).",
                      doc.get("venue", {}).get("inside"))
    dropped = GaugeMetricFamily("gate_mesh_dropped_messages",
                                "Mesh messages dropped, by cause.", labels=["cause"])
    for cause, count in sorted((doc.get("dropped") or {}).items()):
        dropped.add_metric([cause], float(count))
    yield dropped


def _venue(doc: dict[str, Any] | None) -> Iterator[Metric]:
    if doc is None:  # the gate takes no venue commands
        return
    modes = GaugeMetricFamily("gate_venue_mode", "1 for the mode the supervisors ordered.",
                              labels=["mode"])
    for mode in ("normal", "stopped", "egress", "lockdown"):
        modes.add_metric([mode], float(doc.get("mode") == mode))
    yield modes
    yield from _gauge("gate_venue_blocked_tickets", "Tickets blocked by a supervisor.",
                      doc.get("blocked"))
    yield CounterMetricFamily("gate_venue_commands_applied", "Venue commands applied.",
                              value=float(doc.get("applied") or 0))
    dropped = CounterMetricFamily("gate_venue_commands_dropped",
                                  "Messages on a venue command topic not signed by the "
                                  "supervisor key, by cause.", labels=["cause"])
    for cause, count in sorted((doc.get("dropped") or {}).items()):
        dropped.add_metric([cause], float(count))
    yield dropped
    refused = CounterMetricFamily("gate_venue_commands_refused",
                                  "Signed venue commands not applied again: already applied, "
                                  "or older than the newest for their target.",
                                  labels=["cause"])
    for cause, count in sorted((doc.get("refused") or {}).items()):
        refused.add_metric([cause], float(count))
    yield refused


def _clock(doc: dict[str, Any] | None) -> Iterator[Metric]:
    if doc is None:
        return
    yield from _gauge("gate_clock_server_offset_seconds",
                      "Server minus device clock as the server's last Date said, used or not.",
                      doc.get("server_offset_s"))
    yield from _gauge("gate_clock_disagreement",
                      "1 while the server's clock is refused: beyond the bound of the device "
                      "clock, or back before what it said earlier.", doc.get("disagrees"))
    yield from _gauge("gate_clock_trusted",
                      "0 while no clock can be trusted: timeslot tickets are refused.",
                      doc.get("trusted"))


class GateCollector(Collector):
    def __init__(self, parts: KioskParts, clients: Any = None,
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.parts = parts
        self._clients = clients  # () -> int, the open event streams
        self._status = status or parts.status

    def collect(self) -> Iterator[Metric]:
        parts, probes = self.parts, self.parts.probes
        build = GaugeMetricFamily("gate_build_info", "The gate-scanner version running.",
                                  labels=["version"])
        build.add_metric([parts.version], 1.0)
        yield build
        decisions = CounterMetricFamily("gate_decisions", "Journaled decisions of this gate.",
                                        labels=["result", "reason"])
        by_key: dict[tuple[str, str], int] = {}
        for row in parts.tallies():
            key = (row.result, row.reason)
            by_key[key] = by_key.get(key, 0) + row.scans
        for (result, reason), count in sorted(by_key.items()):
            decisions.add_metric([result, reason], count)
        yield decisions
        alarms = CounterMetricFamily("gate_passage_alarms",
                                     "Passage alarms and manual releases, journaled.",
                                     labels=["kind"])
        for (_result, reason), count in sorted(by_key.items()):
            if reason in _ALARM_VALUES:
                alarms.add_metric([reason], count)
        yield alarms

        lat = parts.latencies()
        buckets = [(repr(bound), float(n)) for bound, n in zip(LATENCY_BUCKETS, lat.cumulative,
                                                                 strict=True)]
        buckets.append(("+Inf", float(lat.scans)))
        yield HistogramMetricFamily("gate_decision_latency_seconds",
                                    "Read to decision, as journaled.", buckets=buckets,
                                    sum_value=lat.total_seconds)

        doc = self._status()
        yield from _gauge("gate_tickets_in_store", "Tickets in the local store.",
                          doc.get("tickets"))
        yield from _gauge("gate_upload_queue_depth", "Scans waiting for upload.",
                          doc.get("queue", {}).get("depth"))
        syncs = [_timestamp(ev.get("last_sync")) for ev in doc.get("events", {}).values()]
        known = [s for s in syncs if s is not None]
        yield from _gauge("gate_last_sync_timestamp_seconds",
                          "Oldest last successful sync of a served event (Unix time).",
                          min(known) if known and len(known) == len(syncs) else None)
        yield from _gauge("gate_last_upload_timestamp_seconds",
                          "Last successful upload (Unix time).",
                          _timestamp(doc.get("queue", {}).get("last_upload")))
        yield from _gauge("gate_clock_offset_seconds",
                          "Server minus device clock, as used to stamp and decide.",
                          probes.clock_offset())
        yield from _clock(doc.get("clock"))
        yield from _gauge("gate_reader_connected", "1 while the reader is connected.",
                          probes.reader_connected())
        yield from _gauge("gate_frames_decoded_per_second", "Camera frames decoded per second.",
                          probes.frames_per_second())
        yield from _gauge("gate_api_online", "1 while the vivenu API answered last.",
                          probes.online())
        yield from _gauge("gate_fire_alarm", "1 while the fire alarm holds the gate open.",
                          probes.fire_alarm())
        yield from _mesh(probes.mesh())
        yield from _venue(probes.venue())
        yield from zone_metrics(probes.zones())
        ok, _reasons = parts.health()
        yield from _gauge("gate_watchdog_ok",
                          "1 while ready and every worker's heartbeat is fresh.", ok)
        if self._clients is not None:
            yield from _gauge("gate_kiosk_clients", "Open kiosk event streams.",
                              self._clients())


class Metrics:
    """The gate's metrics; ``status``: where the status document comes from (the kiosk's
    is read at most once a second, however often /metrics is scraped)."""

    def __init__(self, parts: KioskParts, clients: Any = None,
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GateCollector(parts, clients, status))
        self.read_to_relay = Histogram(
            "gate_read_to_relay_seconds", "A read until the act stage acted on it.",
            buckets=RELAY_BUCKETS, registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
