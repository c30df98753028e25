"""When and how long to wait before asking vivenu again.

Retried: no connection, timeouts, 5xx and the 4xx that ask to be asked again (408 Request
Timeout, 425 Too Early, 429). Never retried: any other 4xx, because the same request will be
refused the same way. The policy is a tenacity ``Retrying`` so backoff
and jitter are not hand-rolled; the only local rules are Retry-After and the deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from scanner.printable import is_number
from scanner.tickets import as_utc

log = logging.getLogger("scanner.vivenu")

DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 30.0
# A server asking for more than this is treated as asking for this: a sync thread that
# sleeps an hour on one header would look dead.
MAX_RETRY_AFTER = 60.0
# Starting an attempt with less time than this left cannot finish; give up instead.
MIN_ATTEMPT = 0.05
# A Date outside these is no clock: the times computed from it (a margin, a tolerance, the
# device clock a second later plus its offset) would pass datetime's years 1 or 9999 and
# raise OverflowError on every scan and sync.
EARLIEST_DATE = datetime(1000, 1, 1, tzinfo=UTC)
LATEST_DATE = datetime(9000, 1, 1, tzinfo=UTC)
# The 4xx answers that mean "not now" rather than "not this": a proxy timing out a slow
# upload answers 408, and parking that batch as rejected would keep it from the server.
RETRY_4XX = frozenset({408, 425, 429})


class RetryableStatus(Exception):
    """An answer worth asking again for (RETRY_4XX or 5xx); internal to the client."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, server_now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped.

    An HTTP-date is measured against the server's own Date when given, so a skewed device
    clock does not stretch or shrink the wait. Unparseable values count as absent.
    """
    if not value:
        return None
    value = value.strip()
    if is_number(value):
        return min(float(value), MAX_RETRY_AFTER)
    when = http_date(value)
    if when is None:
        return None
    now = server_now or datetime.now(UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


def http_date(value: str) -> datetime | None:
    """An HTTP-date (Date, Retry-After) as an aware datetime, a naive one taken as UTC;
    None if it does not parse or lies outside EARLIEST_DATE..LATEST_DATE."""
    try:
        when = as_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None
    return when if EARLIEST_DATE <= when < LATEST_DATE else None


# Told, at a request's first retry, why and for how long it goes on trying: (the fault in
# a few words, the retries left, about how many seconds they take at most).
Announce = Callable[[str, int, float], object]


def _say_nothing(_why: str, _retries: int, _seconds: float) -> None:
    return None


def retry_span(retries: int, backoff: float, deadline_at: float | None = None) -> float:
    """About how long ``retries`` retries wait in all (the jitter's mean included), or
    until the deadline, whichever is first."""
    span = sum(min(backoff * 2.0 ** n, MAX_BACKOFF) + backoff / 2 for n in range(retries))
    if deadline_at is not None:
        span = min(span, max(deadline_at - time.monotonic(), 0.0))
    return span


def retrying(*, retries: int, backoff: float, deadline_at: float | None,
             sleep: Callable[[float], None], what: str,
             announce: Announce = _say_nothing) -> Retrying:
    """A tenacity policy: up to ``retries`` more attempts, never sleeping past the deadline.

    ``deadline_at`` is a ``time.monotonic()`` instant; ``what`` names the call in logs;
    ``announce`` hears the first retry, so a person waiting is told rather than left in
    silence while the backoff runs.
    """
    backoff_wait = wait_exponential_jitter(multiplier=backoff, max=MAX_BACKOFF, jitter=backoff)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return exc.retry_after
        return backoff_wait(state)

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number > retries:
            return True
        return (deadline_at is not None
                and time.monotonic() + state.upcoming_sleep + MIN_ATTEMPT >= deadline_at)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = str(exc) if isinstance(exc, RetryableStatus) else type(exc).__name__
        log.debug("%s: %s, retry %d in %.2f s", what, reason, state.attempt_number,
                  state.upcoming_sleep)
        if state.attempt_number == 1:
            announce(reason, retries, retry_span(retries, backoff, deadline_at))

    return Retrying(
        retry=retry_if_exception_type((RetryableStatus, httpx.TransportError)),
        wait=wait, stop=stop, sleep=sleep, before_sleep=before_sleep, reraise=True)
