"""A progress bar for the first full sync, shown only to a person at a terminal."""

from __future__ import annotations

import sys
from typing import Any


class _NoBar:
    total: int | None = None

    def update(self, n: int) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool | None, description: str) -> Any:
    """A tqdm bar on stderr if ``enabled`` (None: only if stderr is a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(desc=description, unit=" tickets", unit_scale=True, file=sys.stderr,
                leave=False, dynamic_ncols=True)
