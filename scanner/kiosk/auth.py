"""Who may change the gate's state from the kiosk page when it is reachable beyond loopback.

Two roles: the steward (``pin_file``) and the supervisor (``supervisor_pin_file``), who
may also override a denial. Each a per-gate PIN, stored as a salted scrypt hash in its
file (mode 0600), compared in constant time. Repeated failures from one client address
lock that address out for a while, and failures over all addresses are budgeted too (a
four-digit PIN falls to a script in minutes otherwise); see ``Lockout``. A good PIN yields a session
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
from collections.abc import Callable, Mapping
from pathlib import Path

from scanner.atomic import check_replaceable
from scanner.errors import ConfigError, GateError
from scanner.netrules import is_loopback
from scanner.secret_file import SecretFileMissing, read_secret_text

MIN_PIN_LENGTH = 4
# scrypt cost: about 50 ms and 16 MiB on a Pi 4, so a stolen pin_file is slow to brute-force.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0    # seconds in which MAX_FAILURES failures lock an address out
# Over all addresses but the exempt ones: a four-digit PIN then takes days, not an hour,
# however many addresses guess.
GLOBAL_FAILURES = 10
# scrypt hashes running at once: two use 32 MiB; more would only queue for the same cores.
HASHES_AT_ONCE = 2
LOCKOUT_SECONDS = 300.0
SESSION_SECONDS = 12 * 3600.0  # one shift
COOKIE = "gate_session"  # the kiosk's; a page on another port of the host names its own
STEWARD, SUPERVISOR = "steward", "supervisor"
SUPERVISOR_PIN_KEY = "web.supervisor_pin_file"


def _derive(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


def hash_pin(pin: str, n: int = SCRYPT_N) -> str:
    """The line ``pin_file`` holds: ``scrypt$n$r$p$salt$hash`` (hex). The line keeps its
    cost ``n``, and a PIN is checked at the cost its line names."""
    if len(pin) < MIN_PIN_LENGTH or not pin.isprintable():
        raise ValueError(f"a PIN needs at least {MIN_PIN_LENGTH} printable characters")
    salt = secrets.token_bytes(16)
    digest = _derive(pin, salt, n, SCRYPT_R, SCRYPT_P)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def write_pin_file(path: str | os.PathLike[str], pin: str, n: int = SCRYPT_N) -> None:
    """Write the hash (of cost ``n``) atomically, readable by its owner only."""
    target = Path(path).expanduser()
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(hash_pin(pin, n) + "\n")
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
    def load(cls, path: str | os.PathLike[str], key: str = "web.pin_file") -> PinHash | None:
        """The hash in ``path``, or None when no PIN was set."""
        try:
            return cls(read_secret_text(path, key), str(path))
        except SecretFileMissing:
            return None

    def matches(self, pin: str) -> bool:
        if not pin.isprintable():  # no hash is of one (hash_pin): bytes not UTF-8, say
            return False
        n, r, p = self._params
        return hmac.compare_digest(_derive(pin, self._salt, n, r, p), self._digest)


class Lockout:
    """Failed logins, per client address and over all of them.

    An attempt is counted as failed BEFORE its PIN is hashed (``reserve``) and forgiven only
    once the hash matched (``succeeded``), so a burst of concurrent guesses cannot slip past
    the count while the hashes run. MAX_FAILURES in FAILURE_WINDOW lock an address out for
    LOCKOUT_SECONDS. Across addresses, at most GLOBAL_FAILURES failures per FAILURE_WINDOW
    are tested at all: many addresses guessing a few PINs each are slowed to that rate.

    The global budget would also stop the steward; it does not apply to ``local`` addresses
    (the gate's own screen, on loopback) nor to an address that logged in with the right
    PIN within SESSION_SECONDS (the steward's tablet, this shift): those keep their own
    per-address budget only.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, *,
                 local: Callable[[str], bool] = is_loopback,
                 max_failures: int = MAX_FAILURES,
                 global_failures: int = GLOBAL_FAILURES) -> None:
        self._now = monotonic
        self.local = local   # this machine's addresses: the gate's own screen
        self._max = max_failures
        self._global_max = global_failures
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._everyone: deque[tuple[float, str]] = deque()  # (when, address), counted ones
        self._known: dict[str, float] = {}                  # address -> end of its shift
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        with self._lock:
            return self._wait(address, self._now())

    def reserve(self, address: str) -> float:
        """Count one failure for ``address`` now, before its PIN is checked: 0 when it was
        counted and the PIN may be checked, else seconds to wait (nothing counted)."""
        now = self._now()
        with self._lock:
            wait = self._wait(address, now)
            if wait > 0:
                return wait
            recent = self._failures.setdefault(address, deque())
            recent.append(now)
            if len(recent) >= self._max:  # this one may still be right: `succeeded` lifts it
                self._locked_until[address] = now + LOCKOUT_SECONDS
            if not self._exempt(address, now):
                self._everyone.append((now, address))
            return 0.0

    def succeeded(self, address: str) -> None:
        """The reserved attempt had the right PIN: forget the address's failures and know
        it for a shift."""
        now = self._now()
        with self._lock:
            self._failures.pop(address, None)
            self._locked_until.pop(address, None)
            for i in range(len(self._everyone) - 1, -1, -1):
                if self._everyone[i][1] == address:
                    del self._everyone[i]
                    break
            self._known[address] = now + SESSION_SECONDS

    def _exempt(self, address: str, now: float) -> bool:
        return self.local(address) or self._known.get(address, 0.0) > now

    def _wait(self, address: str, now: float) -> float:
        self._forget(now)
        until = self._locked_until.get(address, 0.0)
        if until > now:
            return until - now
        if len(self._everyone) >= self._global_max and not self._exempt(address, now):
            return self._everyone[0][0] + FAILURE_WINDOW - now
        return 0.0

    def _forget(self, now: float) -> None:
        """Drop what fell out of its window, so many addresses cannot grow the tables."""
        horizon = now - FAILURE_WINDOW
        while self._everyone and self._everyone[0][0] <= horizon:
            self._everyone.popleft()
        for address in [a for a, r in self._failures.items() if not r or r[-1] <= horizon]:
            del self._failures[address]
        for recent in self._failures.values():
            while recent and recent[0] <= horizon:
                recent.popleft()
        for table in (self._locked_until, self._known):
            for address in [a for a, until in table.items() if until <= now]:
                del table[address]


class LoginRefused(GateError):
    """A login not granted; ``retry_after``: seconds after which trying again may help."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NoPin(LoginRefused):
    """No PIN was set for this gate."""


class Busy(LoginRefused):
    """Every hash slot is taken: the attempt was not tried (nor counted)."""


class LockedOut(LoginRefused):
    """Too many wrong PINs from this address, or from everyone."""


class WrongPin(LoginRefused):
    """The PIN did not match (and was counted)."""


class Login:
    """PIN in, session token out. At most ``hashes_at_once`` scrypt hashes (16 MiB each)
    run at once; an attempt beyond that is refused at once, never queued, so a flood costs
    neither memory nor threads."""

    def __init__(self, pin: PinHash | None, lockout: Lockout, sessions: Sessions, *,
                 hashes_at_once: int = HASHES_AT_ONCE,
                 supervisor: PinHash | None = None) -> None:
        self.pin = pin
        self.supervisor = supervisor
        self.lockout = lockout
        self.sessions = sessions
        self._slots = threading.BoundedSemaphore(hashes_at_once)

    def attempt(self, address: str, pin: str) -> str:
        """A session for the steward's or the supervisor's PIN; one lockout for both, so
        two PINs give a guesser no more tries."""
        if self.pin is None and self.supervisor is None:
            raise NoPin("no PIN set for this gate: run `gate kiosk set-pin`")
        if not self._slots.acquire(blocking=False):
            raise Busy("other PINs are being checked: try again in a second", 1.0)
        try:
            wait = self.lockout.reserve(address)
            if wait > 0:
                raise LockedOut(f"too many wrong PINs: try again in {int(wait) + 1} s", wait)
            # Both compared whatever the first gave, so timing tells not which role matched.
            roles = [role for role, known in ((SUPERVISOR, self.supervisor),
                                              (STEWARD, self.pin))
                     if known is not None and known.matches(pin)]
            if not roles:
                raise WrongPin("wrong PIN")
        finally:
            self._slots.release()
        self.lockout.succeeded(address)
        return self.sessions.open(roles[0])


class Sessions:
    """Session tokens handed out after a good PIN, each valid for SESSION_SECONDS, carried
    in the cookie named ``cookie``. A browser sends a host's cookies to every port of it:
    two pages on one host sharing a name would log each other out."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, *,
                 cookie: str = COOKIE) -> None:
        self.cookie = cookie
        self._now = monotonic
        self._expiry: dict[str, tuple[float, str]] = {}   # token -> (expiry, role)
        self._lock = threading.Lock()

    def open(self, role: str = STEWARD) -> str:
        token = secrets.token_urlsafe(32)
        now = self._now()
        with self._lock:
            self._expiry = {t: v for t, v in self._expiry.items() if v[0] > now}
            self._expiry[token] = (now + SESSION_SECONDS, role)
        return token

    def token(self, cookies: Mapping[str, str]) -> str | None:
        """The session token among a request's ``cookies``."""
        return cookies.get(self.cookie)

    def valid(self, token: str | None) -> bool:
        return self.role(token) is not None

    def role(self, token: str | None) -> str | None:
        """The live session's role (steward, supervisor), None for no live session."""
        # Every token is ASCII, and compare_digest raises on other text (a cookie of "é").
        if not token or not token.isascii():
            return None
        with self._lock:
            # Every live token is compared, so timing tells nothing about which one was close.
            found = None
            for known, (at, role) in self._expiry.items():
                if hmac.compare_digest(known, token) and at > self._now():
                    found = role
            return found


def session_tag(token: str) -> str:
    """A short name for a session in the journal: who acted, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]
