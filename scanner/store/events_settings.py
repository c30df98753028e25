"""The device's view of the server besides tickets: accessible events and ``/me`` settings.

Both are replaced wholesale on each save, in one transaction, so the store never mixes
the answers of two different fetches.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Connection, select

from scanner.db.faults import STORE, database_name, loads
from scanner.db.keyed import put_meta
from scanner.store.schema import device_settings, events, meta

# A ``meta`` key that moves with every settings save, so the scan path can ask "changed
# since?" with one indexed read instead of loading and parsing every row of /me.
SETTINGS_VERSION_KEY = "settings_version"


def save_events(conn: Connection, docs: list[dict[str, Any]], at: str) -> None:
    """Replace the stored events with ``docs`` (vivenu's ``[{_id, name}]``)."""
    conn.execute(events.delete())
    rows = [{"id": doc["_id"], "name": doc.get("name") or "", "seen_at": at} for doc in docs]
    if rows:
        conn.execute(events.insert(), rows)


def load_events(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(events.c.id, events.c.name).order_by(events.c.name,
                                                                   events.c.id))
    return [{"_id": row.id, "name": row.name} for row in rows]


def save_settings(conn: Connection, me: dict[str, Any], at: str) -> None:
    """Replace the stored ``/me`` answer; one row per top-level key, values as JSON."""
    conn.execute(device_settings.delete())
    rows = [{"key": key, "value": orjson.dumps(value).decode(), "fetched_at": at}
            for key, value in me.items()]
    if rows:
        conn.execute(device_settings.insert(), rows)
    put_meta(conn, SETTINGS_VERSION_KEY, str(time.time_ns()), meta)


def load_settings(conn: Connection) -> dict[str, Any] | None:
    """The last stored ``/me`` answer, or None if the device never fetched it."""
    rows = conn.execute(select(device_settings.c.key, device_settings.c.value)).all()
    if not rows:
        return None
    name = database_name(conn.engine.url)
    return {row.key: loads(row.value, STORE, name, f"device setting {row.key!r}")
            for row in rows}
