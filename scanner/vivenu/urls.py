"""Where requests go: the API root, the https-only rule, and path segment quoting."""

from __future__ import annotations

from urllib.parse import quote

from scanner.errors import InsecureUrl
from scanner.netrules import api_url_problem

API_PREFIX = "/api/accessusers"


def api_root(base_url: str) -> str:
    """``https://vivenu.com`` -> ``https://vivenu.com/api/accessusers``; refuses plain http.

    The token travels in a header on every request, so plain http would hand it to anyone
    on the path; only the simulator on this machine may be reached without TLS. The rule is
    the configuration's own (``scanner.netrules.api_url_problem``), so a client built in code
    refuses what ``load_config`` refuses, and never echoes the URL either.
    """
    problem = api_url_problem(base_url)
    if problem is not None:
        raise InsecureUrl(f"api.url: {problem}")
    return base_url.strip().rstrip("/") + API_PREFIX


def segment(value: str) -> str:
    """One path segment, fully quoted: a barcode may hold '/', '#', '?', spaces or unicode."""
    return quote(value, safe="")
