"""Keyboard-wedge scanners: key events to text, from recorded events and (if present) uinput."""

from __future__ import annotations

import os
import time

import pytest
from evdev import ecodes
from kits.waiting import Collect, wait_for

from hardware import keymaps
from hardware.hid_reader import UNMAPPED, HidReader, KeyDecoder

# A wedge scanner typing "Ab1" then Enter, in the (type, code, value) form evtest records:
# each key as EV_MSC (HID usage), EV_KEY and EV_SYN, Shift pressed around the capital.
# Written in that recorded shape by hand; no scanner was attached to this machine.
RECORDED_AB1 = [
    (4, 4, 458977), (1, 42, 1), (0, 0, 0), (4, 4, 458756), (1, 30, 1), (0, 0, 0),
    (4, 4, 458756), (1, 30, 0), (0, 0, 0), (4, 4, 458977), (1, 42, 0), (0, 0, 0),
    (4, 4, 458757), (1, 48, 1), (0, 0, 0), (4, 4, 458757), (1, 48, 0), (0, 0, 0),
    (4, 4, 458782), (1, 2, 1), (0, 0, 0), (4, 4, 458782), (1, 2, 0), (0, 0, 0),
    (4, 4, 458792), (1, 28, 1), (0, 0, 0), (4, 4, 458792), (1, 28, 0), (0, 0, 0),
]


def tap(code: int, shift: bool = False, altgr: bool = False) -> list[tuple[int, int, int]]:
    mod = ecodes.KEY_LEFTSHIFT if shift else ecodes.KEY_RIGHTALT if altgr else None
    keys = [(1, code, 1), (0, 0, 0), (1, code, 0), (0, 0, 0)]
    return [(1, mod, 1), *keys, (1, mod, 0)] if mod is not None else keys


def play(decoder: KeyDecoder, events: list[tuple[int, int, int]]) -> list[tuple[str, bool]]:
    return [line for e in events if (line := decoder.feed(*e)) is not None]


ENTER = tap(ecodes.KEY_ENTER)


def test_recorded_events_give_the_typed_code() -> None:
    assert play(KeyDecoder("us"), RECORDED_AB1) == [("Ab1", False)]


def test_us_shifted_symbols() -> None:
    events = tap(ecodes.KEY_2, shift=True) + tap(ecodes.KEY_MINUS, shift=True) + \
        tap(ecodes.KEY_SLASH) + tap(ecodes.KEY_SEMICOLON, shift=True) + ENTER
    assert play(KeyDecoder("us"), events) == [("@_/:", False)]


def test_de_layout_swaps_y_and_z_and_shifts_digits() -> None:
    events = tap(ecodes.KEY_Y) + tap(ecodes.KEY_Z, shift=True) + tap(ecodes.KEY_7, shift=True) \
        + tap(ecodes.KEY_SLASH) + tap(ecodes.KEY_Q, altgr=True) + ENTER
    assert play(KeyDecoder("de"), events) == [("zY/-@", False)]


def test_keypad_enter_ends_a_read_too() -> None:
    events = tap(ecodes.KEY_KP1) + tap(ecodes.KEY_KP2) + tap(ecodes.KEY_KPENTER)
    assert play(KeyDecoder("us"), events) == [("12", False)]


def test_two_codes_are_two_reads() -> None:
    events = tap(ecodes.KEY_A) + ENTER + tap(ecodes.KEY_B) + ENTER
    assert play(KeyDecoder("us"), events) == [("a", False), ("b", False)]


def test_caps_lock_inverts_letters_not_digits() -> None:
    events = tap(ecodes.KEY_CAPSLOCK) + tap(ecodes.KEY_A) + tap(ecodes.KEY_A, shift=True) + \
        tap(ecodes.KEY_1) + ENTER
    assert play(KeyDecoder("us"), events) == [("Aa1", False)]


def test_unmapped_key_marks_the_read_instead_of_dropping_a_character() -> None:
    events = tap(ecodes.KEY_A) + tap(ecodes.KEY_F5) + ENTER
    assert play(KeyDecoder("us"), events) == [("a" + UNMAPPED, False)]


