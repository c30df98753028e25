"""hardware.gpio on gpiozero's MockFactory: relay pulses, fire alarm, lights and buzzer.

Mock pins keep every state change with its time, so tests read what a pin did. Inputs
are contacts to ground with pull-ups: ``drive_low`` closes a contact, ``drive_high`` opens it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kits.gpio import BUZZER, FIRE, GREEN, PASSAGE, PULSE, RED, RELAY, make, rises
from kits.waiting import wait_for

from hardware.gpio import (
    MIN_PULSE_MS,
    GpioOutputs,
    GpioUnavailable,
    OutputPins,
    Signal,
    UnknownPinFactory,
    pin_factory,
)


@pytest.fixture
def gpio() -> Iterator[GpioOutputs]:
    outputs = make()
    yield outputs
    outputs.close()


@pytest.fixture
def alarmed() -> Iterator[GpioOutputs]:
    """Outputs with a fire-alarm loop, closed (normal) at the start of the test."""
    outputs = make(fire_alarm_pin=FIRE)
    outputs.factory.pin(FIRE).drive_low()
    outputs.factory.pin(RELAY).clear_states()
    yield outputs
    outputs.close()


def test_the_pin_factory_is_chosen_by_name() -> None:
    from gpiozero.pins.mock import MockFactory  # type: ignore[import-untyped]

    assert isinstance(pin_factory("mock"), MockFactory)


def test_an_unknown_pin_factory_is_refused_naming_the_choices() -> None:
    with pytest.raises(UnknownPinFactory, match="lgpio") as info:
        pin_factory("raspberry")
    assert isinstance(info.value, ValueError)


def test_a_factory_that_cannot_start_here_is_unavailable() -> None:
    try:
        pin_factory("lgpio")
    except GpioUnavailable as exc:
        assert "lgpio" in str(exc)
    else:
        pytest.skip("lgpio works on this machine (a real Pi)")


def test_a_pulse_below_the_floor_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match="relay_pulse_ms"):
        OutputPins(relay_pin=RELAY, relay_pulse_ms=MIN_PULSE_MS - 1)


def test_a_pin_wired_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        OutputPins(relay_pin=RELAY, green_pin=RELAY)


def test_a_pin_the_board_does_not_have_is_unavailable_naming_the_key() -> None:
    with pytest.raises(GpioUnavailable, match="red_pin"):
        make(red_pin=99)


def test_the_relay_is_closed_at_start(gpio: GpioOutputs) -> None:
    assert gpio.factory.pin(RELAY).state is False and not gpio.relay_open


def test_pulse_opens_the_relay_before_returning(gpio: GpioOutputs) -> None:
    assert gpio.pulse()
    assert gpio.factory.pin(RELAY).state is True


def test_the_pulse_lasts_at_least_its_length_then_closes(gpio: GpioOutputs) -> None:
    pin = gpio.factory.pin(RELAY)
    pin.clear_states()
    gpio.pulse()
    wait_for(lambda: not pin.state, "the pin")
    (_, closed), (_, opened), (held, released) = pin.states
    assert (closed, opened, released) == (False, True, False)
    assert held >= PULSE


def test_an_active_low_relay_pulls_its_pin_low_while_open() -> None:
    outputs = make(relay_active_high=False)
    pin = outputs.factory.pin(RELAY)
    try:
        assert pin.state is True  # closed = high
        outputs.pulse()
        assert pin.state is False
        wait_for(lambda: pin.state is True, "the pin")
    finally:
        outputs.close()
    assert pin.state is True


def test_a_grant_during_a_pulse_restarts_it(gpio: GpioOutputs) -> None:
    pin = gpio.factory.pin(RELAY)
    pin.clear_states()
    gpio.pulse()
    time.sleep(PULSE / 2)
    gpio.pulse()
    wait_for(lambda: not pin.state, "the pin")
    assert rises(pin) == 1
    assert pin.states[-1].timestamp >= PULSE * 1.5


def test_the_fire_alarm_holds_the_relay_open(alarmed: GpioOutputs) -> None:
    alarmed.factory.pin(FIRE).drive_high()
    assert alarmed.fire_alarm and alarmed.relay_open
    alarmed.pulse()  # a grant under alarm must not end the hold when its pulse would
    time.sleep(PULSE * 1.5)
    assert alarmed.factory.pin(RELAY).state is True


def test_the_relay_closes_when_the_alarm_clears(alarmed: GpioOutputs) -> None:
    fire = alarmed.factory.pin(FIRE)
    fire.drive_high()
    fire.drive_low()
    assert not alarmed.fire_alarm
    assert alarmed.factory.pin(RELAY).state is False


def test_a_loop_already_open_at_start_is_an_alarm() -> None:
    outputs = make(fire_alarm_pin=FIRE)  # a mock pin with pull-up reads high: loop open
    try:
        assert outputs.fire_alarm and outputs.relay_open
    finally:
        outputs.close()


def test_fire_alarm_changes_are_reported(alarmed: GpioOutputs) -> None:
    heard: list[bool] = []
    alarmed.when_fire_alarm = heard.append
    fire = alarmed.factory.pin(FIRE)
    fire.drive_high()
    fire.drive_low()
    assert heard == [True, False]


def test_free_egress_holds_the_relay_open_through_pulses(gpio: GpioOutputs) -> None:
    gpio.hold_egress(True)
    assert gpio.egress and gpio.relay_open
    gpio.pulse()  # a scan recorded under egress must not end the hold with its pulse
    time.sleep(PULSE * 1.5)
    assert gpio.factory.pin(RELAY).state is True
    gpio.hold_egress(False)
    assert gpio.factory.pin(RELAY).state is False


def test_the_relay_closes_only_when_neither_egress_nor_the_fire_alarm_holds_it(
        alarmed: GpioOutputs) -> None:
    fire, relay = alarmed.factory.pin(FIRE), alarmed.factory.pin(RELAY)
    alarmed.hold_egress(True)
    fire.drive_high()
    fire.drive_low()  # the alarm clears: egress still holds
    assert relay.state is True
    fire.drive_high()
    alarmed.hold_egress(False)  # egress ends: the alarm still holds
    assert relay.state is True
    fire.drive_low()
    assert relay.state is False


def test_close_under_free_egress_leaves_the_relay_open() -> None:
    outputs = make()
    pin = outputs.factory.pin(RELAY)
    outputs.hold_egress(True)
    outputs.close()
    assert pin.state is True


def test_close_during_a_pulse_leaves_the_relay_closed() -> None:
    outputs = make()
    pin = outputs.factory.pin(RELAY)
    outputs.pulse()
    outputs.close()
    assert pin.state is False


def test_close_under_fire_alarm_leaves_the_relay_open() -> None:
    outputs = make(fire_alarm_pin=FIRE)
    pin = outputs.factory.pin(RELAY)
    assert outputs.fire_alarm
    outputs.close()
    assert pin.state is True and pin.function == "output"


def test_close_twice_is_harmless_and_a_closed_relay_no_longer_pulses() -> None:
    outputs = make()
    outputs.close()
    outputs.close()
    assert outputs.pulse() is False
    assert outputs.factory.pin(RELAY).state is False


def test_without_a_relay_pulse_reports_it_did_not_open() -> None:
    with GpioOutputs(OutputPins(), "mock") as outputs:
        assert outputs.pulse() is False
        outputs.signal(Signal.GRANTED)  # nothing wired: nothing to show, nothing raised
        assert not outputs.has_relay and not outputs.has_passage_contact


def test_granted_lights_green_and_beeps_once(gpio: GpioOutputs) -> None:
    green, red, buzzer = (gpio.factory.pin(p) for p in (GREEN, RED, BUZZER))
    gpio.signal(Signal.GRANTED)
    wait_for(lambda: not green.state and not buzzer.state and len(buzzer.states) > 1, "the pin")
    assert (rises(green), rises(red), rises(buzzer)) == (1, 0, 1)


def test_denied_lights_red_and_beeps_three_times(gpio: GpioOutputs) -> None:
    green, red, buzzer = (gpio.factory.pin(p) for p in (GREEN, RED, BUZZER))
    gpio.signal(Signal.DENIED)
    wait_for(lambda: not red.state and rises(buzzer) == 3 and not buzzer.state, "the pin")
    assert (rises(green), rises(red)) == (0, 1)


def test_already_inside_lights_both_and_beeps_twice(gpio: GpioOutputs) -> None:
    green, red, buzzer = (gpio.factory.pin(p) for p in (GREEN, RED, BUZZER))
    gpio.signal(Signal.ALREADY_INSIDE)
    wait_for(lambda: not red.state and rises(buzzer) == 2 and not buzzer.state, "the pin")
    assert (rises(green), rises(red)) == (1, 1)


def test_lights_do_not_touch_the_relay(gpio: GpioOutputs) -> None:
    gpio.signal(Signal.GRANTED)
    assert gpio.factory.pin(RELAY).state is False


def test_the_passage_contact_reports_each_passage() -> None:
    outputs = make(passage_pin=PASSAGE)
    heard: list[int] = []
    outputs.when_passage = lambda: heard.append(1)
    contact = outputs.factory.pin(PASSAGE)
    try:
        for _ in range(2):
            contact.drive_low()   # the PASS contact closes ...
            contact.drive_high()  # ... and opens again
        assert len(heard) == 2 and outputs.has_passage_contact
    finally:
        outputs.close()
