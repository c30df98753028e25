"""Policy.build: the server's /me settings, local overrides, and what a bad /me falls back to."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.config import PolicyConfig
from scanner.decide import Feedback, Policy
from scanner.errors import ConfigError

LOCAL = PolicyConfig()
ME: dict[str, Any] = {
    "sellerId": "s1",
    "name": "north gate",
    "deviceSettings": {
        "scanConfig": {
            "mode": "default",
            "events": [
                {"eventId": "ev1", "allowAllTicketTypes": False,
                 "allowedTicketTypeIds": ["tt-ga", "tt-vip"],
                 "timeslotSettings": {"beforeMinutes": 15, "afterMinutes": 45}},
                {"eventId": "ev2", "allowAllTicketTypes": True},
            ],
            "scanTypes": {"checkin": False, "checkout": True},
            "enableMultiCheckin": True,
            "checkTimeslots": True,
        },
        "colorSettings": {"repeated": "red"},
    },
    "accessControlSettings": {"includeDetailsRequiredTickets": True},
}


def me_with(path: str, value: Any) -> dict[str, Any]:
    """ME with the dotted ``path`` set to ``value`` (``events.0.x`` indexes the event list)."""
    doc = copy.deepcopy(ME)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return doc


def scan_config(path: str, value: Any) -> dict[str, Any]:
    return me_with(f"deviceSettings.scanConfig.{path}", value)


def test_never_fetched_me_gives_the_safe_defaults() -> None:
    policy = Policy.build(None, LOCAL, ())
    assert policy == Policy()
    assert (policy.allow_checkin, policy.allow_checkout, policy.multi_checkin,
            policy.include_details_required, policy.check_timeslots,
            policy.served_events, policy.allowed_types("any")) == (
        True, True, False, False, False, None, None)


def test_server_flags_are_followed() -> None:
    policy = Policy.build(ME, LOCAL, ())
    assert (policy.allow_checkin, policy.allow_checkout, policy.multi_checkin,
            policy.check_timeslots, policy.include_details_required) == (
        False, True, True, True, True)


def test_server_events_are_the_served_events() -> None:
    assert Policy.build(ME, LOCAL, ()).served_events == {"ev1", "ev2"}


def test_gate_events_override_the_server_events() -> None:
    assert Policy.build(ME, LOCAL, ("ev9",)).served_events == {"ev9"}


def test_no_events_anywhere_serves_any_event() -> None:
    assert Policy.build(scan_config("events", []), LOCAL, ()).served_events is None


def test_server_ticket_types_are_per_event() -> None:
    policy = Policy.build(ME, LOCAL, ())
    assert (policy.allowed_types("ev1"), policy.allowed_types("ev2"),
            policy.allowed_types("ev3")) == (frozenset({"tt-ga", "tt-vip"}), None, None)


def test_empty_allowed_list_admits_every_ticket_type() -> None:
    policy = Policy.build(scan_config("events.0.allowedTicketTypeIds", []), LOCAL, ())
    assert policy.allowed_types("ev1") is None


def test_local_ticket_types_replace_the_server_lists_for_every_event() -> None:
    policy = Policy.build(ME, PolicyConfig(allowed_ticket_types=("tt-staff",)), ())
    assert {policy.allowed_types(e) for e in ("ev1", "ev2", "ev3")} == {frozenset({"tt-staff"})}


def test_server_timeslot_minutes_are_per_event() -> None:
    policy = Policy.build(ME, LOCAL, ())
    assert (policy.window("ev1"), policy.window("ev2")) == (
        (timedelta(minutes=15), timedelta(minutes=45)), (timedelta(0), timedelta(0)))


@pytest.mark.parametrize("flag", ["allow_checkin", "allow_checkout", "multi_checkin",
                                  "check_timeslots", "include_details_required"])
@pytest.mark.parametrize("value", [True, False])
def test_local_flag_overrides_the_server(flag: str, value: bool) -> None:
    """Both ways: a local False beats a server True and a local True beats a server False."""
    server = {"allow_checkin": False, "allow_checkout": True, "multi_checkin": True,
              "check_timeslots": True, "include_details_required": True}
    policy = Policy.build(ME, PolicyConfig(**{flag: value}), ())
    assert getattr(policy, flag) is value
    assert {k: getattr(policy, k) for k in server if k != flag} == {
        k: v for k, v in server.items() if k != flag}


def test_entries_and_checkout_without_checkin_come_from_local_config() -> None:
    policy = Policy.build(ME, PolicyConfig(entries=("north", "vip"),
                                           checkout_without_checkin="allow"), ())
    assert (policy.entries, policy.checkout_without_checkin) == (
        frozenset({"north", "vip"}), "allow")


def test_bad_checkout_without_checkin_raises_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^policy\.checkout_without_checkin: .*'alow'"):
        Policy.build(ME, PolicyConfig(checkout_without_checkin="alow"), ())


def test_repeated_colour_comes_from_color_settings() -> None:
    assert Policy.build(ME, LOCAL, ()).repeated_feedback is Feedback.RED


def test_repeated_colour_the_kiosk_cannot_show_falls_back_to_orange() -> None:
    policy = Policy.build(me_with("deviceSettings.colorSettings.repeated", "purple"), LOCAL, ())
    assert policy.repeated_feedback is Feedback.ORANGE


def test_action_required_colour_is_the_held_colour_and_holding_is_local() -> None:
    """colorSettings.actionRequired colours held tickets; only [policy] holds any."""
    me = me_with("deviceSettings.colorSettings.actionRequired", "blue")
    policy = Policy.build(me, LOCAL, ())
    assert (policy.action_feedback, policy.confirm_discounted) == (Feedback.BLUE, False)
    held = Policy.build(ME, replace(LOCAL, confirm_discounted=True,
                                    confirm_ticket_types=("tt-kid",)), ())
    assert (held.action_feedback, held.confirm_discounted, held.confirm_ticket_types) == \
        (Feedback.PINK, True, frozenset({"tt-kid"}))


def test_read_length_and_display_zone_are_passed_through() -> None:
    zone = timezone(timedelta(hours=2))
    policy = Policy.build(None, LOCAL, (), max_read_length=64, display_tz=zone)
    assert (policy.max_read_length, policy.display_tz) == (64, zone)


def test_first_entry_of_a_duplicated_event_wins() -> None:
    doc = scan_config("events", [{"eventId": "ev1", "allowedTicketTypeIds": ["a"]},
                                 {"eventId": "ev1", "allowedTicketTypeIds": ["b"]}])
    assert Policy.build(doc, LOCAL, ()).allowed_types("ev1") == {"a"}


# Each row: a malformed value, and what the key falls back to.
MALFORMED: list[tuple[dict[str, Any] | Any, str, Any]] = [
    ("not an object", "allow_checkin", True),
    (me_with("deviceSettings", ["x"]), "multi_checkin", False),
    (me_with("deviceSettings.scanConfig", None), "check_timeslots", False),
    (scan_config("scanTypes", "both"), "allow_checkin", True),
    (scan_config("scanTypes.checkin", "false"), "allow_checkin", True),
    (scan_config("scanTypes.checkout", 0), "allow_checkout", True),
    (scan_config("enableMultiCheckin", 1), "multi_checkin", False),
    (scan_config("checkTimeslots", "yes"), "check_timeslots", False),
    (me_with("accessControlSettings", True), "include_details_required", False),
    (me_with("accessControlSettings.includeDetailsRequiredTickets", "true"),
     "include_details_required", False),
    (scan_config("events", {"eventId": "ev1"}), "served_events", None),
    (scan_config("events", [None, 7, {"eventId": 5}, {"name": "x"}]), "served_events", None),
    (scan_config("events.0.allowedTicketTypeIds", "tt-ga"), "ticket_types", {}),
    (me_with("deviceSettings.colorSettings", "orange"), "repeated_feedback", Feedback.ORANGE),
]


@pytest.mark.parametrize(("me", "attr", "fallback"), MALFORMED,
                         ids=[f"{i}-{row[1]}" for i, row in enumerate(MALFORMED)])
def test_malformed_me_falls_back_to_the_default_for_that_key(me: Any, attr: str,
                                                             fallback: Any) -> None:
    assert getattr(Policy.build(me, LOCAL, ()), attr) == fallback


def test_malformed_key_leaves_the_other_keys_alone() -> None:
    policy = Policy.build(scan_config("scanTypes.checkin", "no"), LOCAL, ())
    assert (policy.allow_checkin, policy.multi_checkin, policy.served_events) == (
        True, True, {"ev1", "ev2"})


def test_non_text_ticket_type_ids_are_dropped() -> None:
    policy = Policy.build(scan_config("events.0.allowedTicketTypeIds", ["tt-ga", 3, None]),
                          LOCAL, ())
    assert policy.allowed_types("ev1") == {"tt-ga"}


@pytest.mark.parametrize("minutes", [-5, "30", float("nan"), float("inf"), 1e30, True, None],
                         ids=["negative", "text", "nan", "inf", "huge", "bool", "null"])
def test_unusable_timeslot_minutes_count_as_zero(minutes: Any) -> None:
    policy = Policy.build(scan_config("events.0.timeslotSettings.beforeMinutes", minutes),
                          LOCAL, ())
    assert policy.window("ev1") == (timedelta(0), timedelta(minutes=45))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
KEYS = st.sampled_from(["eventId", "allowAllTicketTypes", "allowedTicketTypeIds",
                        "timeslotSettings", "beforeMinutes", "afterMinutes"])


@given(st.fixed_dictionaries({}, optional={
    "deviceSettings": st.fixed_dictionaries({}, optional={
        "scanConfig": st.fixed_dictionaries({}, optional={
            "events": st.lists(st.dictionaries(KEYS, JSON) | JSON, max_size=4) | JSON,
            "scanTypes": st.dictionaries(st.sampled_from(["checkin", "checkout"]), JSON) | JSON,
            "enableMultiCheckin": JSON,
            "checkTimeslots": JSON,
        }) | JSON,
        "colorSettings": st.dictionaries(st.just("repeated"), JSON) | JSON,
    }) | JSON,
    "accessControlSettings": st.dictionaries(st.just("includeDetailsRequiredTickets"), JSON)
    | JSON,
}) | JSON)
def test_build_never_raises_on_any_me(me: Any) -> None:
    policy = Policy.build(me, LOCAL, ())
    assert all(isinstance(getattr(policy, flag), bool) for flag in (
        "allow_checkin", "allow_checkout", "multi_checkin", "check_timeslots",
        "include_details_required"))
    assert all(before >= timedelta(0) and after >= timedelta(0)
               for before, after in policy.timeslot_windows.values())
