"""Faults the simulator injects, changeable while it runs (tests, ``/_sim/faults``).

Each request draws its fate from one seeded random stream under a lock, so a single-threaded
client sees the same sequence of errors and drops for the same seed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class FaultSettings:
    latency_ms: float = 0.0        # added before every answer
    error_rate: float = 0.0        # fraction of requests answered 500 or 503
    fail_next: int = 0             # the next K requests are answered 500 or 503
    rate_limit: int = 0            # the next K requests are answered 429
    retry_after: float = 1.0       # ... with Retry-After: this many seconds
    drop_rate: float = 0.0         # fraction of requests whose connection is closed unanswered
    drop_next: int = 0             # the next K requests are dropped
    malformed_pages: int = 0       # the next K ticket pages are malformed
    mutate_per_page: int = 0       # tickets changed after each ticket page is served
    churn: float = 0.0             # tickets sold or cancelled per second in the background
    page_cap: int = 0              # ticket pages hold at most this many, whatever top asks


# What a request is answered with before any endpoint sees it.
PASS, DROP, LIMIT, ERROR = "pass", "drop", "limit", "error"


class Faults:
    """Thread-safe fault switches; read ``settings()`` for a consistent copy."""

    def __init__(self, seed: int = 0, **settings: Any) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._settings = FaultSettings()
        self.update(**settings)

    def update(self, **settings: Any) -> FaultSettings:
        """Change some switches; unknown names or negative values raise ValueError."""
        known = {f.name: f.type for f in fields(FaultSettings)}
        for name, value in settings.items():
            if name not in known:
                raise ValueError(f"faults: unknown switch {name!r}; known: {', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"faults.{name}: expected a number >= 0, got {value!r}")
            if name in ("error_rate", "drop_rate") and value > 1:
                raise ValueError(f"faults.{name}: a fraction between 0 and 1, got {value!r}")
        with self._lock:
            for name, value in settings.items():
                setattr(self._settings, name,
                        int(value) if known[name] == "int" else float(value))
            return FaultSettings(**asdict(self._settings))

    def settings(self) -> FaultSettings:
        with self._lock:
            return FaultSettings(**asdict(self._settings))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.settings())

    def fate(self) -> tuple[str, int]:
        """How to answer the next API request: (kind, HTTP status for an ERROR)."""
        with self._lock:
            s = self._settings
            if s.drop_next > 0 or (s.drop_rate and self._rng.random() < s.drop_rate):
                s.drop_next = max(0, s.drop_next - 1)
                return DROP, 0
            if s.rate_limit > 0:
                s.rate_limit -= 1
                return LIMIT, 429
            if s.fail_next > 0 or (s.error_rate and self._rng.random() < s.error_rate):
                s.fail_next = max(0, s.fail_next - 1)
                return ERROR, self._rng.choice((500, 503))
            return PASS, 0

    def take_malformed(self) -> int | None:
        """If the next ticket page should be malformed, which variant (0, 1, 2...)."""
        with self._lock:
            if self._settings.malformed_pages <= 0:
                return None
            self._settings.malformed_pages -= 1
            return self._settings.malformed_pages
