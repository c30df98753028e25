"""The venue's zones, from the ``[[zones]]`` tables of the configuration.

A zone has an ``id``, a ``name`` for people, an optional ``parent`` (zones nest: the
grounds, a stand in them, a lounge in the stand), an optional safety ``capacity``, what a
full zone does (``when_full``: ``deny`` entry, or ``warn`` and admit), ``reentry_after``
(minutes after which a ticket inside may enter again: timed anti-passback; unset = never)
and ``reset_at`` (a local time of day at which everyone inside is put back in the parent,
as pretix's "exit all at").

Without tables there is one zone, ``venue``, and every gate is in it: the flat venue of a
gate that knows nothing of zones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any, Literal

from scanner.config.rules import parse_time_of_day
from scanner.errors import ConfigError, ConfigMistakes

VENUE = "venue"
WhenFull = Literal["deny", "warn"]
WHEN_FULL: tuple[WhenFull, ...] = ("deny", "warn")
MAX_CAPACITY = 10_000_000
MAX_REENTRY_MINUTES = 7 * 24 * 60
# Levels of nesting, the root's included. Venues nest a few (grounds, stand, block,
# lounge); each zone keeps its whole path to the root, so a chain thousands deep would
# cost its square in memory and start-up time.
MAX_DEPTH = 32
_KEYS = {"id", "name", "parent", "capacity", "when_full", "reentry_after", "reset_at"}


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str = ""
    parent: str | None = None
    capacity: int | None = None
    when_full: WhenFull = "deny"
    reentry_after: timedelta | None = None
    reset_at: time | None = None

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, eq=False)
class ZoneTree:
    """Zones by id with their nesting precomputed: each zone's path to the root (itself
    first), so "inside Z" is a set lookup at scan time."""

    zones: Mapping[str, Zone]
    paths: Mapping[str, tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        paths: dict[str, tuple[str, ...]] = {}
        for zid in self.zones:
            path: list[str] = []
            at: str | None = zid
            while at is not None:
                path.append(at)
                at = self.zones[at].parent
            paths[zid] = tuple(path)
        object.__setattr__(self, "paths", paths)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZoneTree) and dict(self.zones) == dict(other.zones)

    def __hash__(self) -> int:
        return hash(tuple(self.zones.values()))

    def __contains__(self, zone: object) -> bool:
        return zone in self.zones

    def __getitem__(self, zone: str) -> Zone:
        return self.zones[zone]

    def __iter__(self) -> Iterator[Zone]:
        return iter(self.zones.values())

    @property
    def default(self) -> str:
        """The zone of a gate that names none: the only root, or the first declared."""
        roots = [z.id for z in self.zones.values() if z.parent is None]
        return roots[0]

    def resolve(self, zone: str | None) -> str:
        """A gate's zone: ``zone`` if declared here, else the default zone."""
        return zone if zone is not None and zone in self.zones else self.default

    def path(self, zone: str | None) -> tuple[str, ...]:
        """``zone`` and its ancestors, innermost first; () for outside every zone."""
        return self.paths.get(zone, ()) if zone is not None else ()

    def within(self, zone: str | None, outer: str) -> bool:
        """Whether ``zone`` is ``outer`` or inside it."""
        return outer in self.path(zone)

    def parent(self, zone: str) -> str | None:
        return self.zones[zone].parent

    def capped(self) -> list[Zone]:
        return [z for z in self.zones.values() if z.capacity is not None]

    def to_tables(self) -> list[dict[str, Any]]:
        """The ``[[zones]]`` tables that load back to this tree (none for the flat venue)."""
        if self == venue():
            return []
        tables = []
        for z in self.zones.values():
            table: dict[str, Any] = {"id": z.id, "name": z.name, "parent": z.parent,
                                     "capacity": z.capacity, "when_full": z.when_full}
            if z.reentry_after is not None:
                table["reentry_after"] = z.reentry_after.total_seconds() / 60
            if z.reset_at is not None:
                table["reset_at"] = z.reset_at.strftime("%H:%M")
            tables.append(table)
        return tables


def venue() -> ZoneTree:
    """The one flat zone of a gate without ``[[zones]]`` tables."""
    return ZoneTree({VENUE: Zone(VENUE, "Venue")})


