"""GPIO outputs and contacts of one turnstile, on gpiozero: relay, LEDs, buzzer, passage
contact, fire-alarm loop and the steward's confirm button.

The pin factory is chosen by name (``mock``, ``lgpio``, ``rpigpio``, ``pigpio``,
``native``), never by looking at the board, and passed to every device: the process-wide
``Device.pin_factory`` is never touched. Every pin is optional; a missing one is not wired.

Wiring assumed for the inputs: a contact to ground on a pin with the internal pull-up.
The passage contact (the turnstile's PASS output) closes once per person. The fire-alarm
loop is normally closed; when it opens, or its wire is cut, the relay is held open until
it closes again (fail-safe). ``hold_egress(True)`` holds it open the same way on a
supervisor's order (free egress, an evacuation) until ``hold_egress(False)``; the relay
closes only when neither holds it.

The relay is driven on the caller's thread (the gate opens as soon as ``pulse`` is called)
and released by one timer thread on a monotonic deadline, so ``pulse`` never blocks and a
new grant during a pulse restarts it in full. LEDs and buzzer use gpiozero's background
blink threads.

    GpioError
    ├── UnknownPinFactory (ValueError)   a factory name this module does not know
    └── GpioUnavailable (OSError)        the factory or a pin could not be opened

This package knows nothing of tickets and never imports ``scanner``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)

# name -> (module, class). gpiozero's own entry points use the same names.
PIN_FACTORIES = {
    "mock": ("gpiozero.pins.mock", "MockFactory"),
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
}
DEFAULT_PULSE_MS = 500
# Shorter pulses are missed by common turnstile controllers' input filters.
MIN_PULSE_MS = 100
# Contact bounce of a turnstile's PASS relay; ignored by the mock pins.
PASSAGE_BOUNCE = 0.02

Pin = int | str  # a BCM number or any name gpiozero accepts ("GPIO17", "BOARD11")


class GpioError(Exception):
    """Root of the errors this module raises."""


class UnknownPinFactory(GpioError, ValueError):
    """The factory name is not one of ``PIN_FACTORIES``."""


class GpioUnavailable(GpioError, OSError):
    """The pin factory or a pin could not be opened (library missing, not a Pi, pin busy)."""


@dataclass(frozen=True, slots=True)
class OutputPins:
    """Which pins are wired to what; ``None`` means not wired."""

    relay_pin: Pin | None = None
    relay_pulse_ms: int = DEFAULT_PULSE_MS
    relay_active_high: bool = True
    green_pin: Pin | None = None
    red_pin: Pin | None = None
    buzzer_pin: Pin | None = None
    passage_pin: Pin | None = None
    fire_alarm_pin: Pin | None = None
    confirm_pin: Pin | None = None

    def __post_init__(self) -> None:
        if self.relay_pulse_ms < MIN_PULSE_MS:
            raise ValueError(f"relay_pulse_ms: at least {MIN_PULSE_MS}, "
                             f"not {self.relay_pulse_ms}")
        wired = self.wired
        if len(set(wired)) != len(wired):
            raise ValueError(f"outputs: a pin is used twice in {wired}")

    @property
    def wired(self) -> list[Pin]:
        """The pins something is wired to."""
        return [p for p in (self.relay_pin, self.green_pin, self.red_pin, self.buzzer_pin,
                            self.passage_pin, self.fire_alarm_pin, self.confirm_pin)
                if p is not None]


class Signal(StrEnum):
    """What the lights and buzzer say about one scan."""

    GRANTED = "granted"
    DENIED = "denied"
    ALREADY_INSIDE = "already-inside"
    HELD = "held"               # wait: a steward checks before the gate opens


@dataclass(frozen=True, slots=True)
class Pattern:
    """Seconds each LED stays lit, and the buzzer's beeps."""

    green: float = 0.0
    red: float = 0.0
    beeps: int = 0
    beep_on: float = 0.1
    beep_off: float = 0.1


# Granted: green and one short beep; denied: red and three beeps; already inside: both
# LEDs (orange on a bicolour LED) and two beeps, so a person who cannot see hears which.
PATTERNS = {
    Signal.GRANTED: Pattern(green=1.0, beeps=1, beep_on=0.1),
    Signal.DENIED: Pattern(red=1.5, beeps=3, beep_on=0.1, beep_off=0.1),
    Signal.ALREADY_INSIDE: Pattern(green=1.5, red=1.5, beeps=2, beep_on=0.1, beep_off=0.1),
    # Both LEDs for longer and one long tone: told apart from "already inside" by ear.
    Signal.HELD: Pattern(green=3.0, red=3.0, beeps=1, beep_on=0.8),
}


