"""Client-made scan ids: made before anything else happens to a read, so every later step
(journal insert, upload retry, audit) can refer to the scan and be repeated safely."""

from __future__ import annotations

import os
import time
import uuid

_RAND_A_MASK = (1 << 12) - 1
_RAND_B_MASK = (1 << 62) - 1


def new_scan_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Time-ordered so an audit sorted by id reads in scan order and the unique index grows at
    its right edge; random enough that two gates never collide without coordinating.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76                                  # version 7
    value |= ((rand >> 62) & _RAND_A_MASK) << 64
    value |= 0b10 << 62                                 # RFC 4122 variant
    value |= rand & _RAND_B_MASK
    return str(uuid.UUID(int=value))
