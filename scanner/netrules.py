"""Which hosts count as this machine: the one loopback rule every setting and server uses.

Plain http (the API, the mesh), a kiosk without a PIN and the simulator's control routes
are all allowed only to loopback, so they must agree on what loopback is: a config that
says ``LOCALHOST`` must not pass one check and fail the next.
"""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback(host: str) -> bool:
    """True for localhost (any case, with or without the root dot), 127.0.0.0/8 and ::1
    (bracketed or not, as a URL or a Host header writes it)."""
    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
