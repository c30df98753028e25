"""``gate test outputs`` on gpiozero's MockFactory: each output switched on in turn, named
first, and the passage and fire inputs shown as they change."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from kits.gate import write_toml
from kits.gpio import BUZZER, FIRE, GREEN, PASSAGE, RED, RELAY, make

from scanner.cli.outputs_cmd import exercise, watch

REPO = Path(__file__).resolve().parent.parent


def first_rise(pin: object) -> float:
    return next(s.timestamp for s in pin.states if s.state)  # type: ignore[attr-defined]


def test_each_output_is_named_then_switched_on_and_off_in_turn() -> None:
    pins = make()
    said: list[str] = []
    waits: list[str] = []
    try:
        done = exercise(pins, said.append, lambda: waits.append(said[-1]), pulse_s=0.1,
                        on_s=0.05)
        mock = {n: pins.factory.pin(p) for n, p in
                [("relay", RELAY), ("green", GREEN), ("red", RED), ("buzzer", BUZZER)]}
        rises = [first_rise(mock[name]) for name in done]
        states = {name: [s.state for s in pin.states] for name, pin in mock.items()}
    finally:
        pins.close()
    assert done == ["relay", "green", "red", "buzzer"]
    assert said == [f"relay (pin {RELAY}): on for 0.1 s", f"green (pin {GREEN}): on for 0.05 s",
                    f"red (pin {RED}): on for 0.05 s", f"buzzer (pin {BUZZER}): on for 0.05 s"]
    assert rises == sorted(rises)  # one by one, in the order named
    assert all(s == [False, True, False] for s in states.values()), states
    assert waits == said[:3]  # a pause after each but the last


def test_inputs_are_shown_live_until_stopped() -> None:
    pins = make(passage_pin=PASSAGE, fire_alarm_pin=FIRE)
    fire = pins.factory.pin(FIRE)
    fire.drive_low()  # the loop closed: no alarm
    said: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(pins, said.append, stop))
    try:
        watcher.start()
        while not any("watching the inputs" in line for line in said):
            stop.wait(0.01)
        pins.factory.pin(PASSAGE).drive_low()  # a person pushes through
        fire.drive_high()  # the loop opens
        fire.drive_low()
        stop.set()
        watcher.join(5)
        relay_opened = any(s.state for s in pins.factory.pin(RELAY).states)
    finally:
        pins.close()
    assert said == [f"passage contact (pin {PASSAGE}): watching",
                    f"fire-alarm loop (pin {FIRE}): closed (normal)",
                    "watching the inputs; Ctrl-C ends",
                    "passage contact: closed (a person passed)",
                    "fire-alarm loop: OPEN (alarm: relay held open)",
                    "fire-alarm loop: closed (normal)"]
    assert relay_opened  # the alarm held the relay open while it lasted


def test_the_command_pauses_between_outputs_and_ends_after_seconds(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "gate.toml", {"readers": [], "outputs": {
        "pin_factory": "mock", "relay_pin": RELAY, "relay_pulse_ms": 100, "green_pin": GREEN,
        "passage_pin": PASSAGE}})
    done = subprocess.run([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                           "test", "outputs", "--pause", "0", "--seconds", "0.2"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"relay (pin {RELAY}): on for 0.1 s", f"green (pin {GREEN}): on for 1 s",
        f"passage contact (pin {PASSAGE}): watching", "watching the inputs for 0.2 s"]


def test_a_pin_factory_that_cannot_start_is_one_line_exit_2(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "gate.toml",
                        {"outputs": {"pin_factory": "pigpio", "relay_pin": 17}})
    done = subprocess.run([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                           "test", "outputs", "--pause", "0", "--seconds", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("gate: configuration error: outputs: pin factory 'pigpio'")
    assert len(done.stderr.splitlines()) == 1
