"""What the running daemon says of itself in a small file beside its store, for ``gate
status``: whether it runs (its pid), whether vivenu answered, its readers, its problems.

A file rather than asking the kiosk's ``/api/status``: it works with ``[web] enabled =
false``, beyond loopback without a login, and without the network, as ``gate status`` must
at a dead gate. It sits beside the store (``gate.db-run.json``, as SQLite's ``-wal``), in
the service's state directory, readable by whoever can read the store.

The worker rewrites it when what it says changes, and at least every ``STATE_EVERY``
seconds, so an SD card is not worn by a write per tick. It counts as running while its pid
lives and the file is younger than ``STATE_STALE``; a clean stop says so in the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from scanner.clock import Clock, utc_now
from scanner.run.worker import Stage, Worker
from scanner.tickets import parse_iso, utc_iso

log = logging.getLogger("scanner.run")

STATE_EVERY = 30.0   # rewritten at least this often, so its age shows the daemon lives
STATE_STALE = 90.0   # older than this (three missed writes): the daemon is not running
POLL = 1.0           # how soon a change (a reader unplugged) reaches the file


def state_path(db: str) -> Path | None:
    """The state file for the store ``db`` (a path or URL), or None for a server database
    (PostgreSQL), which has no directory of its own."""
    if "://" in db:
        prefix = "sqlite:///"
        if not db.startswith(prefix) or ":memory:" in db:
            return None
        db = db[len(prefix):]
    if db == ":memory:":
        return None
    path = Path(db).expanduser()
    return path.with_name(path.name + "-run.json")


class StateFile(Worker):
    """Worker ``state``: keeps the file current while the daemon runs. ``facts`` gives the
    live part (online, readers, problems); the pid and start time are added here."""

    def __init__(self, path: Path, facts: Callable[[], dict[str, Any]], *,
                 heartbeat_timeout: float, wall: Clock = utc_now,
                 every: float = STATE_EVERY, poll: float = POLL) -> None:
        super().__init__("state", heartbeat_timeout=heartbeat_timeout, stage=Stage.BACKGROUND)
        self.path = path
        self.facts = facts
        self.wall = wall
        self.every = every
        self.poll = poll
        self.started_at = utc_iso(wall())
        self._warned = False

    def run(self) -> None:
        written: dict[str, Any] | None = None
        written_at = 0.0
        while not self.stopping.is_set():
            self.beat()
            doc = self._doc(running=True)
            now = time.monotonic()
            if doc != written or now - written_at >= self.every:
                self._write(doc | {"updated_at": utc_iso(self.wall())})
                written, written_at = doc, now
            self.stopping.wait(self.poll)
        self._write(self._doc(running=False) | {"updated_at": utc_iso(self.wall())})

    def _doc(self, *, running: bool) -> dict[str, Any]:
        return {"pid": os.getpid(), "started_at": self.started_at, "running": running,
                **self.facts()}

    def _write(self, doc: dict[str, Any]) -> None:
        """Atomically (a reader never sees half a file); a failure is said once."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_bytes(orjson.dumps(doc))
            tmp.chmod(0o644)  # an operator who can read the store may read this
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot write the state file %s: %s; gate status will not see "
                            "this daemon", self.path, exc.strerror)
                self._warned = True
            return
        self._warned = False


def read_state(path: Path | None, now: datetime) -> dict[str, Any]:
    """What ``gate status`` shows of the daemon: ``running`` and, when it ever ran here,
    what it last said (``online``, ``readers``, ``problems``, ``updated_at``)."""
    if path is None:
        return {"running": None, "why": "no state file with a server database"}
    try:
        doc: dict[str, Any] = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {"running": False, "why": "gate run has not run with this store"}
    except (OSError, orjson.JSONDecodeError) as exc:
        return {"running": None, "why": f"cannot read {path.name}: {exc}"}
    try:
        age = (now - parse_iso(doc["updated_at"])).total_seconds()
        pid = int(doc["pid"])
    except (KeyError, TypeError, ValueError):
        return {"running": None, "why": f"{path.name} is not a state file"}
    if not doc.get("running"):
        doc["why"] = "stopped"
    elif not _alive(pid):
        doc["running"], doc["why"] = False, "its process is gone"
    elif age > STATE_STALE:
        doc["running"], doc["why"] = False, f"no word from it for {age:.0f} s"
    doc["age_s"] = round(age, 1)
    return doc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # the service's own user: alive, only not ours to signal
    with contextlib.suppress(OSError):  # a zombie answers kill(0): read its state
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True
