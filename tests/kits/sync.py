"""Shared parts of the sync tests (no tests here): an in-memory model of vivenu's ticket
listing for property tests, and helpers to compare a store with the simulator."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scanner.config import Secret
from scanner.databases import make_engine
from scanner.sim import Faults, SimServer, World
from scanner.store.tickets import TicketStore
from scanner.tickets import Ticket, parse_ticket, utc_iso
from scanner.vivenu.client import Parse, TicketPage, VivenuClient

EVENT = "ev-model"
TOKEN = "sim-token"
MODEL_START = datetime(2030, 1, 1, tzinfo=UTC)


def model_doc(index: int, updated: str) -> dict[str, Any]:
    return {"_id": f"t{index:05d}", "barcode": f"BC{index:08d}", "eventId": EVENT,
            "status": "VALID", "ticketTypeId": "tt-1", "ticketName": "GA",
            "sellerId": "seller", "createdAt": updated, "updatedAt": updated}


class ModelApi:
    """vivenu's listing semantics in memory, driven step by step.

    ``from <= updatedAt < until``, sorted by (updatedAt, _id); after each page it serves,
    the next batch of ``script`` mutations is applied, as the simulator's mutate_per_page
    does. Its clock advances one millisecond per mutation, so a changed ticket always
    moves past every pinned ``until``.
    """

    clock_offset = 0.0

    def __init__(self, n: int, *, ties: int = 3) -> None:
        self.now = MODEL_START
        self._lock = threading.Lock()
        # Base tickets share timestamps in groups of ``ties``: the _id tie-break matters.
        self.docs: dict[str, dict[str, Any]] = {}
        for i in range(n):
            doc = model_doc(i, utc_iso(MODEL_START - timedelta(seconds=3600 - i // ties)))
            self.docs[doc["_id"]] = doc
        self.sold = n
        self.deleted: set[str] = set()
        self.script: list[list[tuple[str, int]]] = []
        self.requests: list[tuple[int, int, str | None, str | None]] = []
        # True: stop changing tickets at the first windowed request (a delta), so the
        # script's changes all happen while a full sync pages.
        self.only_during_full = False

    def clock(self) -> datetime:
        """The server's clock; time passes whenever someone looks, as it does for real,
        so a window pinned at "now" never ends exactly on the stamp of the last change."""
        return self._advance()

    def _advance(self) -> datetime:
        with self._lock:  # callers may be on any thread
            self.now += timedelta(milliseconds=1)
            return self.now

    def me(self) -> dict[str, Any]:
        return {"deviceSettings": {"scanConfig": {}}}

    def events(self) -> list[dict[str, str]]:
        return [{"_id": EVENT, "name": "Model event"}]

    def ticket_page(self, event_id: str, *, top: int, skip: int, from_: str | None = None,
                    until: str | None = None, ahead: int | None = None,
                    parse: Parse = parse_ticket) -> TicketPage:
        # ``ahead`` is a download hint; this model answers each request when it comes.
        self.requests.append((skip, top, from_, until))
        rows = sorted((d for d in self.docs.values()
                       if (from_ is None or d["updatedAt"] >= from_)
                       and (until is None or d["updatedAt"] < until)),
                      key=lambda d: (d["updatedAt"], d["_id"]))
        page = TicketPage([parse(d)[0] for d in rows[skip:skip + top]], len(rows))
        if from_ is not None and self.only_during_full:
            self.script.clear()
        if self.script:
            for kind, pick in self.script.pop(0):
                self.mutate(kind, pick)
        return page

    def _stamp(self) -> str:
        return utc_iso(self._advance())

    def mutate(self, kind: str, pick: int) -> None:
        if kind == "sell" or not self.docs:
            doc = model_doc(self.sold, self._stamp())
            self.sold += 1
            self.docs[doc["_id"]] = doc
            return
        ticket_id = sorted(self.docs)[pick % len(self.docs)]
        if kind == "delete":
            del self.docs[ticket_id]
            self.deleted.add(ticket_id)
            return
        changes = {"cancel": {"status": "INVALID"},
                   "change": {"seat": str(random.Random(pick).randrange(1, 99))}}[kind]
        self.docs[ticket_id] = {**self.docs[ticket_id], **changes, "updatedAt": self._stamp()}


def store_docs(store: TicketStore, event_id: str | None = None) -> dict[str, dict[str, Any]]:
    """The store's tickets in vivenu's shape, by id."""
    return {t.id: t.to_api() for t in store.iter_tickets(event_id)}


def server_docs(docs: Any) -> dict[str, dict[str, Any]]:
    """Server documents normalized the way the store keeps them, by id."""
    return {d["_id"]: Ticket.from_api(d).to_api() for d in docs}


@pytest.fixture(name="sim")
def sim_fixture(world: World) -> Iterator[SimServer]:
    """The simulator serving the test module's ``world`` fixture on a free loopback port,
    fault switches all off (import this fixture into the module)."""
    with SimServer(world, Faults(seed=world.seed), token=TOKEN) as server:
        yield server


@pytest.fixture(name="api")
def client_fixture(sim: SimServer) -> Iterator[VivenuClient]:
    """The real client of the ``sim`` fixture, with quick retries."""
    client = VivenuClient(sim.url, Secret(TOKEN), backoff=0.01, retries=8)
    yield client
    client.close()


@pytest.fixture(name="store")
def store_fixture(tmp_path: Path) -> Iterator[TicketStore]:
    """A ticket store on a real SQLite file."""
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    yield TicketStore(engine)
    engine.dispose()
