"""A throwaway mosquitto on a free loopback port, for ``gate bench mesh`` and the tests.

It uses the shipped ACL (``deploy/mosquitto/gate-scanner.acl``) and a password file for
``users`` (password ``pw-<user>``); without users it takes anonymous clients. ``stop()``
kills it with SIGKILL, as a split LAN would; ``start()`` brings it back on the same port.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from scanner.errors import GateError
from scanner.netrules import free_port

ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "gate-scanner.acl"
SHIPPED_CONF = ACL_FILE.with_name("mosquitto.conf")
# What the throwaway broker decides itself: where it listens, who it lets in, what it keeps.
_LOCAL_KEYS = {"per_listener_settings", "allow_anonymous", "password_file", "acl_file",
               "listener", "protocol", "cafile", "certfile", "keyfile", "tls_version",
               "require_certificate", "persistence", "persistence_location"}


class BrokerMissing(GateError, FileNotFoundError):
    """mosquitto is not installed (``deploy/bootstrap.sh --test`` installs it)."""


def password(user: str) -> str:
    return f"pw-{user}"


def shipped_settings() -> list[str]:
    """The venue config's lines other than listener, TLS, users and persistence: its
    limits and queues, as a test runs them."""
    lines = (line.strip() for line in SHIPPED_CONF.read_text().splitlines())
    return [line for line in lines
            if line and not line.startswith("#") and line.split()[0] not in _LOCAL_KEYS]


class LocalBroker:
    """``shipped``: with the shipped config's limits and queues instead of the roomy ones
    the benchmarks use."""

    def __init__(self, folder: Path, users: list[str] | None = None, *,
                 shipped: bool = False) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.binary).exists():
            raise BrokerMissing("mosquitto is not installed: apt-get install mosquitto")
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        tuning = shipped_settings() if shipped else [
            "set_tcp_nodelay true", "max_queued_messages 1000000", "max_inflight_messages 1000"]
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", *tuning,
                 # Run as whoever runs us: mosquitto started by root would switch to its own
                 # user, which cannot read this folder.
                 f"user {getpass.getuser()}", "log_dest none"]
        if users:
            passwd = folder / "passwd"
            passwd.touch(mode=0o600)
            tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            for user in users:
                subprocess.run([tool, "-b", str(passwd), user, password(user)], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}",
                      f"acl_file {ACL_FILE}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> LocalBroker:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._listening():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise GateError(f"mosquitto did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
