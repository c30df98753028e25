"""The gate's parts, built from its configuration: the heart of the composition root.

Everything else receives what it needs as arguments; nothing it builds receives the gate.
Tests build the same ``Gate`` and override the edges (``transport`` for HTTP, ``clock``,
``sources`` for readers) instead of monkeypatching. Parts are built on first use, so ``gate
status`` never opens an HTTP client and ``gate check`` never imports the sync engine; each
module is imported inside the part that needs it, and only for type checking up here.
``gate run``'s supervisor and its page are composed over these parts in
``scanner.app.daemon`` and ``scanner.app.kiosk``.

A part is one method under ``@part``: built once, under the gate's lock, so threads that
ask at the same moment (lookup workers, readers, the sync) share one API client and one
store. What needs releasing says so where it is built (``self._closing``), and ``close()``
releases in reverse order of building: a part is built after what it uses, so it is
released before it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

from scanner.clock import Clock, utc_now
from scanner.config import GateConfig, ReaderConfig
from scanner.errors import ConfigError

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import Engine

    from hardware.gpio import GpioOutputs
    from hardware.reads import ReadSource, StatusFn
    from scanner.act import ActStage
    from scanner.clock_guard import ClockGuard
    from scanner.gatekeeper import Gatekeeper, LivePolicy, Lookup
    from scanner.journal import Journal
    from scanner.journal.offset import MeasuredOffset, ServerOffset
    from scanner.kiosk.parts import Reachability
    from scanner.mesh.link import Link
    from scanner.mesh.peer_journal import MeshStore
    from scanner.read.hygiene import Payload, Rejected
    from scanner.read.pipeline import Pipeline
    from scanner.read.registry import SourceFactory
    from scanner.run.jobs import RunsSync
    from scanner.run.lane import Lane
    from scanner.run.notify import Notifier
    from scanner.run.readers import ReaderWorker
    from scanner.run.schedule import Job, Scheduler
    from scanner.run.supervisor import Supervisor
    from scanner.store.tickets import TicketStore
    from scanner.supervise import Desk
    from scanner.sync.syncer import Syncer
    from scanner.upload.outbox import Outbox
    from scanner.venue.channel import VenueWorker
    from scanner.venue.in_force import CommandBook
    from scanner.vivenu.client import VivenuClient
    from scanner.zones.book import ZoneBook

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P", covariant=True)

# What ``SyncProcess`` starts for ``gate run``'s sync: its child, with this interpreter.
SYNC_CHILD = (sys.executable, "-m", "scanner.app.sync_child")


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


class Gate:
    def __init__(self, config: GateConfig, *, transport: httpx.BaseTransport | None = None,
                 clock: Clock = utc_now,
                 sources: Mapping[str, SourceFactory] | None = None,
                 notifier: Notifier | None = None) -> None:
        self.config = config
        self.transport = transport
        self.clock = clock
        self.sources = sources  # reader.source name -> factory; None: the real devices
        self._notifier = notifier  # None: systemd's, from NOTIFY_SOCKET and WATCHDOG_USEC
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

    @property
    def parts_built(self) -> frozenset[str]:
        """The names of the parts built so far: what the commands run so far opened."""
        return frozenset(self._built)

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
        from scanner.databases import make_engine

        engine = make_engine(self.config.db_url, journal_url=self.config.journal_db_url)
        return self._closing(engine, lambda engine: engine.dispose())

    @part
    def journal_engine(self) -> Engine:
        from scanner.databases import make_journal_engine

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
            client = VivenuClient.from_config(self.config.api, transport=self.transport,
                                              clock=self.clock)
        except InsecureUrl as exc:
            raise ConfigError(str(exc)) from exc
        except (ValueError, httpx.InvalidURL) as exc:
            raise ConfigError(f"api.url: not a valid URL ({exc})") from exc
        client.on_offset = self.measured_offset.set
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
    def run_syncer(self) -> RunsSync:
        """``gate run``'s syncer: ``Syncer.run_once`` in a child process of its own
        (``[run] sync_process``), so the sync never holds the decision lane's GIL. Not with
        edges of this gate's own (an HTTP transport, a clock), which a child cannot share:
        those gates sync in a thread."""
        from scanner.sync.process import SyncProcess

        if not (self.config.run.sync_process and self.transport is None
                and self.clock is utc_now):
            return self.syncer
        # Its client's clock offsets go to this one's, which stamps the scans.
        return self._closing(SyncProcess(self.config, SYNC_CHILD,
                                         on_offset=self.api.observe_offset),
                             SyncProcess.close)

    @part
    def journal(self) -> Journal:
        from scanner.journal import Journal

        return self._closing(Journal(self.journal_engine, self.config.gate_id), Journal.close)

    @part
    def policy_source(self) -> LivePolicy:
        """Callable giving the policy for the current /me settings, rebuilt after a sync."""
        from scanner.clock import local_zone
        from scanner.decide.policy import Policy, Route
        from scanner.gatekeeper import LivePolicy

        cfg = self.config
        zone = local_zone()
        routes = tuple(Route(r.gates, frozenset(r.areas), frozenset(r.entries),
                             frozenset(r.ticket_types)) for r in cfg.routes)
        return LivePolicy(self.store.settings, lambda me: Policy.build(
            me, cfg.policy, cfg.events, max_read_length=cfg.reader.max_length,
            display_tz=zone, gate_id=cfg.gate_id, routes=routes),
            version=self.store.settings_version)

    @part
    def measured_offset(self) -> MeasuredOffset:
        """The server clock offset this gate's clients measured last (the API client's own,
        and its sync process's)."""
        from scanner.journal.offset import MeasuredOffset

        return MeasuredOffset()

    @part
    def clock_offset(self) -> ServerOffset:
        """Server-minus-device seconds for stamping scans and deciding, when the server's
        clock is believable (``[run] clock_bound``); without an API client (gate check
        offline) the offset adopted last applies."""
        from scanner.journal.offset import ServerOffset

        # Its last save needs the journal, which was built first and so closes after it.
        return self._closing(ServerOffset(self.journal, self.measured_offset, clock=self.clock,
                                          bound=self.config.run.clock_bound),
                             ServerOffset.close)

    @part
    def gatekeeper(self) -> Gatekeeper:
        from scanner.gatekeeper import Gatekeeper

        cfg = self.config
        deadline = cfg.lookup.deadline_ms / 1000
        mesh, link, book = self.mesh_store, self.mesh_link, self.venue_book
        history = None
        if mesh is not None:
            from scanner.mesh.history import MergedHistory

            history = MergedHistory(self.journal, mesh)
        return self._closing(Gatekeeper(
            self.store, self.journal, self.policy_source, history=history,
            journaled=link.notify if link is not None else None,
            orders=book.orders if book is not None else None,
            lookup=self._lookup() if deadline > 0 else None, lookup_deadline=deadline,
            gate_id=cfg.gate_id, clock=self.clock, clock_offset=self.clock_offset,
            clock_trusted=self.clock_offset.trusted, zones=self.zones),
            Gatekeeper.close)

    @part
    def zones(self) -> ZoneBook:
        """The gate's zone book (``scanner.zones``): its zone (``zone``, else /me's
        scanZoneId, else the default zone), the ledgers saved, and every granted scan held
        (the mesh's records, and the journal's own scans not stamped yet)."""
        from scanner.clock import local_zone
        from scanner.zones.book import ZoneBook, seed

        cfg, mesh = self.config, self.mesh_store
        me = self.store.settings() or {}
        scan_zone = me.get("scanZoneId") if isinstance(me.get("scanZoneId"), str) else None
        saved = mesh.ledgers() if mesh is not None else []
        own = next((x for x in saved if x.gate == cfg.gate_id), None)
        # With a mesh, a gate without a saved ledger first hears whether the broker holds
        # one of its own (scanner.mesh.zoning); alone, it is its own minter.
        book = ZoneBook(cfg.zones, cfg.gate_id, cfg.zone or scan_zone, tz=local_zone(),
                        minter=cfg.mesh.minter or None, ledger=own,
                        ready=mesh is None or own is not None)
        seed(book, saved, mesh.records() if mesh is not None else [], self.journal.entries())
        return book

    @part
    def mesh_store(self) -> MeshStore | None:
        """Every gate's records in the journal database; None without ``[mesh]``. Peers'
        records are written through a second engine on the same database without a full
        fsync per commit (their origin replays them if a power cut loses any)."""
        if not self.config.mesh.url:
            return None
        from scanner.databases import make_journal_engine
        from scanner.mesh.peer_journal import MeshStore

        url = self.config.journal_db_url
        engine = self.journal_engine
        if ":memory:" not in url:  # an in-memory database has one connection's worth
            engine = self._closing(make_journal_engine(url, synchronous="NORMAL"),
                                   lambda engine: engine.dispose())
        return self._closing(MeshStore(self.journal_engine, self.config.gate_id,
                                       peer_engine=engine), MeshStore.close)

    @part
    def mesh_link(self) -> Link | None:
        """The mesh worker (not started: the daemon's Supervisor starts and stops it, as
        any worker); None without ``[mesh]``. Reading the key and credentials here makes a
        bad file one ConfigError at start."""
        store = self.mesh_store
        if store is None:
            return None
        from scanner.mesh.broker_settings import MeshSettings
        from scanner.mesh.link import Link
        from scanner.mesh.message import Codec
        from scanner.mesh.paho_broker import PahoBroker
        from scanner.mesh.zoning import ZoneMesh

        settings = MeshSettings.from_config(self.config.mesh)
        zones = ZoneMesh(self.zones, Codec(settings.key), wall=self.clock,
                         save=store.save_ledgers)
        link = Link(settings, store, PahoBroker(settings, f"gate-{store.gate_id}"),
                    zones=zones)
        return self._closing(link, Link.close)

    @part
    def venue_book(self) -> CommandBook | None:
        """The supervisors' commands this gate obeys (``scanner.venue``), read back from the
        journal database, for its place: its name and its zone (the zone book's) with the
        zones around it; None without ``[mesh] supervisor_key``."""
        mesh = self.config.mesh
        if not mesh.supervisor_key:
            return None
        from scanner.venue.applied import VenueStore
        from scanner.venue.fold import Place
        from scanner.venue.in_force import CommandBook
        from scanner.venue.signing import Verifier

        verifier = Verifier.from_file(mesh.supervisor_key)
        store = self._closing(VenueStore(self.journal_engine), VenueStore.close)
        # A command for a zone reaches the gates of that zone and of the zones inside it.
        zone = self.zones.zone
        return CommandBook(store, verifier,
                           Place(self.config.gate_id, self.config.zones.path(zone)))

    @part
    def venue_worker(self) -> VenueWorker | None:
        """The gate's connection for venue commands (not started: the supervisor runs it);
        None without a book or without ``[mesh] url``."""
        book = self.venue_book
        if book is None or not self.config.mesh.url:
            return None
        from scanner.mesh.broker_settings import MeshSettings
        from scanner.mesh.paho_broker import PahoBroker
        from scanner.venue.channel import VenueWorker

        gate_id = self.config.gate_id
        settings = MeshSettings.from_config(self.config.mesh)
        worker = VenueWorker(book, PahoBroker(settings, f"gate-{gate_id}-venue"), gate_id,
                             heartbeat_timeout=self.config.run.heartbeat_timeout)
        return self._closing(worker, VenueWorker.close)

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
        from scanner.read.registry import open_source

        return open_source(config, on_status, self.sources)

    def pipeline(self, config: ReaderConfig, sink: Callable[[Payload], R], *,
                 on_result: Callable[[Payload, R], object] | None = None,
                 on_reject: Callable[[Rejected], object] | None = None,
                 on_status: StatusFn | None = None, inline: bool = False) -> Pipeline[R]:
        """One reader's pipeline: its source, its hygiene, then ``sink`` (say, a
        ``gatekeeper.check`` in the reader's direction). ``close()`` stops it. ``inline``:
        see ``scanner.read.pipeline``."""
        from scanner.read.hygiene import Hygiene
        from scanner.read.pipeline import Pipeline

        source = self.reader(config, on_status)
        with self._lock:
            return self._closing(
                Pipeline([source], Hygiene(config.max_length, config.dedup_window), sink,
                         on_result=on_result, on_reject=on_reject, on_status=on_status,
                         inline=inline),
                Pipeline.stop)

    # -- the daemon (gate run) -----------------------------------------------------------

    @part
    def clock_guard(self) -> ClockGuard:
        """Which clock the gate believes, said in status, STATUS and the log: the device
        clock against the newest journal entry and the server time adopted last (not the
        sync bookkeeping, which is whatever the server said), the server's against both."""
        from scanner.clock_guard import ClockGuard

        offset = self.clock_offset
        return ClockGuard(offset.state, offset.refresh)

    @part
    def outputs(self) -> GpioOutputs:
        """The turnstile's pins; closed last, leaving the relay closed (or held open under
        fire alarm)."""
        from scanner.act.pins import open_outputs_or_fail

        outputs = open_outputs_or_fail(self.config.outputs)
        return self._closing(outputs, lambda outputs: outputs.close())

    @part
    def act(self) -> ActStage:
        """Journaled decisions -> relay, lights, buzzer, journal marks, then the fan-out
        (kiosk, mesh) through bounded queues."""
        from scanner.act import ActStage

        outputs, book = self.outputs, self.venue_book
        if book is not None:  # free egress holds the relay open as the fire alarm does
            from scanner.decide.orders import Mode

            book.on_change(lambda orders: outputs.hold_egress(orders.mode is Mode.EGRESS))
        return ActStage(outputs, self.journal,
                        passage_timeout=self.config.outputs.passage_timeout,
                        alarms=lambda reason: self.desk.alarm(reason),
                        passage_held_after=self.config.outputs.passage_held_after)

    @part
    def desk(self) -> Desk:
        """Held tickets, overrides, manual releases and passage alarms, journaled with who
        and why; the wired confirm button answers the oldest held ticket."""
        from scanner.supervise import Desk, Holds

        link, book = self.mesh_link, self.venue_book
        desk = Desk(self.journal, self.gatekeeper, self.act.submit,
                    Holds(self.config.policy.confirm_timeout), release=self.act.release,
                    journaled=link.notify if link is not None else None,
                    orders=book.orders if book is not None else None)
        self.outputs.when_confirm = desk.button
        return desk

    @part
    def lanes(self) -> dict[str, Lane]:
        """One decision lane per ``lane`` name of the readers."""
        from scanner.run.lane import Lane

        keeper, desk = self.gatekeeper, self.desk
        names = dict.fromkeys(reader.lane for reader in self.config.readers)
        lanes = {name: Lane(name, keeper, desk.submit,
                            heartbeat_timeout=self.config.run.heartbeat_timeout,
                            interrupted=desk.holds.close)
                 for name in names}
        for lane in lanes.values():  # a lane waiting on a held ticket is alive
            lane.submit = partial(desk.submit, beat=lane.beat)
        return lanes

    @part
    def reader_workers(self) -> list[ReaderWorker]:
        """One worker per ``[[readers]]`` entry, each with its own pipeline and direction."""
        from scanner.run.readers import ReaderWorker, reader_name, stops_promptly

        lanes = self.lanes

        def pipeline(config: ReaderConfig, sink: Callable[[Payload], bool],
                     on_reject: Callable[[Rejected], object],
                     on_status: StatusFn) -> Pipeline[bool]:
            return self.pipeline(config, sink, on_reject=on_reject, on_status=on_status,
                                 inline=stops_promptly(config))

        return [ReaderWorker(reader_name(config, i), config, lanes[config.lane], pipeline,
                             heartbeat_timeout=self.config.run.heartbeat_timeout)
                for i, config in enumerate(self.config.readers, 1)]

    @part
    def scheduler(self) -> Scheduler:
        """``gate run``'s jobs on APScheduler, safe from clock jumps: sync (every ``/me``
        ticketSyncInterval unless ``[run] sync_interval``), device settings, upload, and
        with ``[journal] backup_dir`` the daily journal copy."""
        from scanner.run.jobs import settings_job, sync_interval

        cfg = self.config
        backup = self._backup_job()  # a journal with no file to copy fails before the store
        store, guard = self.store, self.clock_guard
        every = sync_interval(cfg.run.sync_interval, store.settings(), cfg.sync.interval)

        def jobs(scheduler: Callable[[], Scheduler]) -> list[Job]:
            def retime(me: dict[str, object]) -> None:
                scheduler().retime("sync", sync_interval(cfg.run.sync_interval, me, every))

            return [self._sync_job(scheduler, every, on_synced=guard.refresh,
                                   syncer=self.run_syncer),
                    settings_job(self.api, store.save_settings, retime,
                                 report=self.reachability.report),
                    self._upload_job(), *([backup] if backup else [])]

        return self._scheduler("scheduler", jobs)

    def loop(self, name: str) -> Supervisor:
        """``gate sync`` or ``gate upload`` without ``--once``: the job ``gate run`` runs as
        ``name``, alone in a scheduler of its own, every ``sync.interval`` or
        ``upload.interval``, supervised as ``gate run``'s workers are."""
        from scanner.run.supervisor import Supervisor

        jobs: dict[str, Callable[[Callable[[], Scheduler]], list[Job]]] = {
            "sync": lambda scheduler: [self._sync_job(scheduler, self.config.sync.interval)],
            "upload": lambda _scheduler: [self._upload_job()],
        }
        return Supervisor([self._scheduler(name, jobs[name])], self.run_notifier())

    def _sync_job(self, scheduler: Callable[[], Scheduler], every: float,
                  on_synced: Callable[[], object] = lambda: None, *,
                  syncer: RunsSync | None = None) -> Job:
        """The one sync job (``syncer`` or, by default, ``gate sync``'s own in-process
        one); a stop of its scheduler ends a full sync after its page."""
        from scanner.run.jobs import sync_job

        return sync_job(syncer or self.syncer, lambda: scheduler().stopping, every,
                        on_synced=on_synced, report=self.reachability.report)

    def _upload_job(self) -> Job:
        from scanner.run.jobs import upload_job

        return upload_job(self.outbox, self.config.upload.interval,
                          report=self.reachability.report)

    def _backup_job(self) -> Job | None:
        """The daily copy of the journal to ``[journal] backup_dir``; None without one. A
        journal with no file to copy (on a database server) is a ConfigError at start."""
        cfg = self.config.journal
        if not cfg.backup_dir:
            return None
        from pathlib import Path

        from scanner.clock import local_zone
        from scanner.config import parse_time_of_day
        from scanner.db.engine import sqlite_file
        from scanner.journal.backup_dir import BackupPlan, DailyBackup
        from scanner.run.jobs import backup_job

        path = sqlite_file(self.config.journal_db_url)
        if path is None:
            raise ConfigError("journal.backup_dir: the journal has no file to copy (a "
                              "database server backs up its own databases)")
        plan = BackupPlan(Path(cfg.backup_dir).expanduser(), cfg.backup_keep,
                          parse_time_of_day(cfg.backup_at), cfg.backup_same_disk)
        return backup_job(DailyBackup(path, self.config.gate_id, plan, clock=self.clock,
                                      zone=local_zone()))

    def _scheduler(self, name: str,
                   jobs: Callable[[Callable[[], Scheduler]], list[Job]]) -> Scheduler:
        """A scheduler over ``jobs(scheduler)``: jobs are built before the scheduler they
        run in, and some need it (its stop event, a retime)."""
        from scanner.run.schedule import DEFAULT_TICK, Scheduler

        run = self.config.run
        box: list[Scheduler] = []
        built = jobs(lambda: box[0])
        # The scheduler proves it is alive every tick: well inside its heartbeat timeout.
        box.append(Scheduler(built, name=name, heartbeat_timeout=run.heartbeat_timeout,
                             tick=min(DEFAULT_TICK, run.heartbeat_timeout / 4),
                             wall=self.clock))
        return box[0]

    @part
    def reachability(self) -> Reachability:
        """Whether the vivenu API answered the last job that asked it (the online badge)."""
        from scanner.kiosk.parts import Reachability

        return Reachability()

    def run_notifier(self) -> Notifier:
        """What tells systemd: the one given, else systemd's own (from ``NOTIFY_SOCKET``),
        with ``[run] watchdog`` as its period when set."""
        from scanner.run.notify import Notifier

        notifier = self._notifier or Notifier.from_env()
        if self.config.run.watchdog is not None and notifier.enabled:
            notifier.watchdog_period = self.config.run.watchdog
        return notifier
