"""Per-zone figures for /metrics, of a gate and of the control room alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

ZoneList = Callable[[], list[dict[str, Any]]]


def zone_metrics(zones: list[dict[str, Any]]) -> Iterator[Metric]:
    """Tickets inside each zone, its capacity where it has one, and the places this gate
    holds in it (``ZoneBook.snapshot``'s ``zones``)."""
    inside = GaugeMetricFamily("gate_zone_inside", "Tickets inside the zone (every gate's "
                               "records).", labels=["zone"])
    cap = GaugeMetricFamily("gate_zone_capacity", "The zone's safety capacity.",
                            labels=["zone"])
    held = GaugeMetricFamily("gate_zone_places_held", "Places in the zone this gate may "
                             "still admit into without asking the others.", labels=["zone"])
    for zone in zones:
        inside.add_metric([zone["id"]], float(zone["inside"]))
        if zone.get("capacity") is not None:
            cap.add_metric([zone["id"]], float(zone["capacity"]))
        if zone.get("held_here") is not None:
            held.add_metric([zone["id"]], float(zone["held_here"]))
    yield inside
    yield cap
    yield held


class ZoneCollector:
    """A prometheus_client collector asking ``zones`` at every scrape."""

    def __init__(self, zones: ZoneList) -> None:
        self._zones = zones

    def collect(self) -> Iterator[Metric]:
        yield from zone_metrics(self._zones())
