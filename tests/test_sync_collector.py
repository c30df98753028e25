"""The collector settings of a syncing process: a page's documents die young without a
collection, while reference cycles are still collected on their own."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from scanner.config import MAX_PAGE_SIZE
from scanner.sync.collector import settle_for_sync


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations collected while the test runs, under the sync's settings; the
    collector's own settings are back afterwards."""
    threshold = gc.get_threshold()
    seen: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    settle_for_sync()
    gc.collect()
    gc.callbacks.append(note)
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _page() -> bytes:
    doc = {"_id": "t", "barcode": "b", "priceCategory": {"name": "x", "price": 1},
           "entry": ["e1", "e2"], "status": "VALID"}
    return orjson.dumps({"docs": [doc] * MAX_PAGE_SIZE, "total": MAX_PAGE_SIZE})


def test_a_page_of_documents_alive_together_sets_off_no_collection(
        collections: list[int]) -> None:
    body = _page()
    for _ in range(20):  # pages one after the other, each freed before the next
        page = orjson.loads(body)
        rows = [tuple(doc.items()) for doc in page["docs"]]
        del page, rows
    assert collections == []


def test_reference_cycles_are_still_collected_without_an_explicit_collect(
        collections: list[int]) -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    first = Node()
    gone = weakref.ref(first)
    del first
    for _ in range(3 * 20_000):
        Node()  # garbage only the collector frees
    assert gone() is None
    assert 0 in collections
