"""Mock-pin helpers shared by the GPIO and act-stage tests (no tests here)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hardware.gpio import MIN_PULSE_MS, GpioOutputs, OutputPins, Pattern, Signal

RELAY, GREEN, RED, BUZZER, PASSAGE, FIRE = 17, 27, 22, 23, 24, 25
PULSE = MIN_PULSE_MS / 1000
# Short patterns so a test sees a whole one quickly; the shape is what is under test.
FAST = {
    Signal.GRANTED: Pattern(green=0.05, beeps=1, beep_on=0.01),
    Signal.DENIED: Pattern(red=0.05, beeps=3, beep_on=0.01, beep_off=0.01),
    Signal.ALREADY_INSIDE: Pattern(green=0.05, red=0.05, beeps=2, beep_on=0.01, beep_off=0.01),
    Signal.HELD: Pattern(green=0.05, red=0.05, beeps=1, beep_on=0.02),
}


def rises(pin: Any) -> int:
    """How often a mock pin went high since its states were last cleared."""
    states = [s.state for s in pin.states]
    return sum(1 for a, b in pairwise(states) if b and not a)


def make(**overrides: Any) -> GpioOutputs:
    pins: dict[str, Any] = dict(relay_pin=RELAY, relay_pulse_ms=MIN_PULSE_MS, green_pin=GREEN,
                                red_pin=RED, buzzer_pin=BUZZER)
    pins.update(overrides)
    return GpioOutputs(OutputPins(**pins), "mock", patterns=FAST)
