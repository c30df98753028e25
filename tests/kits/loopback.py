"""Requests to the servers the tests start on loopback (no tests here): httpx's own calls,
without the CA bundle.

Every ``httpx.get`` (and every ``httpx.Client``) builds a TLS context and loads the CA
bundle into it, tens of milliseconds of CPU, although a plain ``http://`` request on
loopback never makes a handshake; a test polling ``/healthz`` that way spends a core on it.
These take the same arguments and make the same requests, each on a connection of its own
as before, with no TLS context loaded.
"""

from __future__ import annotations

from typing import Any

import httpx


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, verify=False, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, verify=False, **kwargs)


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, verify=False, **kwargs)


def stream(method: str, url: str, **kwargs: Any) -> Any:
    """``httpx.stream``: a context manager giving the response."""
    return httpx.stream(method, url, verify=False, **kwargs)


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(verify=False, **kwargs)
