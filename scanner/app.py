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

        return make_engine(self.config.db_url, journal_url=self.config.journal_db_url)

    @cached_property
    def journal_engine(self) -> Engine:
        from scanner.store.db import make_journal_engine

        self.engine  # noqa: B018 - a store from before v3 moves its journal out first
        return make_journal_engine(self.config.journal_db_url)

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

    @cached_property
    def journal(self) -> Any:
        from scanner.journal import Journal

        return Journal(self.journal_engine, self.config.gate_id)

    @cached_property
    def policy_source(self) -> Any:
        """Callable giving the policy for the current /me settings, rebuilt after a sync."""
        from scanner.clock import local_zone
        from scanner.decide.policy import Policy
        from scanner.gatekeeper import LivePolicy

        cfg = self.config
        zone = local_zone()
        return LivePolicy(self.store.settings, lambda me: Policy.build(
            me, cfg.policy, cfg.events, max_read_length=cfg.reader.max_length,
            display_tz=zone), version=self.store.settings_version)

    @cached_property
    def clock_offset(self) -> Any:
        """Server-minus-device seconds for stamping scans; without an API client yet (gate
        check offline) the offset saved last applies."""
        from scanner.journal.offset import ServerOffset

        return ServerOffset(self.journal, lambda: self.api.clock_offset
                            if "api" in self.__dict__ else None)

    @cached_property
    def gatekeeper(self) -> Any:
        from scanner.gatekeeper import Gatekeeper

        cfg = self.config
        return Gatekeeper(
            self.store, self.journal, self.policy_source,
            lookup=self._lookup, lookup_deadline=cfg.lookup.deadline_ms / 1000,
            gate_id=cfg.gate_id, clock=self.clock, clock_offset=self.clock_offset)

    def _lookup(self, barcode: str, event_id: str | None, deadline: float) -> Any:
        """The gatekeeper's online fallback (it maps NotFound to "no such ticket")."""
        return self.api.ticket(barcode, event_id, deadline=deadline)

    @cached_property
    def outbox(self) -> Any:
        from scanner.upload.outbox import Outbox

        return Outbox(self.journal, self.api, self.config.upload.batch_size, clock=self.clock)

    def close(self) -> None:
        """Release what was built, in reverse order of need; parts never built are skipped."""
        if "gatekeeper" in self.__dict__:
            self.gatekeeper.close()
        if "clock_offset" in self.__dict__:
            self.clock_offset.close()  # its last save needs the journal still open
        if "journal" in self.__dict__:
            self.journal.close()
        if "store" in self.__dict__:
            self.store.close()
        if "api" in self.__dict__:
            self.api.close()
        if "journal_engine" in self.__dict__:
            self.journal_engine.dispose()
        if "engine" in self.__dict__:
            self.engine.dispose()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
