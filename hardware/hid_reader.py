"""Keyboard-wedge (USB HID) scanners through python-evdev.

The device is grabbed exclusively so the codes it types do not also land in a console or
a kiosk browser. ``KeyDecoder`` turns key events into lines and is pure: tests feed it
recorded events. Point ``device`` at /dev/input/by-id/...-event-kbd so a re-plugged
scanner is found again under the same name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Iterator
from typing import Any

from hardware.keymaps import ENTERS, KEY_CAPSLOCK, KEY_RIGHTALT, SHIFTS, Keymap, keymap
from hardware.reads import DEFAULT_MAX_LENGTH, RawRead, StatusFn, ignore_status, now_ns
from hardware.reconnect import BACKOFF_CAP, BACKOFF_FIRST, DeviceSource, Reconnect

log = logging.getLogger(__name__)

EV_KEY = 1
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2
# Stands in for a key the layout cannot map, so the read is rejected rather than silently
# shortened into a different (possibly valid) barcode.
UNMAPPED = "\ufffd"
# Modifiers a scanner may press that change no character here (Ctrl, left Alt, Meta).
_IGNORED = frozenset({29, 97, 56, 125, 126})
# The loop's turn with nobody scanning (its heartbeat, well inside any watchdog's): key
# events wake it at once and stop() writes to a wake pipe, so this costs neither latency
# nor a slow stop; each turn is a wake-up, paid by every gate all day.
POLL_SECONDS = 0.5


class KeyDecoder:
    """Key events in, one ``(text, truncated)`` per Enter out."""

    def __init__(self, layout: Keymap | str = "us",
                 max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.keymap = keymap(layout) if isinstance(layout, str) else layout
        self.max_length = max_length
        self._chars: list[str] = []
        self._truncated = False
        self._shifts: set[int] = set()
        self._altgr = False
        self._capslock = False

    def feed(self, type_: int, code: int, value: int) -> tuple[str, bool] | None:
        if type_ != EV_KEY:
            return None  # EV_SYN and EV_MSC (scan codes) accompany every key
        if code in SHIFTS:
            (self._shifts.add if value else self._shifts.discard)(code)
            return None
        if code == KEY_RIGHTALT:
            self._altgr = value != KEY_UP
            return None
        if value == KEY_UP or code in _IGNORED:
            return None
        if code == KEY_CAPSLOCK:
            self._capslock = not self._capslock
            return None
        if code in ENTERS:
            line = ("".join(self._chars), self._truncated)
            self._chars.clear()
            self._truncated = False
            return line
        self._append(self._char(code))
        return None

    def _char(self, code: int) -> str:
        shift = bool(self._shifts)
        plain = self.keymap.char(code, shift=False)
        if self._capslock and plain is not None and plain.isalpha():
            shift = not shift
        char = self.keymap.char(code, shift=shift, altgr=self._altgr)
        return UNMAPPED if char is None else char

    def _append(self, char: str) -> None:
        if len(self._chars) < self.max_length:
            self._chars.append(char)
        else:
            self._truncated = True


class HidReader(DeviceSource):
    """Yields one ``RawRead`` per Enter from a grabbed evdev device; reopens when unplugged."""

    def __init__(self, device: str, *, layout: str = "us",
                 max_length: int = DEFAULT_MAX_LENGTH, name: str | None = None,
                 grab: bool = True, on_status: StatusFn = ignore_status,
                 backoff_first: float = BACKOFF_FIRST, backoff_cap: float = BACKOFF_CAP) -> None:
        if not device:
            raise ValueError("hid source needs a device path (/dev/input/by-id/...)")
        self.device = device
        self.layout = keymap(layout)  # fail at construction on an unknown layout
        self.max_length = max_length
        self.name = name or f"hid:{device}"
        self.grab = grab
        self.link = Reconnect(self.name, on_status, backoff_first, backoff_cap, log)
        self._wake: int | None = None  # the write end of the open session's wake pipe
        self._wake_lock = threading.Lock()  # no write to it once closed (its number reused)


    def __iter__(self) -> Iterator[RawRead]:
        # A fresh decoder per connection: a half-typed code and a held Shift from a device
        # that left must not leak into the next read.
        return self.link.sessions(
            self._open, lambda dev: self._lines(dev, KeyDecoder(self.layout, self.max_length)),
            self._close)

    def stop(self) -> None:
        super().stop()
        with self._wake_lock:
            if self._wake is not None:
                with contextlib.suppress(BlockingIOError):  # full: a wake is pending
                    os.write(self._wake, b"\0")

    def probe(self) -> None:
        """Open (and grab) the device once and release it, as a reader would at start."""
        self._close(self._open())

    def _open(self) -> Any:
        import evdev

        dev = evdev.InputDevice(self.device)
        if self.grab:
            try:
                dev.grab()
            except OSError:
                dev.close()  # another process holds it; retry later rather than share
                raise
        return dev

    def _lines(self, dev: Any, decoder: KeyDecoder) -> Iterator[RawRead]:
        wake, writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with self._wake_lock:
            self._wake = writer
        try:
            while not self.link.stopped.is_set():
                ready, _, _ = select.select([dev.fd, wake], [], [], POLL_SECONDS)
                self.link.alive()
                if dev.fd not in ready:
                    continue
                for event in dev.read():
                    line = decoder.feed(event.type, event.code, event.value)
                    if line is not None:
                        yield RawRead(line[0], self.name, now_ns(), truncated=line[1])
        finally:
            with self._wake_lock:
                self._wake = None
                os.close(writer)
            os.close(wake)

    def _close(self, dev: Any) -> None:
        try:
            if self.grab:
                dev.ungrab()
        except OSError:
            pass  # the device is gone; nothing left to release
        dev.close()
