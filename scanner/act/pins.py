"""From the configuration's ``[outputs]`` to the pins ``hardware.gpio`` opens.

Typed against the attribute names only, so this module does not depend on how the
configuration object is built.
"""

from __future__ import annotations

from typing import Protocol

from hardware.gpio import GpioOutputs, OutputPins, Pin

DEFAULT_PASSAGE_TIMEOUT = 5.0  # seconds a person has to pass after the relay released


class OutputsSettings(Protocol):
    """The ``[outputs]`` table: the pins and pulse of a turnstile's relay, lights and buzzer."""

    @property
    def pin_factory(self) -> str: ...
    @property
    def relay_pin(self) -> Pin | None: ...
    @property
    def relay_pulse_ms(self) -> int: ...
    @property
    def relay_active_high(self) -> bool: ...
    @property
    def green_pin(self) -> Pin | None: ...
    @property
    def red_pin(self) -> Pin | None: ...
    @property
    def buzzer_pin(self) -> Pin | None: ...
    @property
    def passage_pin(self) -> Pin | None: ...
    @property
    def passage_timeout(self) -> float: ...
    @property
    def fire_alarm_pin(self) -> Pin | None: ...
    @property
    def confirm_pin(self) -> Pin | None: ...


def output_pins(settings: OutputsSettings) -> OutputPins:
    """The wiring ``GpioOutputs`` takes. Raises ValueError naming the key for a bad value."""
    return OutputPins(
        relay_pin=settings.relay_pin,
        relay_pulse_ms=settings.relay_pulse_ms,
        relay_active_high=settings.relay_active_high,
        green_pin=settings.green_pin,
        red_pin=settings.red_pin,
        buzzer_pin=settings.buzzer_pin,
        passage_pin=settings.passage_pin,
        fire_alarm_pin=settings.fire_alarm_pin,
        confirm_pin=settings.confirm_pin,
    )


def open_outputs(settings: OutputsSettings) -> GpioOutputs:
    """The turnstile's pins on the configured pin factory (raises hardware.gpio.GpioError)."""
    return GpioOutputs(output_pins(settings), settings.pin_factory)


def open_outputs_or_fail(settings: OutputsSettings) -> GpioOutputs:
    """``open_outputs`` with what cannot open (no GPIO library, a busy pin) as one
    ConfigError line, exit 2, as ``gate run`` and ``gate config check`` report it."""
    from hardware.gpio import GpioError
    from scanner.errors import ConfigError

    try:
        return open_outputs(settings)
    except (GpioError, ValueError) as exc:
        raise ConfigError(f"outputs: {exc}") from exc
