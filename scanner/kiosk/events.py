"""From the act stage's listener to every page: one worker drains the listener and hands
each message to per-client bounded queues.

A decision goes out the moment it is taken off the listener; the state message (counters,
queue, banners) is rebuilt afterwards, at most every STATE_MIN_INTERVAL, and sent only
when it changed, so a burst of scans costs one status query, not one per scan. A client
whose queue is full is cut off rather than waited for: its EventSource reconnects and gets
the whole state again, which is better than a page that silently missed a decision.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from scanner.act import Acted, FireAlarm, Passage
from scanner.errors import GateError
from scanner.kiosk.parts import KioskParts
from scanner.kiosk.present import to_page

log = logging.getLogger("scanner.kiosk")

CLIENT_QUEUE = 64
# A state rebuild reads the whole status (ticket counts over the store, the journal's
# counters): at most once a second during a burst of scans, so it never crowds the lane.
STATE_MIN_INTERVAL = 1.0
STATE_TICK = 5.0            # and this often while a page listens: online/offline, banners
RECENT_GRANTS = 256         # grants a steward may still annul
RECENT_DECISIONS = 20       # "did my ticket go through a minute ago?": the page's list


# Put in a client's queue when its stream is over, so the stream ends now rather than at
# its next poll; no Server-Sent Event is empty.
END = b""
# Put in the listener's queue by ``stop``: the worker wakes at once instead of waiting out
# its ``get`` timeout (a second per teardown otherwise).
_STOP = object()


def _nobody() -> None:
    return None


class Client:
    """One page's stream; the HTTP side reads ``messages`` and is told by ``wake`` (called
    on the broadcaster's thread) that one arrived."""

    def __init__(self, maxsize: int = CLIENT_QUEUE, wake: Callable[[], None] = _nobody) -> None:
        self.messages: queue.Queue[bytes] = queue.Queue(maxsize)
        self.cut = threading.Event()  # set when the client fell behind and must reconnect
        self.wake = wake

    def offer(self, message: bytes) -> None:
        try:
            self.messages.put_nowait(message)
        except queue.Full:
            self.cut.set()
        self.wake()

    def end(self) -> None:
        """The stream is over: its reader stops at once (a full queue is cut instead)."""
        self.offer(END)


def sse(message: dict[str, Any]) -> bytes:
    """One Server-Sent Event, named by its type."""
    kind = str(message["type"]).encode()
    return b"event: " + kind + b"\ndata: " + orjson.dumps(message) + b"\n\n"


