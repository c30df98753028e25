"""How a gate reaches the venue's broker: the ``[mesh]`` settings, its secrets read once.

The venue key and the broker credentials come from files of their own (never the TOML),
read through ``scanner.secret_file`` so a bad file is one ConfigError at start; a bad URL is
a ``MeshError`` when the link is built, not a worker that dies later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from scanner.config import Secret
from scanner.errors import ConfigError, GateError
from scanner.mesh.message import load_key
from scanner.secret_file import check_secret_file, read_secret_text

ANTI_ENTROPY_INTERVAL = 5.0   # ask again for what is still missing


class MeshError(GateError, ConnectionError):
    """The link cannot be set up (a bad URL, an unreadable credential or certificate)."""


@dataclass(frozen=True, slots=True)
class MeshSettings:
    url: str                          # mqtt://host:1883 or mqtts://host:8883
    key: bytes                        # the venue's HMAC key
    username: str | None = None
    password: Secret | None = None
    ca_file: str | None = None
    cert_file: str | None = None      # client certificate (mqtts)
    cert_key_file: str | None = None
    keepalive: int = 10
    reconnect_min: float = 0.5
    # A LAN broker back after a split is found within this: the venue's convergence waits
    # for its last gate back (a refused connection every half second costs nothing).
    reconnect_max: float = 0.5
    anti_entropy_interval: float = ANTI_ENTROPY_INTERVAL

    def __repr__(self) -> str:
        return f"MeshSettings(url={self.url!r}, username={self.username!r})"

    @classmethod
    def from_config(cls, mesh: Any, *,
                    credentials_key: str = "mesh.credentials_file") -> MeshSettings:
        """From any object with the ``[mesh]`` attributes (url, key_file, credentials_file,
        ca_file, cert_file, client_key_file); the environment's override of the url is
        already in ``url`` (``scanner.config`` applies it). ``credentials_key`` names the
        credentials' setting in errors."""
        username = password = None
        creds = getattr(mesh, "credentials_file", None)
        if creds:
            username, password = read_credentials(creds, credentials_key)
        cert_key = getattr(mesh, "client_key_file", None)
        if cert_key:  # the TLS library reads it; the file is checked like every secret
            check_secret_file(cert_key, "mesh.client_key_file")
        return cls(url=mesh.url, key=load_key(mesh.key_file), username=username,
                   password=password, ca_file=getattr(mesh, "ca_file", None),
                   cert_file=getattr(mesh, "cert_file", None), cert_key_file=cert_key)


def read_credentials(path: str, key: str = "mesh.credentials_file") -> tuple[str, Secret]:
    """``username:password`` on the first line of its own private file (never in the TOML)."""
    text = read_secret_text(path, key)
    username, sep, password = (text.splitlines() or [""])[0].partition(":")
    if not sep or not username:
        raise ConfigError(f"{key}: the first line must be username:password")
    return username, Secret(password)


def check_url(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise MeshError(f"mesh.url must be mqtt://host[:port] or mqtts://...: {url!r}")
    return parts
