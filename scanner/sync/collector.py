"""The garbage collector's settings for a process whose work is syncing (``gate sync``).

A page is a thousand documents of a few containers each, all alive until the page is
written. At CPython's default young threshold (700 objects allocated and not yet freed)
every page set off several young collections that freed nothing and promoted the page's
documents into the older generations, whose collections then traversed them again. The
threshold counts objects still alive, not allocations: a page freed before the next one
never reaches it, while garbage that only the collector frees (reference cycles) piles
up and starts a collection as before, so memory stays bounded.
"""

from __future__ import annotations

import gc

# Above the containers of one page (MAX_PAGE_SIZE documents) and what the sync keeps
# meanwhile, so a page's objects die young without a collection.
YOUNG_THRESHOLD = 20_000


def settle_for_sync() -> None:
    """Call once the process's parts are built: everything alive so far (modules, the
    gate's parts, which live as long as the process) is frozen out of the collector's
    sight, and young collections wait for ``YOUNG_THRESHOLD`` surviving objects."""
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), older, oldest)
