"""Where requests go: the API root, the https-only rule, and path segment quoting."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote, urlsplit

from scanner.errors import InsecureUrl

API_PREFIX = "/api/accessusers"


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only hosts plain http may reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_root(base_url: str) -> str:
    """``https://vivenu.com`` -> ``https://vivenu.com/api/accessusers``; refuses plain http.

    The token travels in a header on every request, so plain http would hand it to anyone
    on the path; only the simulator on this machine may be reached without TLS.
    """
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise InsecureUrl(f"api.url: expected an https:// URL, got {base_url!r}")
    if scheme == "http" and not is_loopback(parts.hostname):
        raise InsecureUrl(f"api.url: plain http is allowed only to loopback, not to "
                          f"{parts.hostname!r}; use https://")
    return base_url.strip().rstrip("/") + API_PREFIX


def segment(value: str) -> str:
    """One path segment, fully quoted: a barcode may hold '/', '#', '?', spaces or unicode."""
    return quote(value, safe="")