def parse_zones(tables: Any, key: str = "zones") -> ZoneTree:
    """The zone tree of ``[[zones]]`` tables; every mistake is a ConfigError naming its key
    (``zones[2].parent: 'stand' is not a declared zone``), all of them at once."""
    if tables is None or tables == []:
        return venue()
    if not isinstance(tables, list):
        raise ConfigError(f"{key}: expected [[{key}]] tables")
    problems: list[ConfigError] = []
    zones: dict[str, Zone] = {}
    declared_at: dict[str, str] = {}  # zone id -> its table's key, for the parent's error
    for i, table in enumerate(tables):
        where = f"{key}[{i}]"
        try:
            zone = _zone(table, where)
        except ConfigError as exc:
            problems.append(exc)
            continue
        if zone.id in zones:
            problems.append(ConfigError(f"{where}.id: {zone.id!r} is declared twice"))
        zones[zone.id], declared_at[zone.id] = zone, where
    for zid, zone in zones.items():
        if zone.parent is not None and zone.parent not in zones:
            problems.append(ConfigError(f"{declared_at[zid]}.parent: {zone.parent!r} is not "
                                        f"a declared zone"))
    problems += _cycles(zones, key)
    if not problems:
        problems += _too_deep(zones, declared_at)
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigMistakes(problems)
    return ZoneTree(zones)


def _zone(table: Any, where: str) -> Zone:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (expected one of "
                          f"{', '.join(sorted(_KEYS))})")
    zid = table.get("id")
    if not isinstance(zid, str) or not zid or not zid.isprintable() or len(zid) > 64:
        raise ConfigError(f"{where}.id: expected a name of 1 to 64 printable characters, "
                          f"got {zid!r}")
    name = table.get("name", "")
    if not isinstance(name, str) or not name.isprintable():
        raise ConfigError(f"{where}.name: expected printable text, got {name!r}")
    parent = table.get("parent")
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"{where}.parent: expected a zone id, got {parent!r}")
    if parent == zid:
        raise ConfigError(f"{where}.parent: a zone cannot be its own parent")
    capacity = table.get("capacity")
    if capacity is not None and (type(capacity) is not int
                                 or not 0 <= capacity <= MAX_CAPACITY):
        raise ConfigError(f"{where}.capacity: expected an integer from 0 to {MAX_CAPACITY}, "
                          f"got {capacity!r}")
    when_full = table.get("when_full", "deny")
    if when_full not in WHEN_FULL:
        raise ConfigError(f"{where}.when_full: expected 'deny' or 'warn', got {when_full!r}")
    return Zone(zid, name, parent, capacity, when_full,
                _minutes(table.get("reentry_after"), f"{where}.reentry_after"),
                _time_of_day(table.get("reset_at"), f"{where}.reset_at"))


def _minutes(value: Any, key: str) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= MAX_REENTRY_MINUTES:
        raise ConfigError(f"{key}: expected minutes above 0 and at most "
                          f"{MAX_REENTRY_MINUTES}, got {value!r}")
    return timedelta(minutes=value)


def _time_of_day(value: Any, key: str) -> time | None:
    if value is None:
        return None
    if isinstance(value, time):  # TOML's own local time (reset_at = 04:00)
        return value.replace(second=0, microsecond=0)
    try:
        return parse_time_of_day(value)
    except (AttributeError, ValueError, TypeError):
        raise ConfigError(f"{key}: expected a local time of day as HH:MM, "
                          f"got {value!r}") from None


def _too_deep(zones: Mapping[str, Zone], declared_at: Mapping[str, str]) -> list[ConfigError]:
    """The zones one level past ``MAX_DEPTH`` (those below them follow from these); the
    parents are declared and loop-free here, and each depth is found once."""
    depth: dict[str, int] = {}
    for start in zones:
        chain: list[str] = []
        at: str | None = start
        while at is not None and at not in depth:
            chain.append(at)
            at = zones[at].parent
        below = depth[at] if at is not None else 0
        for zid in reversed(chain):
            below += 1
            depth[zid] = below
    return [ConfigError(f"{declared_at[zid]}.parent: {zid!r} is nested {MAX_DEPTH + 1} "
                        f"zones deep: at most {MAX_DEPTH} levels")
            for zid, d in depth.items() if d == MAX_DEPTH + 1]


def _cycles(zones: Mapping[str, Zone], key: str) -> list[ConfigError]:
    """Each loop of parents once, named by the zones in it (not those leading into it);
    every zone is walked once, however long the chains."""
    problems: list[ConfigError] = []
    walked: set[str] = set()
    for start in zones:
        path: dict[str, None] = {}  # this walk's zones in order; a dict to look up at once
        at: str | None = start
        while at is not None and at in zones and at not in walked and at not in path:
            path[at] = None
            at = zones[at].parent
        if at is not None and at in path:
            order = list(path)
            loop = sorted(order[order.index(at):])
            problems.append(ConfigError(f"{key}: zones {loop} are each other's parents"))
        walked.update(path)
    return problems
