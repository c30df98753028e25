"""Exceptions for faults. A denied scan is a decision, never an exception.

    GateError
    ├── ConfigError (ValueError)          a bad key or value in the configuration
    │   └── ConfigMistakes                several at once, one line each
    ├── ApiError                          anything the vivenu API did or did not answer
    │   ├── InsecureUrl (ValueError)      http:// to a host that is not loopback
    │   ├── AuthRefused                   401/403: the token is wrong or revoked
    │   ├── NotFound (LookupError)        404
    │   ├── BadRequest (ValueError)       any other 4xx: retrying will not help
    │   ├── ServerUnavailable (ConnectionError)   5xx, 408/425/429, no connection: retries spent
    │   └── ProtocolError (ValueError)    a 2xx whose body is not what the API documents
    ├── StoreError                        the local database refused or is damaged
    │   ├── CorruptStore                  a database file is damaged (names it and the fix)
    │   ├── JournalMismatch               the journal that opens is not the store's own
    │   └── BackupFailed                  a copy of the journal could not be made or verified
    ├── SyncError                         a sync run could not complete
    │   ├── PagingError                   offset pages shifted beyond recovery in one run
    │   └── TooManyTickets                a listing's total passed sync.max_event_tickets
    ├── ReadError (ValueError)            a scanner sent something that is not a barcode
    └── SupervisionError                  a steward's or supervisor's request cannot be done
        ├── NotAllowed (PermissionError)  the session's role may not do it
        ├── NotAnswerable (ValueError)    no such denial or held ticket to answer
        └── AlreadyAnswered (ValueError)  overridden or settled already

Third-party errors are translated at the boundary with ``raise ... from exc``. No message
ever contains the API token.
"""

from __future__ import annotations


class GateError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(GateError, ValueError):
    """A configuration key or value is wrong; the message names the key."""

    @property
    def lines(self) -> list[str]:
        """One line per mistake, each naming its key."""
        return [str(self)]


class ConfigMistakes(ConfigError):
    """Several mistakes found in one reading of the configuration, each its own line, so an
    operator fixes them all at once instead of one per try."""

    def __init__(self, mistakes: list[ConfigError]) -> None:
        super().__init__("; ".join(str(m) for m in mistakes))
        self.mistakes = list(mistakes)

    @property
    def lines(self) -> list[str]:
        return [str(m) for m in self.mistakes]


class ApiError(GateError):
    """Base of everything the vivenu API client raises."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InsecureUrl(ApiError, ValueError):
    """Plain http is allowed only to loopback (the simulator)."""


class AuthRefused(ApiError):
    """The server refused the token (401/403)."""


class NotFound(ApiError, LookupError):
    """The server has no such resource (404)."""


class BadRequest(ApiError, ValueError):
    """The server refused the request as malformed (4xx other than 401/403/404/408/425/429)."""

    # The server's answer, truncated: it often names the offending field or index.
    body: str = ""


class ServerUnavailable(ApiError, ConnectionError):
    """No usable answer after retries: connection errors, timeouts, 408/425/429 or 5xx."""


class ProtocolError(ApiError, ValueError):
    """A successful status with a body that does not match the API's documented shape."""


class StoreError(GateError):
    """The local store could not be read or written."""


class CorruptStore(StoreError):
    """A database file is damaged: SQLite found a malformed page, the file is not a
    database, or a stored JSON column no longer parses. The message names the file."""


class JournalMismatch(StoreError):
    """The journal database that opens is not the one the ticket store recorded: missing,
    empty, or another journal. Nothing was created or changed."""


class BackupFailed(StoreError):
    """A copy of the journal could not be written or did not verify; the journal itself is
    untouched and no partial copy is left under the backup's name."""


class SyncError(GateError):
    """A sync run stopped before completing; the store is left consistent."""


class PagingError(SyncError):
    """The ticket list shifted under the pager more than it can recover from in one run."""


class TooManyTickets(SyncError):
    """A ticket listing claims more tickets than any real event has: a server fault."""


class ReadError(GateError, ValueError):
    """A read from a scanner or camera is not a usable barcode; ``reason`` is a code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SupervisionError(GateError):
    """A steward's or supervisor's request (override, confirm, release) cannot be done."""


class NotAllowed(SupervisionError, PermissionError):
    """The session's role may not do this (an override needs the supervisor's PIN)."""


class ReleaseRefused(SupervisionError, PermissionError):
    """A manual release the venue's orders forbid to this role (a steward's in lockdown)."""


class NotAnswerable(SupervisionError, ValueError):
    """No denial or held ticket of this gate with that scan id (or not one to answer)."""


class AlreadyAnswered(SupervisionError, ValueError):
    """The denial was overridden, or the held ticket settled, already."""
