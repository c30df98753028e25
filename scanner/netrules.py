"""Which hosts count as this machine, and which URLs a setting may name: the one loopback
rule every setting and server uses, and the URL rule of the API and the mesh.

Plain http (the API, the mesh), a kiosk without a PIN and the simulator's control routes
are all allowed only to loopback, so they must agree on what loopback is: a config that
says ``LOCALHOST`` must not pass one check and fail the next. The configuration checks
``api.url`` with ``api_url_problem`` and the vivenu client refuses what it refuses, so a
client built in code cannot reach further than a loaded configuration.

Below the configuration: this module imports nothing of the scanner.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_LOWEST_PORT = 20000  # free ports are picked between this and the ephemeral range


def free_port() -> int:
    """A TCP port free now on every address, for a listener about to start (tests,
    benchmarks, a throwaway broker). Below the ephemeral range: a port the kernel hands out
    (bind to port 0) is one an outgoing connection of another process can take before the
    listener binds it, which a suite of parallel tests did."""
    try:
        top = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        top = 32768
    top = max(top, _LOWEST_PORT + 1000)
    while True:
        port = random.randrange(_LOWEST_PORT, top)
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port


def is_loopback(host: str) -> bool:
    """True for localhost (any case, with or without the root dot), 127.0.0.0/8 and ::1
    (bracketed or not, as a URL or a Host header writes it), and 127.0.0.0/8 as an IPv6
    socket bound to "::" sees it (::ffff:127.0.0.1)."""
    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


_HIDDEN = "(value not shown: it may hold a token)"


def url_problem(value: Any, schemes: tuple[str, ...], plain: str) -> str | None:
    """A URL with one of ``schemes``, no userinfo, no query; ``plain`` only to loopback.

    The value itself is never echoed: an operator who pastes the token in the wrong place
    must not find it in the log. Only the host is named, which is not a secret.
    """
    example = f"{schemes[-1]}://host"
    try:  # urlsplit itself refuses an unclosed IPv6 bracket
        parts = urlsplit(value.strip())
        host, _port = parts.hostname, parts.port
    except ValueError:
        return f"expected a URL such as {example} {_HIDDEN}"
    if "@" in parts.netloc:
        return f"must not carry a user or password (user:secret@) {_HIDDEN}"
    if parts.query or parts.fragment:
        return f"must not carry a query or fragment {_HIDDEN}; give the base URL only"
    scheme = parts.scheme.lower()
    if scheme not in schemes or not host:
        return f"expected an {' or '.join(s + '://' for s in schemes)} URL {_HIDDEN}"
    if scheme == plain and not is_loopback(host):
        return (f"plain {plain}:// is allowed only to loopback, not to {host!r}; "
                f"use {schemes[-1]}://")
    return None


def api_url_problem(value: Any) -> str | None:
    return url_problem(value, ("http", "https"), "http")


def mesh_url_problem(value: Any) -> str | None:
    """Empty: no mesh. Plain mqtt:// may reach a LAN broker; MeshConfig.problem refuses it
    when credentials would travel in clear."""
    return url_problem(value, ("mqtt", "mqtts"), "") if value else None