class Broadcaster:
    """A named worker: ``start``, idempotent ``stop``, ``heartbeat`` (monotonic seconds)."""

    name = "kiosk-events"

    def __init__(self, parts: KioskParts, state: Callable[[bool], dict[str, Any]], *,
                 on_acted: Callable[[Acted], object] = lambda _a: None) -> None:
        self.parts = parts
        self._state = state             # fire alarm active -> state message
        self._on_acted = on_acted
        self._clients: set[Client] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat = time.monotonic()
        self._last_state: dict[str, Any] | None = None
        self._state_at = 0.0
        self._dirty = True
        self._changes = 0                   # events taken and refreshes asked, ever
        self._built = (0.0, -1)             # when the last state was built, after which change
        self._building = threading.Lock()
        self._fire_alarm = parts.probes.fire_alarm()
        self._grants: deque[str] = deque(maxlen=RECENT_GRANTS)
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DECISIONS)
        self.cut_clients = 0

    # -- clients -------------------------------------------------------------------------

    def attach(self, wake: Callable[[], None] = _nobody) -> Client:
        """A new stream, primed with the current state so a (re)connected page is whole.

        Listening before the state is built: a decision taken meanwhile (a state build
        reads the whole status, slow on a gate just started) is on the stream too, if
        before the state; the page takes them in any order."""
        client = Client(wake=wake)
        with self._lock:
            nobody = not self._clients
            self._clients.add(client)
        # Nobody listened: nothing kept the last state fresh.
        try:
            state = self._rebuilt() if nobody or self._last_state is None \
                else self._last_state
        except GateError:
            self.detach(client)
            raise
        client.offer(sse(state))
        return client

    def detach(self, client: Client) -> None:
        with self._lock:
            self._clients.discard(client)
        client.end()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def broadcast(self, message: dict[str, Any]) -> None:
        frame = sse(message)
        with self._lock:
            clients = tuple(self._clients)
        for client in clients:
            client.offer(frame)
            if client.cut.is_set():
                self.cut_clients += 1
                self.detach(client)

    def state(self) -> dict[str, Any]:
        """The latest state message; rebuilt when none was built, or none is kept fresh
        because no page listens."""
        if self._last_state is None or not self.clients:
            return self._rebuilt()
        return self._last_state

    def _rebuilt(self) -> dict[str, Any]:
        """The state built now, unless the last one was built less than STATE_MIN_INTERVAL
        ago with nothing changed since: a burst of requests or reconnects costs one build (a
        whole status read) a second, and a request meanwhile waits for the build under way."""
        with self._building:
            now, changes = time.monotonic(), self._changes
            built_at, built_after = self._built
            if self._last_state is None or built_after != changes \
                    or now - built_at >= STATE_MIN_INTERVAL:
                self._last_state = self._state(self._fire_alarm)
                self._built = (now, changes)
            return self._last_state

    def refresh(self) -> None:
        """Rebuild the state soon (after a direction switch, an annul)."""
        self._changes += 1
        self._dirty = True

    def recent(self) -> list[dict[str, Any]]:
        """This gate's last RECENT_DECISIONS decision messages, newest first, each with
        ``passed`` (None until told) and ``annulled``."""
        with self._lock:
            return [dict(m) for m in reversed(self._recent)]

    def _mark(self, scan_id: str, **marks: object) -> None:
        with self._lock:
            for message in self._recent:
                if message["scan_id"] == scan_id:
                    message.update(marks)

    def annullable(self, scan_id: str) -> bool:
        return scan_id in self._grants

    def annulled(self, scan_id: str) -> None:
        self._settled(scan_id)
        self._mark(scan_id, annulled=True, passed=False)
        self.broadcast({"type": "annulled", "scan_id": scan_id})
        self.refresh()

    # -- worker --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._recall()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 2.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):  # a full queue wakes the worker anyway
            self.parts.listener.events.put_nowait(_STOP)
        with self._lock:
            clients, self._clients = self._clients, set()
        for client in clients:
            client.end()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @property
    def heartbeat(self) -> float:
        return self._heartbeat

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _recall(self) -> None:
        """The list of recent decisions as the journal has it, so a restarted gate's page
        still answers "did my ticket go through a minute ago?"; a journal that cannot be
        read leaves the list to fill from the stream."""
        try:
            kept = self.parts.journaled(RECENT_DECISIONS)
        except GateError as exc:
            log.warning("kiosk: recent decisions not read back: %s", exc)
            return
        with self._lock:
            fresh = {m["scan_id"] for m in self._recent}
            older = [m for m in reversed(kept) if m["scan_id"] not in fresh]
            self._recent = deque([*older, *self._recent], maxlen=RECENT_DECISIONS)

    def _run(self) -> None:
        events = self.parts.listener.events
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            try:
                event = events.get(timeout=STATE_MIN_INTERVAL)
            except queue.Empty:
                event = None
            if event is not None and event is not _STOP:
                self._take(event)
            now = time.monotonic()
            due = now - self._state_at >= (STATE_MIN_INTERVAL if self._dirty else STATE_TICK)
            # No page listening (a turnstile without a screen): nothing to rebuild for; a
            # page that connects gets a fresh state then.
            if due and events.empty() and self.clients:
                self._publish_state(now)

    def _take(self, event: object) -> None:
        self._changes += 1
        if isinstance(event, Acted):
            if event.opened:
                self._grants.append(event.scan_id)
            self._fire_alarm = event.fire_alarm
            self._on_acted(event)
        elif isinstance(event, Passage) and event.scan_id is not None:
            self._settled(event.scan_id)
            self._mark(event.scan_id, passed=event.passed)
        elif isinstance(event, FireAlarm):
            self._fire_alarm = event.active
        message = to_page(event, gate_id=self.parts.gate_id,
                          online=self.parts.probes.online)
        if message is not None and message["type"] == "decision":
            with self._lock:  # one entry a scan, were it read back from the journal too
                kept = [m for m in self._recent if m["scan_id"] != message["scan_id"]]
                self._recent = deque([*kept, message | {"passed": None, "annulled": False}],
                                     maxlen=RECENT_DECISIONS)
        if message is not None:
            self.broadcast(message)
            self._dirty = True

    def _settled(self, scan_id: str) -> None:
        """A passage or an annul settled this grant: it can no longer be annulled."""
        with contextlib.suppress(ValueError):
            self._grants.remove(scan_id)

    def _publish_state(self, now: float) -> None:
        self._state_at = now
        self._dirty = False
        changes = self._changes
        try:
            state = self._state(self._fire_alarm)
        except GateError as exc:  # a failing disk must not end the stream
            log.warning("kiosk state: %s", exc)
            return
        self._built = (now, changes)
        if state != self._last_state:
            self._last_state = state
            self.broadcast(state)
