"""Whether ``gate run`` is ready and healthy, for the parts built before its supervisor.

The kiosk's /healthz and the state file are workers of the supervisor, so they exist
before it does; they read this, and the supervisor says here where its word comes from
once it is built. Until then the gate is starting.
"""

from __future__ import annotations

from collections.abc import Callable

STARTING = "not ready: starting"


class Readiness:
    def __init__(self) -> None:
        self._problems: Callable[[], list[str]] | None = None

    def follow(self, problems: Callable[[], list[str]]) -> None:
        """From now on the gate's problems are what ``problems()`` says (the supervisor's)."""
        self._problems = problems

    def problems(self) -> list[str]:
        """Why the gate is not ready or not healthy, one phrase each; empty when it is."""
        said = self._problems
        return [STARTING] if said is None else said()

    def health(self) -> tuple[bool, list[str]]:
        """(ready and every heartbeat fresh, why not): what /healthz answers."""
        reasons = self.problems()
        return not reasons, reasons
