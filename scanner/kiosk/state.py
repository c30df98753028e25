"""The page's state message: online, age of the ticket data, queue, counters, banners."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from scanner.clock import utc_now
from scanner.decide.model import Direction
from scanner.kiosk.counts import counters
from scanner.kiosk.parts import KioskParts
from scanner.tickets import parse_iso

DEFAULT_REVEAL_SECONDS = 3.0  # vivenu's app default when /me has no scanRevealInterval
# What the page is told of the clock (``ClockState.to_json``): enough for a badge.
PAGE_CLOCK_KEYS = ("state", "server", "trusted", "disagrees", "offset_s", "server_offset_s")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def directions(settings: dict[str, Any] | None) -> list[str]:
    """The directions ``scanTypes`` allow (both when /me does not say)."""
    scan_types = _obj(_obj(_obj(_obj(settings).get("deviceSettings")).get("scanConfig"))
                      .get("scanTypes"))
    allowed = [d.value for d, key in ((Direction.IN, "checkin"), (Direction.OUT, "checkout"))
               if scan_types.get(key, True) is not False]
    return allowed or [Direction.IN.value]


def reveal_seconds(settings: dict[str, Any] | None) -> float:
    value = _obj(_obj(settings).get("deviceSettings")).get("scanRevealInterval")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 60:
        return float(value)
    return DEFAULT_REVEAL_SECONDS


def data_age(doc: dict[str, Any], now: datetime) -> float | None:
    """Seconds since the stalest served event was last synced; None if one never was."""
    stamps = [ev.get("last_sync") for ev in doc.get("events", {}).values()]
    if not stamps or any(not s for s in stamps):
        return None
    try:
        oldest = min(parse_iso(s) for s in stamps)
    except ValueError:
        return None
    return max(0.0, (now - oldest).total_seconds())


# Clock banners: catalogue key and the English line ``/api/state`` keeps for integrators.
CLOCK_BANNERS = {
    "untrusted": ("banner.clock_untrusted",
                  "Clock not trusted: timeslot tickets are refused until the time is known"),
    "disagrees": ("banner.clock_disagrees",
                  "Clock disagrees with the server: times follow this gate's own clock"),
    "unset": ("banner.clock_unset", "Clock not set: timeslots and times are unsure"),
}


def clock_banner(clock: dict[str, Any], ok: bool) -> str | None:
    """The clock's banner from the status document's ``clock`` (``ClockState.to_json``):
    ``untrusted``, ``disagrees``, ``unset`` (keys of CLOCK_BANNERS), or None."""
    if clock.get("trusted") is False:
        return "untrusted"
    if clock.get("disagrees"):
        return "disagrees"
    if not ok:
        return "unset"
    return None


def _banner(kind: str, key: str, text: str, **args: Any) -> dict[str, Any]:
    """A banner: ``key`` and ``args`` name its words in the page's catalogue; ``text`` is
    the English line, for whatever reads /api/state without a catalogue."""
    return {"kind": kind, "key": key, "args": args, "text": text}


# Venue command banners by the mode the supervisors ordered (scanner.decide.orders.Mode).
VENUE_BANNERS = {
    "stopped": ("banner.venue_stopped", "Entry stopped by supervisor: exit only"),
    "egress": ("banner.venue_egress", "Free egress: the gate is held open, no entry"),
    "lockdown": ("banner.venue_lockdown", "Lockdown: no entry, no exit"),
}


def banners(parts: KioskParts, fire_alarm: bool,
            clock: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    probes = parts.probes
    out = []
    if fire_alarm:
        out.append(_banner("fire", "banner.fire", "FIRE ALARM: the gate is held open"))
    venue = probes.venue()
    if venue and venue.get("mode") in VENUE_BANNERS:
        out.append(_banner("venue", *VENUE_BANNERS[venue["mode"]]))
    which = clock_banner(clock or {}, probes.clock_ok())
    if which is not None:
        out.append(_banner("clock", *CLOCK_BANNERS[which]))
    if probes.reader_connected() is False:
        out.append(_banner("reader", "banner.reader", "Reader disconnected: use manual entry"))
    mesh = probes.mesh()
    if mesh and mesh.get("deciding_alone"):
        out.append(_banner("mesh", "banner.mesh",
                           "Deciding alone: the other gates cannot be reached"))
    return out


def feedback(settings: dict[str, Any] | None) -> dict[str, bool]:
    """/me's ``enableSoundFeedback`` and ``enableHapticFeedback`` (on when not said)."""
    device = _obj(_obj(settings).get("deviceSettings"))
    return {"sound": device.get("enableSoundFeedback") is not False,
            "haptic": device.get("enableHapticFeedback") is not False}


def venue_counters(parts: KioskParts) -> dict[str, int] | None:
    """The whole venue's in, out and inside now, once gates share scans (None without)."""
    mesh = parts.probes.mesh()
    venue = mesh.get("venue") if mesh else None
    return dict(venue) if isinstance(venue, dict) else None


def syncing(doc: dict[str, Any], eta: Callable[[int, int | None], float | None]
            ) -> dict[str, Any] | None:
    """The first sync's progress for the page: done, total, seconds left (each may be
    None); None once the store is whole."""
    first = doc.get("first_sync")
    if not isinstance(first, dict):
        return None
    done, total = int(first.get("done") or 0), first.get("total")
    return {"done": done, "total": total, "eta_s": eta(done, total)}


def page_state(parts: KioskParts, *, direction: Direction, fire_alarm: bool,
               login_required: bool,
               eta: Callable[[int, int | None], float | None] = lambda _d, _t: None
               ) -> dict[str, Any]:
    doc = parts.status()
    settings = parts.probes.settings()
    inside = sum(int(ev.get("inside", 0)) for ev in doc.get("events", {}).values())
    clock = _obj(doc.get("clock"))
    return {
        "type": "state",
        "gate": parts.gate_id,
        "online": parts.probes.online(),
        "data_age_s": data_age(doc, utc_now()),
        "tickets": doc.get("tickets", 0),
        "queue_depth": doc.get("queue", {}).get("depth", 0),
        "counters": counters(parts.tallies(), inside),
        "venue": venue_counters(parts),
        "banners": banners(parts, fire_alarm, clock),
        "clock": {key: clock.get(key) for key in PAGE_CLOCK_KEYS} if clock else None,
        "direction": direction.value,
        "directions": directions(settings),
        "reveal_s": reveal_seconds(settings),
        "feedback": feedback(settings),
        "syncing": syncing(doc, eta),
        # None: the gate cannot tell (never asked)
        "reader_connected": parts.probes.reader_connected(),
        "login_required": login_required,
    }