def pin_factory(name: str) -> Any:
    """A new gpiozero pin factory by its configured name."""
    try:
        module, cls = PIN_FACTORIES[name]
    except KeyError:
        raise UnknownPinFactory(f"pin_factory: {name!r} is not one of "
                                f"{', '.join(PIN_FACTORIES)}") from None
    try:
        return getattr(importlib.import_module(module), cls)()
    except Exception as exc:  # ImportError off a Pi, OSError without /dev/gpiochip*, ...
        raise GpioUnavailable(f"pin factory {name!r} cannot start: {exc}") from exc


class GpioOutputs:
    """The turnstile's pins. Thread-safe; ``close`` is idempotent.

    ``when_passage()`` and ``when_fire_alarm(active)`` are called from gpiozero's
    callback thread (from the caller's thread on mock pins driven by a test).
    """

    def __init__(self, pins: OutputPins, factory: str | Any = "mock", *,
                 patterns: dict[Signal, Pattern] | None = None) -> None:
        self.pins = pins
        # Nothing wired (a gate not set up yet): no pin factory is needed, so a board
        # without its GPIO library still runs the readers, the kiosk page and the sync.
        if isinstance(factory, str) and pins.wired:
            factory = pin_factory(factory)
        self.factory: Any = factory  # None when nothing is wired
        # Given patterns replace the defaults signal by signal: one not given keeps its own.
        self.patterns = {**PATTERNS, **(patterns or {})}
        self.when_passage: Callable[[], None] | None = None
        self.when_fire_alarm: Callable[[bool], None] | None = None
        self.when_confirm: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._deadline: float | None = None  # monotonic end of the running pulse
        self._closed = False
        self._fire_alarm = False
        self._egress = False
        self._timer: threading.Thread | None = None
        self._devices: list[Any] = []
        try:
            self._open()
        except Exception:
            self._close_devices(self._devices)
            raise

    def _open(self) -> None:
        from gpiozero import (
            LED,
            Buzzer,
            DigitalInputDevice,
            DigitalOutputDevice,
        )

        p = self.pins
        self.relay = self._device(DigitalOutputDevice, p.relay_pin, "relay_pin",
                                  active_high=p.relay_active_high, initial_value=False)
        self.green = self._device(LED, p.green_pin, "green_pin")
        self.red = self._device(LED, p.red_pin, "red_pin")
        self.buzzer = self._device(Buzzer, p.buzzer_pin, "buzzer_pin")
        self.passage = self._device(DigitalInputDevice, p.passage_pin, "passage_pin",
                                    pull_up=True, bounce_time=PASSAGE_BOUNCE)
        self.fire_loop = self._device(DigitalInputDevice, p.fire_alarm_pin, "fire_alarm_pin",
                                      pull_up=True)
        self.confirm = self._device(DigitalInputDevice, p.confirm_pin, "confirm_pin",
                                    pull_up=True, bounce_time=PASSAGE_BOUNCE)
        if self.confirm is not None:
            self.confirm.when_activated = self._confirmed
        if self.passage is not None:
            self.passage.when_activated = self._passed
        if self.fire_loop is not None:
            # The loop pulls the pin low while closed: inactive means open, i.e. alarm.
            self.fire_loop.when_deactivated = lambda: self._set_fire_alarm(True)
            self.fire_loop.when_activated = lambda: self._set_fire_alarm(False)
            if not self.fire_loop.is_active:
                self._set_fire_alarm(True)

    def _device(self, cls: Any, pin: Pin | None, key: str, **kwargs: Any) -> Any:
        if pin is None:
            return None
        from gpiozero import GPIOZeroError

        try:
            device = cls(pin, pin_factory=self.factory, **kwargs)
        except (GPIOZeroError, OSError, ValueError) as exc:
            raise GpioUnavailable(f"{key}: cannot open pin {pin!r}: {exc}") from exc
        self._devices.append(device)
        return device

    # -- state ---------------------------------------------------------------------------

    @property
    def has_relay(self) -> bool:
        return self.relay is not None

    @property
    def has_passage_contact(self) -> bool:
        return self.passage is not None

    def passage_closed_for(self) -> float | None:
        """Seconds the passage contact has been closed (a person in the turnstile, or the
        turnstile held or blocked), None while it is open or not wired."""
        if self.passage is None:
            return None
        active: float | None = self.passage.active_time
        return active

    @property
    def fire_alarm(self) -> bool:
        """True while the fire-alarm loop is open and the relay is held."""
        return self._fire_alarm

    @property
    def egress(self) -> bool:
        """True while a free-egress order holds the relay open."""
        return self._egress

    @property
    def _held(self) -> bool:
        return self._fire_alarm or self._egress

    @property
    def relay_open(self) -> bool:
        """True while the relay releases the turnstile (pulse or fire alarm)."""
        return bool(self.relay is not None and self.relay.is_active)

    # -- actions -------------------------------------------------------------------------

    def pulse(self, ms: int | None = None) -> bool:
        """Release the turnstile for ``ms`` (default the configured pulse) from now.

        Returns at once. A pulse already running is restarted with the full length; under
        fire alarm or free egress the relay is already held and nothing changes. False
        without a relay.
        """
        if self.relay is None:
            return False
        length = (self.pins.relay_pulse_ms if ms is None else ms) / 1000
        with self._lock:
            if self._closed:
                return False
            if not self._held:
                self.relay.on()
                self._deadline = time.monotonic() + length
                self._ensure_timer()
                self._wake.notify()
            return True

    def signal(self, signal: Signal) -> None:
        """Show ``signal`` on the LEDs and buzzer, replacing whatever they showed."""
        pattern = self.patterns[signal]
        with self._lock:
            if self._closed:
                return
            for led, seconds in ((self.green, pattern.green), (self.red, pattern.red)):
                if led is None:
                    continue
                if seconds > 0:
                    led.on()  # lit when this returns, not when the blink thread gets to it
                    led.blink(on_time=seconds, off_time=0, n=1, background=True)
                else:
                    led.off()
            if self.buzzer is not None:
                if pattern.beeps:
                    self.buzzer.on()
                    self.buzzer.beep(on_time=pattern.beep_on, off_time=pattern.beep_off,
                                     n=pattern.beeps, background=True)
                else:
                    self.buzzer.off()

    def outputs(self) -> dict[str, Any]:
        """The wired outputs by name (relay, green, red, buzzer), for a wiring test."""
        return {name: device for name, device in (
            ("relay", self.relay), ("green", self.green), ("red", self.red),
            ("buzzer", self.buzzer)) if device is not None}

    def hold(self, name: str, seconds: float) -> None:
        """Switch one output on for ``seconds`` and off again, blocking (a wiring test, not
        a scan: the relay goes through ``pulse`` so a fire alarm still holds it)."""
        if name == "relay":
            self.pulse(max(MIN_PULSE_MS, round(seconds * 1000)))
            time.sleep(seconds)
            return
        device = self.outputs()[name]
        with self._lock:
            if self._closed:
                return
            device.on()
        time.sleep(seconds)
        with self._lock:
            if not self._closed:
                device.off()

    def close(self) -> None:
        """Stop everything; the relay is left closed, or open under fire alarm or free
        egress."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._deadline = None
            self._wake.notify()
            timer = self._timer
            keep = []
            if self.relay is not None:
                if self._held:
                    # Released, the pin would float: keep driving it until the process ends.
                    log.warning("closing under %s: the relay stays open",
                                "fire alarm" if self._fire_alarm else "free egress")
                    self.relay.on()
                    keep.append(self.relay)
                else:
                    self.relay.off()
            devices = [d for d in self._devices if d not in keep]
        if timer is not None:
            timer.join()
        self._close_devices(devices)

    def __enter__(self) -> GpioOutputs:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- inside --------------------------------------------------------------------------

    @staticmethod
    def _close_devices(devices: list[Any]) -> None:
        for device in devices:
            try:
                device.close()
            except Exception as exc:  # one stuck pin must not keep the others open
                log.warning("closing %r failed: %s", device, exc)

    def _ensure_timer(self) -> None:
        if self._timer is None:
            self._timer = threading.Thread(target=self._release_loop, name="relay-timer",
                                           daemon=True)
            self._timer.start()

    def _release_loop(self) -> None:
        with self._lock:
            while not self._closed:
                if self._deadline is None:
                    self._wake.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                self._deadline = None
                if not self._held and self.relay is not None:
                    self.relay.off()

    def hold_egress(self, active: bool) -> None:
        """Hold the relay open (free egress) or let it close again; what the fire-alarm loop
        holds stays held."""
        with self._lock:
            if self._closed or active == self._egress:
                return
            self._egress = active
            if self.relay is not None:
                if active:
                    self.relay.on()
                    self._deadline = None
                elif not self._fire_alarm:
                    self.relay.off()
        if active:
            log.error("FREE EGRESS: a supervisor's order holds the gate open")
        else:
            log.warning("free egress ended: the gate is back to normal")

    def _passed(self) -> None:
        callback = self.when_passage
        if callback is not None:
            callback()

    def _confirmed(self) -> None:
        callback = self.when_confirm
        if callback is not None:
            callback()

    def _set_fire_alarm(self, active: bool) -> None:
        with self._lock:
            if self._closed or active == self._fire_alarm:
                return
            self._fire_alarm = active
            if self.relay is not None:
                if active:
                    self.relay.on()
                    self._deadline = None
                elif not self._egress:
                    self.relay.off()
        if active:
            log.error("FIRE ALARM: the loop opened; the gate is held open")
        else:
            log.warning("fire alarm cleared: the loop closed; the gate is back to normal")
        callback = self.when_fire_alarm
        if callback is not None:
            callback(active)
