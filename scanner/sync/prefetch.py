"""Run an iterator one step ahead in a thread: the next HTTP page downloads and parses
while the current one is written to the store (socket reads and SQLite release the GIL)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = range(3)
# How often a blocked producer checks whether the consumer went away.
_POLL = 0.1


def prefetched(source: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield ``source``'s items, produced up to ``depth`` ahead in a worker thread.

    Exceptions of the source reach the consumer at the point they happened. When the
    consumer stops early (an error, ``close()``), the worker stops after its current item.
    """
    if depth <= 0:
        yield from source
        return
    handoff: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: int, value: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put((kind, value), timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(_ITEM, item):
                    return
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(_ERROR, exc)
            return
        put(_END, None)

    worker = threading.Thread(target=produce, name="sync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == _END:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
