"""Where the two databases live: the ``db`` and ``journal_db`` settings as SQLAlchemy URLs.

Plain string work on SQLAlchemy's documented URL form (``dialect+driver://host/database``;
a SQLite file is ``sqlite:///relative`` or ``sqlite:////absolute``), so the configuration
needs no database library to say where the journal goes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scanner.config.rules import printable, unknown_home

# The journal beside a store gate.db is gate-journal.db (not gate.db-journal: that is
# SQLite's own rollback journal).
JOURNAL_SUFFIX = "-journal"
DATABASE_TEXT = "a SQLite file path or a database URL"


def database_url(setting: str) -> str:
    """A setting as given if it has a scheme, else a SQLite file path."""
    if "://" in setting:
        return setting
    return f"sqlite:///{Path(setting).expanduser()}"


def journal_url_beside(store_url: str) -> str:
    """The journal's default URL for a store at ``store_url``: a SQLite file beside the
    store's; a separate in-memory database for an in-memory store; the same database on a
    server (the two schemas' table names do not collide, and a server locks rows, not
    files)."""
    scheme, _, rest = store_url.partition("://")
    if scheme.partition("+")[0] != "sqlite":
        return store_url
    host, _, path_query = rest.partition("/")
    database, mark, query = path_query.partition("?")
    if not database or database == ":memory:":
        return "sqlite://"
    path = Path(database)
    beside = path.with_name(f"{path.stem}{JOURNAL_SUFFIX}{path.suffix}")
    return f"{scheme}://{host}/{beside}{mark}{query}"


def database_problem(setting: Any) -> str | None:
    """Why ``db`` or ``journal_db`` names no database, or None. A SQLite file needs a name
    (the journal's beside it is made from it: ``/`` has none) and a ``~user`` that exists.
    A server's URL is not echoed: it may hold a password."""
    if not isinstance(setting, str) or not printable(setting):
        return f"expected {DATABASE_TEXT}, got {setting!r}"
    path = setting
    if "://" in setting:
        scheme, _, rest = setting.partition("://")
        if scheme.partition("+")[0] != "sqlite":
            return None
        path = rest.partition("/")[2].partition("?")[0]
    if home := unknown_home(path):
        return f"{home!r} names no user with a home folder"
    if path not in ("", ":memory:") and not Path(path).name:
        return f"expected a SQLite file with a name, got {setting!r}"
    return None
