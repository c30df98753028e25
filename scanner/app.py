"""The composition root: the one place that builds a running gate from its configuration.

Everything else receives what it needs as arguments. Tests build the same ``Gate`` and
override the edges (``transport`` for HTTP, ``clock``) instead of monkeypatching.
Parts are built on first use, so ``gate status`` never opens an HTTP client and ``gate
check`` never imports the sync engine.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from scanner.clock import Clock, utc_now
from scanner.config import GateConfig

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import Engine


class Gate:
    def __init__(self, config: GateConfig, *, transport: httpx.BaseTransport | None = None,
                 clock: Clock = utc_now) -> None:
        self.config = config
        self.transport = transport
        self.clock = clock

    @cached_property
    def engine(self) -> Engine:
        from scanner.store.db import make_engine

        return make_engine(self.config.db_url)

    @cached_property
    def api(self) -> Any:
        from scanner.vivenu.client import VivenuClient

        return VivenuClient.from_config(self.config.api, transport=self.transport)

    @cached_property
    def store(self) -> Any:
        from scanner.store.tickets import TicketStore

        return TicketStore(self.engine)

    @cached_property
    def syncer(self) -> Any:
        from scanner.sync.syncer import Syncer

        return Syncer(self.api, self.store, self.config.sync, events=self.config.events,
                      clock=self.clock)

    def close(self) -> None:
        if "api" in self.__dict__:
            self.api.close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
