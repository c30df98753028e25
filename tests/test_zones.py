"""Zones: the tables, per-zone anti-passback, timed re-entry, resets, counts, capacity."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.config import load_config
from scanner.config.zones import MAX_DEPTH, VENUE, parse_zones
from scanner.decide import Direction, PastScan, Policy, Reason, ScanHistory, decide
from scanner.errors import ConfigError, ConfigMistakes
from scanner.tickets import Ticket, parse_iso, utc_iso
from scanner.zones.book import ZoneBook
from scanner.zones.presence import Occupancy, reset_marks, zone_history

NOW = datetime(2030, 5, 1, 20, 0, tzinfo=UTC)
TICKET = Ticket(id="t1", barcode="CODE12345678", event_id="ev1", status="VALID",
                ticket_type_id="tt", ticket_name="GA", seller_id="s",
                created_at="2030-01-01T00:00:00.000Z", updated_at="2030-01-01T00:00:00.000Z")
TABLES: list[dict[str, Any]] = [
    {"id": "grounds", "name": "Grounds", "capacity": 3},
    {"id": "stand", "parent": "grounds"},
    {"id": "lounge", "name": "VIP lounge", "parent": "stand", "capacity": 1},
]
TREE = parse_zones(TABLES)
GATES = {"g-main": "grounds", "g-stand": "stand", "g-lounge": "lounge"}


def at(minutes: float) -> str:
    return utc_iso(NOW + timedelta(minutes=minutes))


def scan(direction: Direction, gate: str, minutes: float) -> PastScan:
    return PastScan(direction, at(minutes), gate)


def seen_from(zone: str, *scans: PastScan, marks: dict[str, str] | None = None) -> ScanHistory:
    return zone_history(ScanHistory(scans), TREE, GATES.__getitem__, zone, marks or {})


# -- tables ------------------------------------------------------------------------------


def test_no_tables_is_one_venue_zone() -> None:
    tree = parse_zones(None)
    assert list(tree.zones) == [VENUE] and tree.resolve("anything") == VENUE


def test_tables_nest_and_name_paths() -> None:
    assert TREE.path("lounge") == ("lounge", "stand", "grounds")
    assert TREE.within("lounge", "grounds") and not TREE.within("grounds", "lounge")
    assert [z.id for z in TREE.capped()] == ["grounds", "lounge"]


def test_reset_and_reentry_are_parsed() -> None:
    tree = parse_zones([{"id": "a", "reentry_after": 30, "reset_at": "04:00"},
                        {"id": "b", "parent": "a", "reset_at": time(23, 30)}])
    assert tree["a"].reentry_after == timedelta(minutes=30)
    assert tree["a"].reset_at == time(4, 0) and tree["b"].reset_at == time(23, 30)


@pytest.mark.parametrize(("tables", "message"), [
    ([{"id": "a", "parent": "nowhere"}], "zones[0].parent: 'nowhere' is not a declared zone"),
    ([{"id": "a", "capacity": -1}], "zones[0].capacity: expected an integer from 0"),
    ([{"id": "a", "when_full": "maybe"}], "zones[0].when_full: expected 'deny' or 'warn'"),
    ([{"id": "a", "reset_at": "25:99x"}], "zones[0].reset_at: expected a local time"),
    # Digits of other scripts, which int() would read: Arabic-Indic, fullwidth, superscript.
    ([{"id": "a", "reset_at": "٠٤:٣٠"}], "zones[0].reset_at: expected a local time"),
    ([{"id": "a", "reset_at": "０４:30"}], "zones[0].reset_at: expected a local time"),
    ([{"id": "a", "reset_at": "04:3²"}], "zones[0].reset_at: expected a local time"),
    ([{"id": "a", "reentry_after": 0}], "zones[0].reentry_after: expected minutes above 0"),
    ([{"id": "a"}, {"id": "a"}], "zones[1].id: 'a' is declared twice"),
    ([{"id": "a", "colour": "red"}], "zones[0].colour: unknown key"),
    ([{"id": "a", "parent": "b"}, {"id": "b", "parent": "a"}], "each other's parents"),
])
def test_a_mistake_names_its_key(tables: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_zones(tables)


def test_every_zone_mistake_is_said_at_once_each_under_its_own_tables_key() -> None:
    tables = [{"id": "bad", "capacity": -1},
              {"id": "lounge", "parent": "nowhere"},
              {"id": "feeder", "parent": "a"},  # leads into the loop, is not in it
              {"id": "a", "parent": "b"}, {"id": "b", "parent": "a"}]
    with pytest.raises(ConfigMistakes) as caught:
        parse_zones(tables)
    assert [str(p) for p in caught.value.mistakes] == [
        "zones[0].capacity: expected an integer from 0 to 10000000, got -1",
        "zones[1].parent: 'nowhere' is not a declared zone",
        "zones: zones ['a', 'b'] are each other's parents"]


def chain(n: int) -> list[dict[str, str]]:
    return [{"id": f"z{i}", **({"parent": f"z{i - 1}"} if i else {})} for i in range(n)]


def test_zones_nest_up_to_the_deepest_level_and_no_deeper() -> None:
    assert len(parse_zones(chain(MAX_DEPTH)).path(f"z{MAX_DEPTH - 1}")) == MAX_DEPTH
    with pytest.raises(ConfigError) as caught:
        parse_zones(chain(MAX_DEPTH + 1))
    assert str(caught.value) == (f"zones[{MAX_DEPTH}].parent: 'z{MAX_DEPTH}' is nested "
                                 f"{MAX_DEPTH + 1} zones deep: at most {MAX_DEPTH} levels")


def test_a_chain_of_three_thousand_nested_zones_is_one_mistake_said_at_once() -> None:
    started = monotonic()
    with pytest.raises(ConfigError) as caught:
        parse_zones(chain(3000))
    assert monotonic() - started < 1.0  # each zone walked once, no path built
    assert str(caught.value).startswith(f"zones[{MAX_DEPTH}].parent: 'z{MAX_DEPTH}' is nested")


# -- per-zone anti-passback ----------------------------------------------------------------


def test_inside_the_stand_a_ticket_may_enter_the_lounge() -> None:
    history = (scan(Direction.IN, "g-main", -30), scan(Direction.IN, "g-stand", -20))
    lounge = decide(TICKET, seen_from("lounge", *history), Policy(), Direction.IN, NOW,
                    barcode="CODE12345678")
    stand = decide(TICKET, seen_from("stand", *history), Policy(), Direction.IN, NOW,
                   barcode="CODE12345678")
    assert lounge.granted and lounge.reason is Reason.GRANTED
    assert stand.reason is Reason.ALREADY_INSIDE


def test_entering_the_lounge_puts_the_ticket_in_the_stand_and_grounds() -> None:
    history = (scan(Direction.IN, "g-lounge", -5),)
    for zone in ("stand", "grounds"):
        seen = decide(TICKET, seen_from(zone, *history), Policy(), Direction.IN, NOW,
                      barcode="CODE12345678")
        assert seen.reason is Reason.ALREADY_INSIDE


def test_leaving_the_lounge_puts_the_ticket_back_in_the_stand() -> None:
    history = (scan(Direction.IN, "g-lounge", -9), scan(Direction.OUT, "g-lounge", -4))
    assert not seen_from("lounge", *history).inside
    assert seen_from("stand", *history).inside
    again = decide(TICKET, seen_from("lounge", *history), Policy(multi_checkin=True),
                   Direction.IN, NOW, barcode="CODE12345678")
    assert again.granted


def test_a_flat_venue_sees_the_history_unchanged() -> None:
    scans = (scan(Direction.IN, "x", -9), scan(Direction.OUT, "y", -4))
    assert zone_history(ScanHistory(scans), parse_zones(None), lambda g: VENUE, VENUE,
                        {}).scans == scans


# -- timed re-entry and resets --------------------------------------------------------------


def book(tables: list[dict[str, Any]] = TABLES, gate: str = "g-stand",
         zone: str = "stand") -> ZoneBook:
    return ZoneBook(parse_zones(tables), gate, zone, tz=UTC)


def judged(b: ZoneBook, scans: tuple[PastScan, ...], now: datetime = NOW,
           scan_id: str = "s-new", policy: Policy | None = None) -> Any:
    projected = b.project(ScanHistory(scans), now)
    return b.judge(decide(TICKET, projected, policy or Policy(), Direction.IN, now,
                          barcode="CODE12345678"),
                   projected, now, scan_id)


def test_timed_reentry_admits_after_the_set_minutes_only() -> None:
    b = book([{"id": "stand", "reentry_after": 30}])
    entered = (scan(Direction.IN, "g-stand", -29),)
    assert judged(b, entered).reason is Reason.ALREADY_INSIDE
    again = judged(b, entered, NOW + timedelta(minutes=1))
    assert again.granted and again.message.startswith("Welcome back")


def test_without_reentry_after_a_ticket_inside_never_enters_again() -> None:
    b = book([{"id": "stand"}])
    assert judged(b, (scan(Direction.IN, "g-stand", -600),)).reason is Reason.ALREADY_INSIDE


def test_a_reset_at_a_time_of_day_clears_presence() -> None:
    """Presence, not the count of entries: a ticket of a multi-entry event enters again."""
    b = book([{"id": "stand", "reset_at": "04:00"}])
    night = datetime(2030, 5, 2, 3, 59, tzinfo=UTC)
    entered = (PastScan(Direction.IN, utc_iso(night - timedelta(hours=2)), "g-stand"),)
    b.record("s1", "g-stand", "k1", "t1", "IN", "OK", entered[0].scanned_at)
    assert judged(b, entered, night).reason is Reason.ALREADY_INSIDE
    assert b.counts(night)["stand"] == 1
    morning = night + timedelta(minutes=2)
    assert judged(b, entered, morning, policy=Policy(multi_checkin=True)).granted
    assert judged(b, entered, morning).reason is Reason.REENTRY_NOT_ALLOWED
    assert b.counts(morning)["stand"] == 0


def test_a_reset_of_the_lounge_leaves_the_ticket_in_the_stand() -> None:
    b = book([{"id": "stand"}, {"id": "lounge", "parent": "stand", "reset_at": "20:00"}],
             gate="g-lounge", zone="lounge")
    b.record("s1", "g-lounge", "k1", "t1", "IN", "OK", at(-30))
    counts = b.counts(NOW)
    assert counts == {"stand": 1, "lounge": 0}


BERLIN = ZoneInfo("Europe/Berlin")
CLOCKS_CHANGE = {"forward": date(2026, 3, 29), "back": date(2026, 10, 25)}


@pytest.mark.parametrize("night", CLOCKS_CHANGE.values(), ids=CLOCKS_CHANGE.keys())
def test_the_last_reset_is_never_ahead_nor_forgotten_on_a_night_the_clocks_change(
        night: date) -> None:
    """02:30 in Berlin: skipped when the clocks go forward (then it comes at the offset
    before the change), twice when they go back (the first counts)."""
    tree = parse_zones([{"id": "stand", "reset_at": "02:30"}])
    resets = [datetime.combine(day, time(2, 30), tzinfo=BERLIN).astimezone(UTC)
              for day in (night - timedelta(days=1), night)]
    start = datetime.combine(night, time(0), tzinfo=UTC) - timedelta(hours=2)
    for minute in range(0, 6 * 60, 5):
        now = start + timedelta(minutes=minute)
        mark = parse_iso(reset_marks(tree, now, BERLIN)["stand"])
        assert mark == max(r for r in resets if r <= now), now


def test_a_reset_stays_done_in_the_hour_the_clocks_go_back() -> None:
    b = ZoneBook(parse_zones([{"id": "stand", "reset_at": "02:30"}]), "g-stand", "stand",
                 tz=BERLIN)
    b.record("s1", "g-stand", "k1", "t1", "IN", "OK", "2026-10-24T21:00:00.000Z")
    # 02:10 for the second time: the 02:30 reset came an hour ago, in summer time.
    assert b.counts(datetime(2026, 10, 25, 1, 10, tzinfo=UTC))["stand"] == 0


# -- counts and capacity -------------------------------------------------------------------


def test_counts_nest_and_follow_the_last_scan_in_stamp_order() -> None:
    b = book(gate="g-main", zone="grounds")
    b.record("a", "g-main", "0001", "t1", "IN", "OK", at(-10))
    b.record("b", "g-main", "0002", "t2", "IN", "OK", at(-9))
    b.record("c", "g-main", "0004", "t2", "OUT", "OK", at(-7))
    b.record("d", "g-main", "0003", "t2", "IN", "OK", at(-8))   # late, earlier stamp
    b.record("e", "g-main", "0005", "t3", "IN", "FAIL", at(-6))  # a denial counts for nothing
    assert b.counts(NOW) == {"grounds": 1, "stand": 0, "lounge": 0}


RESETTING = parse_zones([{"id": "grounds"}, {"id": "stand", "parent": "grounds"},
                         {"id": "lounge", "parent": "stand", "reset_at": "20:30"}])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(sorted(GATES)),
                          st.sampled_from(["IN", "OUT"]), st.integers(0, 40),
                          st.booleans(), st.integers(0, 60)), max_size=40))
def test_counts_kept_scan_by_scan_equal_counts_made_from_every_ticket(
        scans: list[tuple[int, str, str, int, bool, int]]) -> None:
    """The counts follow each scan as it is heard (late stamps, own decisions not stamped
    yet, a reset passing meanwhile); made anew from every ticket they are the same."""
    kept = Occupancy(RESETTING, GATES.__getitem__, tz=UTC)
    for n, (ticket, gate, direction, key, provisional, minutes) in enumerate(scans):
        now = NOW + timedelta(minutes=minutes)
        kept.add(f"t{ticket}", f"{key:04d}", f"s{n}", gate, direction, at(minutes - 5),
                 provisional=provisional)
        anew = Occupancy(RESETTING, GATES.__getitem__, tz=UTC)
        for m, (t, g, d, k, p, mins) in enumerate(scans[:n + 1]):
            anew.add(f"t{t}", f"{k:04d}", f"s{m}", g, d, at(mins - 5), provisional=p)
        assert kept.counts(now) == anew.counts(now)

def test_a_full_zone_denies_as_zone_full_and_warns_when_set_to() -> None:
    b = book([{"id": "stand", "capacity": 0}])
    denied = judged(b, ())
    assert denied.reason is Reason.ZONE_FULL and not denied.granted
    warned = judged(book([{"id": "stand", "capacity": 0, "when_full": "warn"}]), ())
    assert warned.granted and warned.extra["zone_full"] == "stand"


def test_a_lone_gate_admits_up_to_capacity_and_again_as_people_leave() -> None:
    b = book([{"id": "stand", "capacity": 2}])
    assert b.tick(NOW, {"g-stand"}) is not None  # the only gate is the minter
    granted = []
    for n in range(3):
        result = judged(b, (), scan_id=f"s{n}")
        if result.granted:
            b.record(f"s{n}", "g-stand", f"k{n}", f"t{n}", "IN", "OK", at(n))
        granted.append(result.granted)
    assert granted == [True, True, False]
    b.record("x", "g-stand", "k9", "t0", "OUT", "OK", at(5))
    b.tick(NOW, {"g-stand"})
    assert judged(b, (), scan_id="s4").granted


# -- the configuration ------------------------------------------------------------------


def write(tmp_path: Any, text: str) -> str:
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


ZONED = """gate_id = "north-1"
zone = "lounge"
[[zones]]
id = "stand"
capacity = 500
[[zones]]
id = "lounge"
parent = "stand"
reset_at = 04:00:00
"""


def test_the_configuration_reads_zone_tables_and_the_gates_zone(tmp_path: Any) -> None:
    config = load_config(write(tmp_path, ZONED), env={})
    assert config.zone == "lounge"
    assert config.zones.path("lounge") == ("lounge", "stand")
    assert config.zones["stand"].capacity == 500 and config.zones["lounge"].reset_at == time(4)


@pytest.mark.parametrize(("text", "message"), [
    (ZONED.replace('zone = "lounge"', 'zone = "bar"'), "zone: 'bar' is not one of the"),
    (ZONED + '[mesh]\nurl = "mqtt://127.0.0.1:1883"\nkey_file = "k"\n',
     "mesh.minter: required with mesh.url and a zone capacity"),
    (ZONED + "[[zones]]\nid = 'bar'\nparent = 'pub'\n", "zones[2].parent: 'pub'"),
])
def test_a_zone_mistake_in_the_file_names_its_key(tmp_path: Any, text: str,
                                                   message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text), env={})
