"""Who may change the gate's state from the kiosk page when it is reachable beyond loopback.

A per-gate PIN, stored as a salted scrypt hash in ``pin_file`` (mode 0600), compared in
constant time. Repeated failures from one client address lock that address out for a while
(a four-digit PIN falls to a script in minutes otherwise). A good PIN yields a session
token in an HttpOnly, SameSite=Strict cookie; sessions live in memory, so a restart of the
gate logs stewards out, which is the safe direction.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from scanner.errors import ConfigError
from scanner.secret_file import SecretFileMissing, read_secret_text

MIN_PIN_LENGTH = 4
# scrypt cost: about 50 ms and 16 MiB on a Pi 4, so a stolen pin_file is slow to brute-force.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0    # seconds in which MAX_FAILURES failures lock an address out
LOCKOUT_SECONDS = 300.0
SESSION_SECONDS = 12 * 3600.0  # one shift
COOKIE = "gate_session"


def _derive(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


def hash_pin(pin: str) -> str:
    """The line ``pin_file`` holds: ``scrypt$n$r$p$salt$hash`` (hex)."""
    if len(pin) < MIN_PIN_LENGTH or not pin.isprintable():
        raise ValueError(f"a PIN needs at least {MIN_PIN_LENGTH} printable characters")
    salt = secrets.token_bytes(16)
    digest = _derive(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def write_pin_file(path: str | os.PathLike[str], pin: str) -> None:
    """Write the hash atomically, readable by its owner only."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(hash_pin(pin) + "\n")
    os.replace(tmp, target)


class PinHash:
    """A parsed ``pin_file`` line."""

    def __init__(self, line: str, source: str = "pin_file") -> None:
        try:
            scheme, n, r, p, salt, digest = line.strip().split("$")
            if scheme != "scrypt":
                raise ValueError(scheme)
            self._params = (int(n), int(r), int(p))
            self._salt = bytes.fromhex(salt)
            self._digest = bytes.fromhex(digest)
        except ValueError:
            raise ConfigError(f"{source}: not a PIN hash written by `gate kiosk set-pin`") \
                from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PinHash | None:
        """The hash in ``path``, or None when no PIN was set."""
        try:
            return cls(read_secret_text(path, "web.pin_file"), str(path))
        except SecretFileMissing:
            return None

    def matches(self, pin: str) -> bool:
        n, r, p = self._params
        return hmac.compare_digest(_derive(pin, self._salt, n, r, p), self._digest)


class Lockout:
    """Failed logins per client address; MAX_FAILURES in FAILURE_WINDOW lock it out."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        with self._lock:
            return max(0.0, self._locked_until.get(address, 0.0) - self._now())

    def failed(self, address: str) -> None:
        now = self._now()
        with self._lock:
            recent = self._failures.setdefault(address, deque())
            recent.append(now)
            while recent and recent[0] < now - FAILURE_WINDOW:
                recent.popleft()
            if len(recent) >= MAX_FAILURES:
                self._locked_until[address] = now + LOCKOUT_SECONDS
                recent.clear()

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


class Sessions:
    """Session tokens handed out after a good PIN, each valid for SESSION_SECONDS."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def open(self) -> str:
        token = secrets.token_urlsafe(32)
        now = self._now()
        with self._lock:
            self._expiry = {t: at for t, at in self._expiry.items() if at > now}
            self._expiry[token] = now + SESSION_SECONDS
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            # Every live token is compared, so timing tells nothing about which one was close.
            found = False
            for known, at in self._expiry.items():
                if hmac.compare_digest(known, token) and at > self._now():
                    found = True
            return found
