"""This installation's version, read from the package metadata: ``pyproject.toml`` is its
one source, so ``gate --version``, ``/healthz``, ``/metrics`` and the daemon's first log
line can never disagree with what was installed."""

from __future__ import annotations

import functools

PACKAGE = "gate-scanner"


@functools.cache
def version() -> str:
    """The installed version of gate-scanner; ``unknown`` in a tree never installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(PACKAGE)
    except PackageNotFoundError:
        return "unknown"
