"""The simulated world without HTTP: generation, listing order, paging, mutations, faults."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.sim.generate import locate, mix, unmix
from scanner.sim.injection import Faults
from scanner.sim.scans import server_decision
from scanner.sim.world import World
from scanner.tickets import parse_iso


def listing(world: World, event: int = 0) -> list[dict[str, Any]]:
    return list(world.current_tickets(world.event_ids[event]))


def all_pages(world: World, top: int, event: int = 0, **window: int | None) -> list[dict]:
    event_id, docs, skip = world.event_ids[event], [], 0
    while True:
        page, total = world.page(event_id, top=top, skip=skip, **window)
        docs += page
        skip += top
        if skip >= total:
            return docs


def us(stamp: str) -> int:
    moment = parse_iso(stamp)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


# -- generation ----------------------------------------------------------------------------

@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_unmix_inverts_mix(x: int) -> None:
    assert unmix(mix(x)) == x


def test_barcodes_are_unique_long_and_locatable() -> None:
    world = World(seed=11, events=3, tickets_per_event=2000)
    docs = [doc for event in range(3) for doc in listing(world, event)]
    codes = [doc["barcode"] for doc in docs]
    assert len(set(codes)) == len(codes) == 6000
    assert min(map(len, codes)) >= 8
    assert all(world.find(doc["barcode"]) == doc for doc in docs[::97])
    assert locate(codes[0], world.salt) == (0, 0)


def test_ids_never_collide_with_barcodes() -> None:
    world = World(seed=7, events=2, tickets_per_event=300)
    codes = {doc["barcode"].lower() for event in range(2) for doc in listing(world, event)}
    others = {e["_id"].removeprefix("evt-") for e in world.events()}
    others |= {world.seller_id.removeprefix("sel-"), world.user_id[:16]}
    assert not codes & others


def test_base_tickets_are_in_the_past_and_ordered() -> None:
    world = World(seed=1, events=1, tickets_per_event=500)
    docs = listing(world)
    assert all(doc["createdAt"] == doc["updatedAt"] for doc in docs)
    assert [d["updatedAt"] for d in docs] == sorted(d["updatedAt"] for d in docs)
    assert len({d["updatedAt"] for d in docs}) == 500
    assert us(docs[-1]["updatedAt"]) < world.now() * 1_000_000


def test_only_the_first_event_has_timeslots() -> None:
    world = World(seed=2, events=2, tickets_per_event=300)
    assert any("slotStartTime" in doc for doc in listing(world, 0))
    assert not any("slotStartTime" in doc for doc in listing(world, 1))


def test_same_seed_same_world_and_same_changes() -> None:
    one, two = World(seed=3), World(seed=3)
    assert listing(one, 1) == listing(two, 1)
    changed_one = [(kind, doc["_id"]) for kind, doc in one.mutate(40)]
    changed_two = [(kind, doc["_id"]) for kind, doc in two.mutate(40)]
    assert changed_one == changed_two
    assert {kind for kind, _ in changed_one} == {"sell", "cancel", "change", "delete"}


def test_other_seed_other_tickets() -> None:
    assert listing(World(seed=3))[0]["barcode"] != listing(World(seed=4))[0]["barcode"]


# -- mutations and the listing order -------------------------------------------------------

def test_a_changed_ticket_moves_to_the_end_and_later_pages_shift_left() -> None:
    world = World(seed=5, events=1, tickets_per_event=40)
    before = listing(world)
    [changed] = world.change(1)
    position = next(k for k, doc in enumerate(before) if doc["_id"] == changed["_id"])
    assert listing(world) == before[:position] + before[position + 1:] + [changed]
    assert changed["updatedAt"] > before[-1]["updatedAt"]


def test_a_change_before_the_cursor_skips_a_ticket_for_a_naive_pager() -> None:
    """The hazard the sync must survive: offset paging misses the first ticket of page 2."""
    world = World(seed=5, events=1, tickets_per_event=40)
    event_id = world.event_ids[0]
    first, _ = world.page(event_id, top=10, skip=0)
    world.update(first[0]["barcode"], name="Someone Else")
    second, total = world.page(event_id, top=10, skip=10)
    assert total == 40
    assert second[0] == listing(world)[10]
    assert second[0]["_id"] != first[-1]["_id"]
    naive = {doc["_id"] for doc in first + second}
    assert len(naive) == 20 and listing(world)[9]["_id"] not in naive


def test_cancel_sets_invalid_and_stamps_now() -> None:
    world = World(seed=5, events=1, tickets_per_event=40)
    cancelled = world.cancel(3)
    assert len(cancelled) == 3 and {doc["status"] for doc in cancelled} == {"INVALID"}
    assert all(world.find(doc["barcode"]) == doc for doc in cancelled)
    stamps = [doc["updatedAt"] for doc in cancelled]
    assert stamps == sorted(set(stamps))


def test_deleted_tickets_are_not_listed_or_found() -> None:
    world = World(seed=5, events=1, tickets_per_event=40)
    gone = world.delete(4)
    assert len(gone) == 4
    ids = {doc["_id"] for doc in listing(world)}
    assert len(ids) == 36 and not ids & {doc["_id"] for doc in gone}
    assert all(world.find(doc["barcode"]) is None for doc in gone)


def test_sold_tickets_are_valid_new_and_last() -> None:
    world = World(seed=5, events=2, tickets_per_event=40)
    sold = world.sell(world.event_ids[1], 3, barcodes=["AB/CD 123", "ÜNI-#-4567", "PLAIN0001"])
    assert listing(world, 1)[-3:] == sold
    assert all(d["status"] == "VALID" and d["createdAt"] == d["updatedAt"] for d in sold)
    assert world.find("AB/CD 123") == sold[0]
    assert world.find("AB/CD 123", world.event_ids[0]) is None


def test_update_changes_one_chosen_ticket() -> None:
    world = World(seed=5, events=1, tickets_per_event=40)
    target = listing(world)[7]
    changed = world.update(target["barcode"], status="INVALID")
    assert changed == {**target, "status": "INVALID", "updatedAt": changed["updatedAt"]}
    assert listing(world)[-1] == changed and world.find(target["barcode"]) == changed


def test_update_of_an_unknown_barcode_is_key_error() -> None:
    with pytest.raises(KeyError):
        World(seed=5, events=1, tickets_per_event=40).update("NOSUCHCODE")


def test_selling_a_taken_barcode_is_refused() -> None:
    world = World(seed=5, events=1, tickets_per_event=40)
    taken = listing(world)[0]["barcode"]
    with pytest.raises(ValueError, match="taken"):
        world.sell(world.event_ids[0], 1, barcodes=[taken])
    assert world.count(world.event_ids[0]) == 40


def test_a_lowercased_barcode_is_not_found() -> None:
    world = World(seed=5, events=1, tickets_per_event=40)
    assert world.find(listing(world)[0]["barcode"].lower()) is None


# -- paging arithmetic against a plain model -----------------------------------------------

operations = st.lists(st.tuples(st.sampled_from(["sell", "cancel", "change", "delete"]),
                                st.integers(1, 5)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(ops=operations, top=st.integers(1, 17), data=st.data())
def test_pages_equal_the_filtered_sorted_model(ops: list, top: int, data: st.DataObject) -> None:
    # A frozen clock: hypothesis replays examples and needs the same timestamps each time.
    world = World(seed=9, events=1, tickets_per_event=50, clock=lambda: 1.8e9)
    event_id = world.event_ids[0]
    model = {doc["_id"]: doc for doc in listing(world)}
    for kind, n in ops:
        changed = world.sell(event_id, n) if kind == "sell" else getattr(world, kind)(n)
        for doc in changed:
            if kind == "delete":
                del model[doc["_id"]]
            else:
                model[doc["_id"]] = doc
    ordered = sorted(model.values(), key=lambda d: (d["updatedAt"], d["_id"]))
    stamps = [us(d["updatedAt"]) for d in ordered]
    bound = st.one_of(st.none(), st.sampled_from(stamps),
                      st.integers(min(stamps) - 10**6, max(stamps) + 10**6))
    from_us, until_us = data.draw(bound), data.draw(bound)
    expected = [d for d, t in zip(ordered, stamps, strict=True)
                if (from_us is None or t >= from_us) and (until_us is None or t < until_us)]
    assert all_pages(world, top, from_us=from_us, until_us=until_us) == expected
    assert listing(world) == ordered
    skip = data.draw(st.integers(0, len(expected) + 3))
    page, total = world.page(event_id, top=top, skip=skip, from_us=from_us, until_us=until_us)
    assert (page, total) == (expected[skip:skip + top], len(expected))


def test_window_is_from_inclusive_until_exclusive() -> None:
    world = World(seed=5, events=1, tickets_per_event=40)
    docs = listing(world)
    page, total = world.page(world.event_ids[0], top=100, skip=0,
                             from_us=us(docs[5]["updatedAt"]), until_us=us(docs[8]["updatedAt"]))
    assert page == docs[5:8] and total == 3


def test_a_million_tickets_page_fast_at_the_far_end() -> None:
    world = World(seed=1, events=1, tickets_per_event=1_000_000)
    event_id = world.event_ids[0]
    spec = world._events[event_id].spec
    [changed] = world.change(1, event_id)
    page, total = world.page(event_id, top=10, skip=999_995)
    assert total == 1_000_000
    assert [d["barcode"] for d in page[:4]] == [spec.barcode(i) for i in range(999_996, 10**6)]
    assert page[-1] == changed and len(page) == 5


# -- rules and faults ----------------------------------------------------------------------

@pytest.mark.parametrize(("status", "inside", "details", "access"), [
    ("VALID", False, False, "GRANTED"), ("VALID", True, False, "DENIED"),
    ("INVALID", False, True, "DENIED"), ("DETAILSREQUIRED", False, False, "DENIED"),
    ("DETAILSREQUIRED", False, True, "GRANTED")])
def test_server_decision(status: str, inside: bool, details: bool, access: str) -> None:
    assert server_decision({"status": status}, inside, details) == access


def test_uploaded_check_in_makes_a_live_scan_denied() -> None:
    world = World(seed=5, events=1, tickets_per_event=0)
    [doc] = world.sell(world.event_ids[0], 1)
    world.record_scans(world.event_ids[0], [{"barcode": doc["barcode"], "type": "OK",
                                             "direction": "IN", "scanned_at": "2026"}])
    assert world.scan(doc["barcode"])["access"] == "DENIED"


def test_same_fault_seed_same_fates() -> None:
    one, two = Faults(seed=1, error_rate=0.5, drop_rate=0.2), Faults(seed=1, error_rate=0.5,
                                                                       drop_rate=0.2)
    fates = [one.fate() for _ in range(50)]
    assert fates == [two.fate() for _ in range(50)]
    assert {kind for kind, _ in fates} == {"pass", "drop", "error"}


def test_counted_faults_run_out() -> None:
    faults = Faults(rate_limit=2, fail_next=1)
    assert [faults.fate()[0] for _ in range(4)] == ["limit", "limit", "error", "pass"]


@pytest.mark.parametrize("switches", [{"nonsense": 1}, {"latency_ms": -1},
                                      {"error_rate": 1.5}, {"churn": "fast"}])
def test_bad_fault_switches_are_refused_whole(switches: dict) -> None:
    faults = Faults(latency_ms=5)
    with pytest.raises(ValueError, match=next(iter(switches))):
        faults.update(**switches, rate_limit=3)
    assert faults.settings().rate_limit == 0 and faults.settings().latency_ms == 5
