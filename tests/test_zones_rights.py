"""The places a book says this gate holds, kept as records and ledgers arrive, equal the
sums over every gate's ledger and records made anew (what the escrow's rules define)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.config.zones import parse_zones
from scanner.zones import escrow
from scanner.zones.book import ZoneBook
from scanner.zones.escrow import Ledger

# Small capacities: what a minter made is then often clipped to what it can have made.
TREE = parse_zones([{"id": "grounds", "capacity": 4}, {"id": "stand", "parent": "grounds"},
                    {"id": "lounge", "parent": "stand", "capacity": 2}])
ZONES = ("grounds", "stand", "lounge")
CAPPED = ("grounds", "lounge")
GATES = ("m", "a", "b", "c", "me")
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def recounted(book: ZoneBook, zone: str) -> int:
    """``rights`` as the sums over every gate define it (the book's private state read):
    every gate's spends from its records, made anew."""
    spent = {gate: book._spent(gate, zone) for gate in {*book._ins, *book._outs}}
    exits = sum(book._outs.values()) - book._counted_outs
    most = book._makeable.get(zone, book._capacity(zone) + sum(spent.values())) + exits
    got = escrow.received(zone, book.minter, book._ledgers, spent, most)
    pending = sum(zone in zones for zones in book._pending.values())
    held = escrow.rights(zone, book.gate, book._ledgers, spent, got, most, pending)
    return held if book.ready and not book.forfeited else min(held, 0)


counts = st.dictionaries(st.sampled_from(CAPPED), st.integers(0, 8), max_size=2)
# The minter gives to any gate, a gate to the minter (and, lying, to others too).
sent = st.dictionaries(st.sampled_from(CAPPED),
                       st.dictionaries(st.sampled_from(GATES), st.integers(0, 8), max_size=4),
                       max_size=2)
step = st.one_of(
    st.tuples(st.just("record"), st.sampled_from(GATES), st.sampled_from(["IN", "OUT"]),
              st.integers(0, 12)),
    st.tuples(st.just("ledger"), st.sampled_from(GATES[:-1]), st.sampled_from(ZONES),
              counts, sent),
    st.tuples(st.just("tick"), st.sets(st.sampled_from(GATES)), st.integers(0, 10)),
    st.tuples(st.just("take"), st.sampled_from(ZONES)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["m", "me"]), st.lists(step, max_size=40))
def test_the_places_held_kept_step_by_step_equal_the_sums_made_anew(
        minter: str, steps: list[tuple[Any, ...]]) -> None:
    book = ZoneBook(TREE, "me", "lounge", tz=UTC, minter=minter)
    versions = dict.fromkeys(GATES, 0)
    for n, (kind, *args) in enumerate(steps):
        if kind == "record":
            gate, direction, ticket = args
            book.record(f"s{n}", gate, f"{n:013d}-000000-{gate}", f"t{ticket}", direction,
                        "OK", (NOW + timedelta(seconds=n)).isoformat())
        elif kind == "ledger":
            gate, zone, minted, given = args
            versions[gate] += 1
            book.hear(Ledger(gate, zone, minter, versions[gate] + 100, minted, given, {}))
        elif kind == "tick":
            online, seconds = args
            book.tick(NOW + timedelta(seconds=seconds), online)
        else:
            (zone,) = args
            book._take(list(TREE.path(zone)), f"p{n}", NOW)
        for zone in CAPPED:
            assert book.rights(zone) == recounted(book, zone), (n, kind, zone)


def test_a_minters_new_gift_counts_the_hand_back_it_now_covers() -> None:
    """A gate handed back 2 places when the minter's ledger showed 1 given to it: 1
    counts. The minter's next ledger gives it 3: both count, and what the minter can give
    this gate is worked out anew from that."""
    book = ZoneBook(TREE, "me", "grounds", tz=UTC, minter="m")
    book.hear(Ledger("m", "grounds", "m", 1, {"grounds": 4}, {"grounds": {"a": 1, "me": 4}}))
    book.hear(Ledger("a", "grounds", "m", 1, {}, {"grounds": {"m": 2}}))
    assert book.rights("grounds") == recounted(book, "grounds") == 4
    book.hear(Ledger("m", "grounds", "m", 2, {"grounds": 4}, {"grounds": {"a": 3, "me": 4}}))
    assert book.rights("grounds") == recounted(book, "grounds") == 3


def test_the_minters_own_gifts_count_the_hand_backs_they_now_cover() -> None:
    """As the minter: a gate handed back 2 places before it was given any, so none count;
    once this gate's round gives it places, its hand-back counts up to them."""
    book = ZoneBook(TREE, "me", "grounds", tz=UTC, minter="me")
    book.hear(Ledger("a", "grounds", "me", 1, {}, {"grounds": {"me": 2}}))
    assert book.rights("grounds") == recounted(book, "grounds") == 0
    assert book.tick(NOW, {"a", "me"}) is not None
    given = book.ledger().given("grounds", "a")  # type: ignore[union-attr]
    assert given > 0  # of the 4 places it made
    assert book.rights("grounds") == recounted(book, "grounds") == 4 - given + min(2, given)