def test_overlong_typing_is_cut_and_marked() -> None:
    events = tap(ecodes.KEY_X) * 10 + ENTER
    assert play(KeyDecoder("us", max_length=4), events) == [("xxxx", True)]


def test_keymap_codes_match_the_kernel_abi_in_evdev() -> None:
    assert (keymaps.KEY_LEFTSHIFT, keymaps.KEY_RIGHTSHIFT, keymaps.KEY_RIGHTALT,
            keymaps.KEY_ENTER, keymaps.KEY_KPENTER, keymaps.KEY_CAPSLOCK) == (
        ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT, ecodes.KEY_RIGHTALT,
        ecodes.KEY_ENTER, ecodes.KEY_KPENTER, ecodes.KEY_CAPSLOCK)
    us = keymaps.US
    assert [us.plain[getattr(ecodes, f"KEY_{c.upper()}")] for c in "qazm09"] == list("qazm09")


def test_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="dvorak"):
        KeyDecoder("dvorak")


def test_missing_device_is_retried_until_stopped() -> None:
    status: list[str] = []
    reader = HidReader("/dev/input/does-not-exist", on_status=status.append,
                       backoff_first=0.01, backoff_cap=0.02)
    run = Collect(reader, reader.stop)
    wait_for(lambda: reader.link.failed_opens >= 3, "three open attempts")
    assert run.stop() and run.items == []
    assert len(status) == 1 and "cannot open" in status[0]  # once, not at every retry


@pytest.mark.skipif(not os.access("/dev/uinput", os.W_OK),
                    reason="no writable /dev/uinput on this machine (needs the uinput module)")
def test_uinput_wedge_is_grabbed_and_read() -> None:  # pragma: no cover - needs a kernel
    from evdev import UInput

    keys = [ecodes.KEY_LEFTSHIFT, ecodes.KEY_V, ecodes.KEY_T, ecodes.KEY_MINUS, ecodes.KEY_7,
            ecodes.KEY_ENTER]
    with UInput({ecodes.EV_KEY: keys}, name="gate-test-wedge") as ui:
        time.sleep(0.3)  # udev creates the event node
        reader = HidReader(ui.device.path, layout="us")
        run = Collect(reader, reader.stop)
        time.sleep(0.3)
        for code, value in [(ecodes.KEY_LEFTSHIFT, 1), (ecodes.KEY_V, 1), (ecodes.KEY_V, 0),
                            (ecodes.KEY_T, 1), (ecodes.KEY_T, 0), (ecodes.KEY_LEFTSHIFT, 0),
                            (ecodes.KEY_MINUS, 1), (ecodes.KEY_MINUS, 0), (ecodes.KEY_7, 1),
                            (ecodes.KEY_7, 0), (ecodes.KEY_ENTER, 1), (ecodes.KEY_ENTER, 0)]:
            ui.write(ecodes.EV_KEY, code, value)
            ui.syn()
        wait_for(lambda: run.items, "the typed code")
        run.stop()
    assert [r.data for r in run.items] == ["VT-7"]


class _QuietDevice:
    """An open device nobody types on: a pipe's read end, never written."""

    def __init__(self) -> None:
        self.fd, self._writer = os.pipe()

    def read(self) -> list[object]:
        return []

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._writer)


class _QuietReader(HidReader):
    def _open(self) -> _QuietDevice:
        return _QuietDevice()

    def _close(self, dev: _QuietDevice) -> None:
        dev.close()


def test_an_idle_reader_turns_seldom_and_still_stops_at_once() -> None:
    reader = _QuietReader("/dev/input/quiet", grab=False)
    run = Collect(reader, reader.stop)
    wait_for(lambda: reader.link.connected is True, "the device open")
    turns = []
    until = time.monotonic() + 1.2
    while time.monotonic() < until:
        turns.append(reader.alive_ns)
        time.sleep(0.02)
    # A heartbeat every turn, and at most three turns in 1.2 s with nobody scanning.
    assert 1 <= len(set(turns)) <= 4
    turned = reader.alive_ns
    wait_for(lambda: reader.alive_ns != turned, "a turn")  # the next one is 0.5 s away
    started = time.monotonic()
    assert run.stop() and run.items == []
    assert time.monotonic() - started < 0.4  # woken by stop(), not by the next turn
