"""What ``gate setup`` has gathered, asked or from flags, and how it writes its files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.atomic import check_replaceable, remove
from scanner.config import toml

PIN_KEYS = ("relay_pin", "green_pin", "red_pin", "buzzer_pin", "passage_pin", "fire_alarm_pin")


@dataclass
class Answers:
    """What ``gate setup`` writes: top-level keys, tables, and reader tables."""

    top: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    readers: list[dict[str, Any]] = field(default_factory=list)

    def table(self, name: str) -> dict[str, Any]:
        return self.tables.setdefault(name, {})

    def toml(self) -> str:
        notes = {} if self.readers else {"readers": "none yet: run gate setup again to add one"}
        return ("# Written by gate setup; gate config check shows every effective value.\n"
                + toml.dumps({**self.top, "readers": self.readers, **self.tables}, notes))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically, readable by its owner only (the token, the config); an
    OSError leaves no temporary file behind (a full disk)."""
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError:
        remove(tmp)
        raise
