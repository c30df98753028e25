"""Log lines on stderr and, when stderr is systemd's journal, their priority.

The journal reads a service's stderr line by line and stores each at the priority its
``<N>`` prefix names (sd-daemon.h's SD_ERR, SD_WARNING...), a line without one at info:
without the prefix ``journalctl -p warning`` finds nothing, not even a reader that died.
The prefix is written only when stderr *is* the journal's stream: systemd sets
``JOURNAL_STREAM`` to that stream's ``device:inode``, which must match stderr's own (a child
whose stderr was redirected inherits the variable, not the stream). Elsewhere, plain lines.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from scanner.printable import is_number

# syslog priorities, highest first: (lowest logging level that maps to it, priority).
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))
_DEBUG_PRIORITY = 7


def priority(level: int) -> int:
    """The syslog priority of a logging level (CRITICAL 2 ... DEBUG 7)."""
    return next((prio for floor, prio in _PRIORITIES if level >= floor), _DEBUG_PRIORITY)


def stderr_is_journal(env: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether ``fd`` is the stream ``JOURNAL_STREAM`` ("device:inode") names."""
    dev, sep, ino = (os.environ if env is None else env).get("JOURNAL_STREAM", "").partition(":")
    if not (sep and is_number(dev) and is_number(ino)):
        return False
    try:
        info = os.fstat(fd)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == (int(dev), int(ino))


class PriorityFormatter(logging.Formatter):
    """Each line of a record prefixed ``<N>``, its syslog priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def fault_line(text: str) -> str:
    """The line a command that failed ends with, at error priority in the journal: a gate
    that cannot start says why where ``journalctl -p err`` looks."""
    return f"<{priority(logging.ERROR)}>{text}" if stderr_is_journal() else text


def setup_logging(verbose: bool) -> None:
    journal = stderr_is_journal()
    # The journal adds its own timestamps.
    fmt = "%(levelname)s %(name)s: %(message)s" if journal \
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PriorityFormatter(fmt) if journal else logging.Formatter(fmt))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # httpx logs every request at INFO; one line per page would drown the journal.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


@contextmanager
def logging_off_thread() -> Iterator[None]:
    """Every log record written by a thread of its own, in order: a decision lane that logs
    its line never waits on journald (a full stderr pipe blocks the writer). What is queued
    is written before this ends."""
    from logging.handlers import QueueHandler, QueueListener
    from queue import SimpleQueue

    root = logging.getLogger()
    handlers = root.handlers[:]
    records: SimpleQueue[logging.LogRecord] = SimpleQueue()
    listener = QueueListener(records, *handlers, respect_handler_level=True)
    root.handlers = [QueueHandler(records)]
    listener.start()
    try:
        yield
    finally:
        listener.stop()
        root.handlers = handlers
