"""The builders: the one place that composes a running gate from its configuration.

``gate`` holds the gate's parts, built on first use; ``daemon`` composes ``gate run`` over
them, ``kiosk`` the page, ``sync_child`` the sync process's child. Only the commands
(``scanner.cli``) and the benchmarks (``scanner.bench``) import this package; everything it
builds receives narrow arguments, never the gate.
"""

from scanner.app.gate import Gate

__all__ = ["Gate"]
