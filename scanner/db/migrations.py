"""A database's schema versions, stepped up under the write lock.

Each database keeps its schema version in its key/value table (``VERSION_KEY``). ``migrate``
creates a fresh database whole at the latest version, or takes an older one up step by
step, each step and its version in one transaction. Each of those transactions takes the
write lock and reads the version again first: two processes starting at once (the sync and
upload services on a fresh install) neither create a schema twice nor run a step twice. A
version newer than the code is refused: the software must be upgraded, never the data
guessed at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, Table, select

from scanner.db import faults
from scanner.db.keyed import lock_for_write, put_meta
from scanner.errors import StoreError

VERSION_KEY = "schema_version"

Step = Callable[[Connection], None]


@dataclass(frozen=True)
class Schema:
    """One database's schema history, as ``migrate`` needs it."""

    kind: str                  # faults.STORE or faults.JOURNAL: how errors name it
    meta: Table                # its key/value table, which holds VERSION_KEY
    latest: int                # the version this code creates and works on
    # Creates the latest schema whole in an empty database; False when the database holds
    # one from before versions were kept, which the steps then take up from version 1.
    create: Callable[[Connection], bool]
    # steps[n] takes the database from version n-1 to n, inside one transaction.
    steps: Mapping[int, Step] = field(default_factory=dict)

    def read_version(self, conn: Connection) -> int:
        """The version stored (0: none yet); a value no code could have written is
        damage."""
        if not conn.dialect.has_table(conn, self.meta.name):
            return 0
        row = conn.execute(select(self.meta.c.value)
                           .where(self.meta.c.key == VERSION_KEY)).first()
        if row is None:
            return 0
        try:
            version = int(row[0])
        except ValueError:  # a page of garbage, not a version this code could have written
            version = -1
        if version < 0:  # no step leads from a negative version: it is damage too
            what = (f"{self.meta.name}.{VERSION_KEY} is {str(row[0])[:40]!r}, not a version "
                    f"number")
            raise faults.damaged(self.kind, faults.database_name(conn.engine.url), what)
        return version

    def version_of(self, engine: Engine) -> int:
        with engine.connect() as conn:
            return self.read_version(conn)

    def set_version(self, conn: Connection, version: int) -> None:
        put_meta(conn, VERSION_KEY, str(version), self.meta)

    def newer(self, name: str, found: int) -> StoreError:
        """The refusal of a database ``name`` at version ``found``, newer than this code."""
        return StoreError(f"{name}: {self.kind} schema {found} is newer than this "
                          f"gate-scanner ({self.latest}); upgrade the software")


def migrate(engine: Engine, name: str, schema: Schema, *,
            across: Mapping[int, Callable[[], None]] | None = None) -> None:
    """Bring the database ``name`` on ``engine`` to ``schema.latest``: create it fresh, or
    run each step it lacks. ``across[n]`` is a step that spans two databases, which no one
    transaction can: it runs its own, sets the version itself and finds out for itself
    whether another process ran it meanwhile."""
    current = schema.version_of(engine)
    if current > schema.latest:
        raise schema.newer(name, current)
    if current == schema.latest:
        return
    with engine.begin() as conn:
        lock_for_write(conn)  # created whole, by one process
        current = schema.read_version(conn)
        if current > schema.latest:
            raise schema.newer(name, current)
        if current == schema.latest:
            return
        if current == 0 and schema.create(conn):
            schema.set_version(conn, schema.latest)
            return
    for version in range(current + 1, schema.latest + 1):
        if across and version in across:
            across[version]()
            continue
        with engine.begin() as conn:
            lock_for_write(conn)
            if schema.read_version(conn) >= version:
                continue  # another process stepped it meanwhile
            schema.steps[version](conn)
            schema.set_version(conn, version)
