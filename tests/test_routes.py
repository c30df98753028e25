"""Wrong-gate routing: ``[[routes]]`` tables, the WRONG_GATE rule and what the kiosk says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanner.act import Acted, signal_for
from scanner.config import load_config
from scanner.decide import Direction, Policy, Reason, ScanHistory, decide
from scanner.decide.policy import Route
from scanner.decide.rules import USE_GATE
from scanner.errors import ConfigError
from scanner.kiosk.present import decision_event
from scanner.tickets import Ticket

NOW = datetime(2030, 1, 23, 19, 30, tzinfo=UTC)
SEATED = Ticket(id="t1", barcode="SEAT0001AB", event_id="ev1", status="VALID",
                ticket_type_id="tt-seat", ticket_name="Tribune", seller_id="s1",
                created_at="2030-01-01T00:00:00.000Z", updated_at="2030-01-01T00:00:00.000Z",
                area="Block C", row="4", seat="12", entry=("east",))
ROUTES = (Route(("C",), areas=frozenset({"Block C"})),
          Route(("V1", "V2"), ticket_types=frozenset({"tt-vip"})))


def at(gate: str, ticket: Ticket = SEATED, direction: Direction = Direction.IN) -> object:
    return decide(ticket, ScanHistory(), Policy(gate_id=gate, routes=ROUTES), direction, NOW,
                  barcode=ticket.barcode)


def test_a_seated_ticket_at_the_wrong_entrance_is_told_which_gate() -> None:
    d = at("A")
    assert (d.granted, d.reason, d.message) == (False, Reason.WRONG_GATE,
                                                "Wrong gate: use gate C")
    assert d.extra == {USE_GATE: "C"}


def test_the_ticket_at_its_own_gate_is_admitted() -> None:
    assert at("C").reason is Reason.GRANTED


def test_a_route_with_two_gates_names_both() -> None:
    vip = SEATED._replace(area=None, ticket_type_id="tt-vip")
    assert at("A", vip).message == "Wrong gate: use gate V1 or V2"
    assert at("V2", vip).granted


def test_a_ticket_no_route_names_uses_any_gate() -> None:
    assert at("A", SEATED._replace(area="Standing")).granted


def test_leaving_is_never_routed() -> None:
    history = ScanHistory()
    d = decide(SEATED, history, Policy(gate_id="A", routes=ROUTES, allow_checkout=True,
                                       checkout_without_checkin="allow"),
               Direction.OUT, NOW, barcode=SEATED.barcode)
    assert d.reason is Reason.CHECKED_OUT


def test_the_kiosk_is_given_the_gate_to_use() -> None:
    d = at("A")
    event = decision_event(Acted("s1", d, signal_for(d), False, None, False), gate_id="A")
    assert (event["reason"], event["use_gate"]) == ("WRONG_GATE", "C")


def test_routes_tables_load_from_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text('[[routes]]\ngates = ["C"]\nareas = ["Block C"]\n\n'
                    '[[routes]]\ngates = ["V1"]\nticket_types = ["tt-vip"]\n', encoding="utf-8")
    routes = load_config(path, env={}).routes
    assert [(r.gates, r.areas, r.ticket_types) for r in routes] == [
        (("C",), ("Block C",), ()), (("V1",), (), ("tt-vip",))]


@pytest.mark.parametrize(("table", "key"), [('areas = ["Block C"]\n', "routes[0].gates"),
                                            ('gates = ["C"]\n', "routes[0].areas")])
def test_a_route_without_gates_or_tickets_is_named(tmp_path: Path, table: str,
                                                   key: str) -> None:
    path = tmp_path / "gate.toml"
    path.write_text("[[routes]]\n" + table, encoding="utf-8")
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(path, env={})


# -- held tickets, decided by the same pure rules ---------------------------------------------

def test_a_reduced_price_ticket_is_held_with_what_to_check() -> None:
    student = SEATED._replace(discount="Student", discount_id="dsc-1")
    policy = Policy(confirm_discounted=True)
    d = decide(student, ScanHistory(), policy, Direction.IN, NOW, barcode=student.barcode)
    assert (d.granted, d.reason, d.message) == (
        False, Reason.ACTION_REQUIRED, "Check before entry: reduced price (Student)")
    assert decide(SEATED, ScanHistory(), policy, Direction.IN, NOW,
                  barcode=SEATED.barcode).reason is Reason.GRANTED


def test_a_ticket_type_to_confirm_is_held_only_once_every_rule_passed() -> None:
    policy = Policy(confirm_ticket_types=frozenset({"tt-seat"}), gate_id="A", routes=ROUTES)
    assert decide(SEATED, ScanHistory(), policy, Direction.IN, NOW,
                  barcode=SEATED.barcode).reason is Reason.WRONG_GATE
    at_c = Policy(confirm_ticket_types=frozenset({"tt-seat"}), gate_id="C", routes=ROUTES)
    assert decide(SEATED, ScanHistory(), at_c, Direction.IN, NOW,
                  barcode=SEATED.barcode).reason is Reason.ACTION_REQUIRED
