"""The composition root: the one place that builds a running gate from its configuration.

Everything else receives what it needs as arguments. Tests build the same ``Gate`` and
override the edges (``transport`` for HTTP, ``clock``, ``sources`` for readers) instead of
monkeypatching. Parts are built on first use, so ``gate status`` never opens an HTTP client
and ``gate check`` never imports the sync engine; each module is imported inside the part
that needs it, and only for type checking up here.

A part is one method under ``@part``: built once, under the gate's lock, so threads that
ask at the same moment (lookup workers, readers, the sync) share one API client and one
store. What needs releasing says so where it is built (``self._closing``), and ``close()``
releases in reverse order of building: a part is built after what it uses, so it is
released before it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

from scanner.clock import Clock, utc_now
from scanner.config import GateConfig, ReaderConfig
from scanner.errors import ConfigError

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import Engine

    from hardware.sources import ReadSource, StatusFn
    from scanner.gatekeeper import Gatekeeper, LivePolicy, Lookup
    from scanner.journal import Journal
    from scanner.journal.offset import ServerOffset
    from scanner.read.hygiene import Payload, Rejected
    from scanner.read.pipeline import Pipeline
    from scanner.read.sources import SourceFactory
    from scanner.store.tickets import TicketStore
    from scanner.sync.syncer import Syncer
    from scanner.upload.outbox import Outbox
    from scanner.vivenu.client import VivenuClient

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P", covariant=True)


class part(Generic[P]):
    """A part of the gate: built on first use, once, whichever threads ask at the same time.

    ``functools.cached_property`` is no lock at all since Python 3.12 (and one per class
    before), so two lookup workers could each build an HTTP client and leak one.
    """

    def __init__(self, build: Callable[[Gate], P]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, gate: None, owner: type[Gate]) -> part[P]: ...

    @overload
    def __get__(self, gate: Gate, owner: type[Gate]) -> P: ...

    def __get__(self, gate: Gate | None, owner: type[Gate]) -> part[P] | P:
        return self if gate is None else gate._get(self)

    def built(self, gate: Gate) -> P | None:
        """The part if ``gate`` has built it already, without building it."""
        return cast("P | None", gate._built.get(self.name))


class Gate:
    def __init__(self, config: GateConfig, *, transport: httpx.BaseTransport | None = None,
                 clock: Clock = utc_now,
                 sources: Mapping[str, SourceFactory] | None = None) -> None:
        self.config = config
        self.transport = transport
        self.clock = clock
        self.sources = sources  # reader.source name -> factory; None: the real devices
        self._lock = threading.RLock()  # re-entrant: building a part builds what it needs
        self._built: dict[str, object] = {}
        self._closers = ExitStack()
        self._closed = False

    # -- the machinery -------------------------------------------------------------------

    def _get(self, part: part[T]) -> T:
        try:
            return cast(T, self._built[part.name])  # built: no lock on the scan path
        except KeyError:
            pass
        with self._lock:
            if part.name not in self._built:
                if self._closed:
                    raise RuntimeError(f"gate closed: cannot build its {part.name}")
                self._built[part.name] = part.build(self)
            return cast(T, self._built[part.name])

    def _closing(self, value: T, close: Callable[[T], object]) -> T:
        """Have ``close(value)`` run at ``close()``; call it under the lock (a part's build
        is)."""
        if self._closed:  # too late to be released with the rest: release it now
            close(value)
            raise RuntimeError("gate closed")
        self._closers.callback(close, value)
        return value

    def open(self, *parts: part[object]) -> None:
        """Build ``parts`` now, so what a command needs fails before its first scan, with
        one ConfigError or GateError line (a bad ``api.url`` does, in ``api``)."""
        for wanted in parts:
            self._get(wanted)

    def close(self) -> None:
        """Release everything built, last built first; idempotent. A closer that raises
        does not keep the ones after it from running."""
        with self._lock:
            self._closed = True
            self._built.clear()
            self._closers.close()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- parts ---------------------------------------------------------------------------

    @part
    def engine(self) -> Engine:
        from scanner.store.db import make_engine

        engine = make_engine(self.config.db_url, journal_url=self.config.journal_db_url)
        return self._closing(engine, lambda engine: engine.dispose())

    @part
    def journal_engine(self) -> Engine:
        from scanner.store.db import make_journal_engine

        # The store first: one from before v3 moves its journal out, and it names the
        # journal that must open (a missing one is refused, never silently recreated).
        engine = make_journal_engine(self.config.journal_db_url, store=self.engine)
        return self._closing(engine, lambda engine: engine.dispose())

    @part
    def api(self) -> VivenuClient:
        """The vivenu client. Building it checks ``api.url``, so a bad one is a ConfigError
        at start rather than a failed lookup on every scan."""
        import httpx

        from scanner.errors import InsecureUrl
        from scanner.vivenu.client import VivenuClient

        try:
            client = VivenuClient.from_config(self.config.api, transport=self.transport)
        except InsecureUrl as exc:
            raise ConfigError(str(exc)) from exc
        except (ValueError, httpx.InvalidURL) as exc:
            raise ConfigError(f"api.url: not a valid URL ({exc})") from exc
        return self._closing(client, VivenuClient.close)

    @part
    def store(self) -> TicketStore:
        from scanner.store.tickets import TicketStore

        return self._closing(TicketStore(self.engine), TicketStore.close)

    @part
    def syncer(self) -> Syncer:
        from scanner.sync.syncer import Syncer

        return Syncer(self.api, self.store, self.config.sync, events=self.config.events,
                      clock=self.clock)

    @part
    def journal(self) -> Journal:
        from scanner.journal import Journal

        return self._closing(Journal(self.journal_engine, self.config.gate_id), Journal.close)

    @part
    def policy_source(self) -> LivePolicy:
        """Callable giving the policy for the current /me settings, rebuilt after a sync."""
        from scanner.clock import local_zone
        from scanner.decide.policy import Policy
        from scanner.gatekeeper import LivePolicy

        cfg = self.config
        zone = local_zone()
        return LivePolicy(self.store.settings, lambda me: Policy.build(
            me, cfg.policy, cfg.events, max_read_length=cfg.reader.max_length,
            display_tz=zone), version=self.store.settings_version)

    @part
    def clock_offset(self) -> ServerOffset:
        """Server-minus-device seconds for stamping scans; without an API client (gate
        check offline) the offset saved last applies."""
        from scanner.journal.offset import ServerOffset

        def live() -> float | None:
            api = Gate.api.built(self)
            return None if api is None else api.clock_offset

        # Its last save needs the journal, which was built first and so closes after it.
        return self._closing(ServerOffset(self.journal, live), ServerOffset.close)

    @part
    def gatekeeper(self) -> Gatekeeper:
        from scanner.gatekeeper import Gatekeeper

        cfg = self.config
        deadline = cfg.lookup.deadline_ms / 1000
        return self._closing(Gatekeeper(
            self.store, self.journal, self.policy_source,
            lookup=self._lookup() if deadline > 0 else None, lookup_deadline=deadline,
            gate_id=cfg.gate_id, clock=self.clock, clock_offset=self.clock_offset),
            Gatekeeper.close)

    def _lookup(self) -> Lookup:
        """The gatekeeper's online fallback (it maps NotFound to "no such ticket"); the
        client is built here, not on the first unknown barcode."""
        api = self.api
        return lambda barcode, event_id, deadline: api.ticket(barcode, event_id,
                                                              deadline=deadline)

    @part
    def outbox(self) -> Outbox:
        from scanner.upload.outbox import Outbox

        return Outbox(self.journal, self.api, self.config.upload.batch_size, clock=self.clock)

    # -- readers -------------------------------------------------------------------------

    def reader(self, config: ReaderConfig, on_status: StatusFn | None = None) -> ReadSource:
        """The source ``config`` names, from ``sources`` or the real device adapters (which
        import their device library only now)."""
        from scanner.read.sources import open_source

        return open_source(config, on_status, self.sources)

    def pipeline(self, config: ReaderConfig, sink: Callable[[Payload], R], *,
                 on_result: Callable[[Payload, R], object] | None = None,
                 on_reject: Callable[[Rejected], object] | None = None,
                 on_status: StatusFn | None = None) -> Pipeline[R]:
        """One reader's pipeline: its source, its hygiene, then ``sink`` (say, a
        ``gatekeeper.check`` in the reader's direction). ``close()`` stops it."""
        from scanner.read.hygiene import Hygiene
        from scanner.read.pipeline import Pipeline

        source = self.reader(config, on_status)
        with self._lock:
            return self._closing(
                Pipeline([source], Hygiene(config.max_length, config.dedup_window), sink,
                         on_result=on_result, on_reject=on_reject, on_status=on_status),
                Pipeline.stop)
