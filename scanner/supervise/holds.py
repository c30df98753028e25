"""Held tickets waiting for the steward: the lane that holds one waits here for the answer.

A turnstile lane serves one person at a time, so the lane holding a ticket decides nothing
else until the steward answers (kiosk or wired button) or ``timeout`` passes; reads behind
it wait in the lane's queue. The wired button answers the oldest held ticket: a steward
presses it for the person in front of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from scanner.journal.supervision import Who

DEFAULT_CONFIRM_TIMEOUT = 20.0
# A waiting lane still beats this often: a held ticket is not a hung lane.
BEAT_EVERY = 1.0
TIMED_OUT = Who("gate", why="TIMEOUT")
STOPPING = Who("gate", why="STOPPING")


class Answer(StrEnum):
    CONFIRM = "confirm"
    REFUSE = "refuse"
    TIMEOUT = "timeout"


@dataclass(slots=True)
class _Held:
    scan_id: str
    answer: tuple[Answer, Who] | None = None


class Holds:
    """Thread-safe; ``wait`` blocks the holding thread, ``answer`` comes from any other."""

    def __init__(self, timeout: float = DEFAULT_CONFIRM_TIMEOUT, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if timeout <= 0:
            raise ValueError(f"confirm_timeout: must be positive, not {timeout}")
        self.timeout = timeout
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._held: dict[str, _Held] = {}   # insertion order: oldest first
        self._closed = False

    def hold(self, scan_id: str) -> None:
        """Register a held ticket before anyone is shown it, so no answer can come first."""
        with self._cond:
            self._held[scan_id] = _Held(scan_id, (Answer.REFUSE, STOPPING)
                                        if self._closed else None)

    def forget(self, scan_id: str) -> None:
        """``scan_id`` is no longer held, answered or not (its holder gave up: the act stage
        refused it): a later answer, the button's included, goes to a ticket really held."""
        with self._cond:
            self._held.pop(scan_id, None)

    def close(self) -> None:
        """The gate is stopping: every held ticket, and any held from now on, is refused
        at once (the gate stays shut; nobody waits for an answer that cannot come)."""
        with self._cond:
            self._closed = True
            for held in self._held.values():
                if held.answer is None:
                    held.answer = (Answer.REFUSE, STOPPING)
            self._cond.notify_all()

    def pending(self) -> list[str]:
        """The held tickets waiting for an answer."""
        with self._cond:
            return [h.scan_id for h in self._held.values() if h.answer is None]

    def unsettled(self) -> list[str]:
        """The held tickets whose lane is not done with them: waiting, or answered and
        still being journaled, counted and acted on."""
        with self._cond:
            return list(self._held)

    def answer(self, scan_id: str | None, answer: Answer, who: Who) -> bool:
        """Answer the held ticket ``scan_id`` (None: the oldest one); False when there is
        no such ticket waiting (answered already, timed out, or never held)."""
        with self._cond:
            waiting = [h for h in self._held.values() if h.answer is None
                       and (scan_id is None or h.scan_id == scan_id)]
            if not waiting:
                return False
            waiting[0].answer = (answer, who)
            self._cond.notify_all()
            return True

    def wait(self, scan_id: str, beat: Callable[[], None] = lambda: None,
             ) -> tuple[Answer, Who]:
        """The answer to ``scan_id`` (registered with ``hold``), or TIMEOUT after
        ``timeout`` seconds; the ticket can no longer be answered afterwards, and stays
        among the ``unsettled`` until its lane ``forget``s it. ``beat`` is called every
        BEAT_EVERY seconds meanwhile."""
        deadline = self._monotonic() + self.timeout
        with self._cond:
            held = self._held.get(scan_id)
            try:
                while held is not None and held.answer is None:
                    left = deadline - self._monotonic()
                    if left <= 0:
                        return Answer.TIMEOUT, TIMED_OUT
                    self._cond.wait(min(left, BEAT_EVERY))
                    beat()
                return held.answer if held is not None and held.answer is not None \
                    else (Answer.TIMEOUT, TIMED_OUT)
            finally:
                if held is not None and held.answer is None:  # too late for an answer now
                    held.answer = (Answer.TIMEOUT, TIMED_OUT)
