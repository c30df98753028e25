"""Bounded queues to the stage's listeners: a slow or dead listener loses events (counted),
it never delays the relay or the other listeners."""

from __future__ import annotations

import queue
import threading
from typing import Any

DEFAULT_LISTENER_QUEUE = 256


class Listener:
    """One consumer's queue; read ``events`` from its own thread."""

    def __init__(self, name: str, maxsize: int = DEFAULT_LISTENER_QUEUE) -> None:
        if maxsize < 1:
            raise ValueError(f"listener {name}: queue size must be at least 1")
        self.name = name
        self.events: queue.Queue[Any] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Events lost because the queue was full."""
        return self._dropped

    def offer(self, event: Any) -> bool:
        try:
            self.events.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            return False
        return True


class Fanout:
    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, name: str, maxsize: int = DEFAULT_LISTENER_QUEUE) -> Listener:
        listener = Listener(name, maxsize)
        with self._lock:
            self._listeners = (*self._listeners, listener)
        return listener

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return self._listeners

    def publish(self, event: Any) -> None:
        for listener in self._listeners:  # a tuple swapped whole: safe to read unlocked
            listener.offer(event)
