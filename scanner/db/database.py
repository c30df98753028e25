"""``Database``: what the ticket store, the journal and the mesh store share on an engine.

Sessions (``reading``, ``writing``) whose database faults, wherever they happen (at begin,
in the body, at commit), become one StoreError line naming the database, and driver
connections held open for the hot paths (``held``), all returned to the pool by ``close``.
Damage is ``CorruptStore`` already, from the engine's hook (``scanner.db.faults``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from scanner.db import faults
from scanner.db.driver_sql import HeldConnection
from scanner.errors import StoreError


class Database:
    """``kind`` is ``faults.STORE`` or ``faults.JOURNAL``: what errors call the database,
    and which remedy a damaged one gets."""

    def __init__(self, engine: Engine, kind: str) -> None:
        self.engine = engine
        self.kind = kind
        self._name = faults.database_name(engine.url)
        self._holding: list[HeldConnection] = []
        self._held_lock = threading.Lock()

    def reading(self, engine: Engine | None = None) -> AbstractContextManager[Connection]:
        """A connection to read on (``engine``: another engine on the same database)."""
        return self._session(engine or self.engine, write=False)

    def writing(self, engine: Engine | None = None) -> AbstractContextManager[Connection]:
        """A transaction, committed when the block ends without an exception."""
        return self._session(engine or self.engine, write=True)

    @contextmanager
    def _session(self, engine: Engine, *, write: bool) -> Iterator[Connection]:
        try:
            with engine.begin() if write else engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise faults.failed(self.kind, self._name, "write" if write else "read",
                                exc) from exc

    def held(self, *, busy_timeout_ms: int | None = None) -> HeldConnection:
        """A driver connection held open across calls (for one thread, or under a lock),
        returned to the pool by ``close``; it opens again if used after."""
        held = HeldConnection(self.engine, f"the {self.kind} {self._name}",
                              busy_timeout_ms=busy_timeout_ms)
        with self._held_lock:
            self._holding.append(held)
        return held

    def fault(self, exc: BaseException, doing: str) -> StoreError:
        """A held connection's driver error while ``doing``; raise it ``from exc``."""
        return faults.translate(exc, self.kind, self._name,
                                f"{doing} ({self.kind} {self._name})")

    def close(self) -> None:
        """Return every held connection to the engine's pool."""
        with self._held_lock:
            held = list(self._holding)
        for connection in held:
            connection.close()
