"""The vivenu access-users API client: the one place the gate talks HTTP to vivenu.

Every method maps one endpoint. Faults come out as the ``ApiError`` tree of
``scanner.errors``: 401/403 -> AuthRefused, 404 -> NotFound, other 4xx -> BadRequest (with
the server's body, truncated, as ``.body``), 408/425/429/5xx/no connection after retries ->
ServerUnavailable, a 2xx of the wrong shape -> ProtocolError. The token goes in the
``token`` header only; it is never logged, shown in a repr or put in an exception text.

Every request is bounded: bodies are streamed, decompressed here (``body``) and refused
past a byte cap (so a huge or a highly compressed page costs no more memory than the cap),
and every request, retries included, ends within a total deadline (httpx's timeouts are
per read, so a server dripping one byte every few seconds would otherwise hold a sync
forever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import orjson

from scanner.clock import Clock, utc_now
from scanner.config import (
    DEFAULT_MAX_PAGE_BYTES,
    DEFAULT_PAGE_DEADLINE,
    ApiConfig,
    Secret,
)
from scanner.errors import (
    AuthRefused,
    BadRequest,
    ConfigError,
    NotFound,
    ProtocolError,
    ServerUnavailable,
)
from scanner.printable import escape
from scanner.tickets import Ticket, parse_ticket
from scanner.vivenu.body import ACCEPT_ENCODING, BadEncoding, Inflater
from scanner.vivenu.retry import (
    DEFAULT_BACKOFF,
    RETRY_4XX,
    RetryableStatus,
    http_date,
    retry_after_seconds,
    retrying,
)
from scanner.vivenu.urls import api_root, segment

log = logging.getLogger("scanner.vivenu")

# How much of an error body is kept on BadRequest: enough to read the reason, not a page.
BODY_KEEP = 500
# How much of an error body is read at all: the first BODY_KEEP characters are all we keep.
ERROR_BODY_READ = 64 * 1024
SCAN_ACCESS = ("GRANTED", "DENIED")


# A document as a ticket and the line naming its bad fields, if any (``parse_ticket``).
Parse = Callable[[Any], tuple[Any, "str | None"]]


class TicketPage(NamedTuple):
    tickets: list[Any]  # Tickets, or what the caller's ``parse`` made of the documents
    total: int
    # (index in tickets, line naming ticket and fields) for tickets stored not admissible
    problems: tuple[tuple[int, str], ...] = ()


class _PageKey(NamedTuple):
    event_id: str
    top: int
    skip: int
    from_: str | None
    until: str | None


class _Ahead:
    """A ticket page's body downloading ahead, in its own thread."""

    def __init__(self, key: _PageKey) -> None:
        self.key = key
        self.thread: threading.Thread | None = None
        self.body: bytes | None = None
        self.fault: BaseException | None = None


class VivenuClient:
    """Synchronous client with keep-alive, timeouts, retries and server-clock tracking."""

    def __init__(self, base_url: str, token: Secret, *, connect_timeout: float = 3.0,
                 read_timeout: float = 15.0, retries: int = 5,
                 transport: httpx.BaseTransport | None = None,
                 backoff: float = DEFAULT_BACKOFF,
                 sleep: Callable[[float], None] = time.sleep,
                 page_deadline: float = DEFAULT_PAGE_DEADLINE,
                 max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
                 clock: Clock = utc_now) -> None:
        self.base_url = base_url.strip().rstrip("/")
        root = api_root(self.base_url)
        if not token.fits_header():  # as load_config refuses it, for a client built in code
            raise ConfigError("api token: it must be visible ASCII characters, without spaces "
                              "or control characters (value not shown: it may be a token)")
        self._token = token
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._page_deadline = page_deadline
        self._clock = clock  # the device clock the server's Date is measured against
        self._max_bytes = max_page_bytes
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        # api_root allows plain http only to loopback (the simulator), where no TLS
        # handshake ever happens: loading the CA bundle for it would cost tens of ms of
        # CPU at every start. https keeps httpx's full verification.
        verify = not root.lower().startswith("http://")
        self._http = httpx.Client(base_url=root, headers={"token": token.reveal(),
                                                          "accept-encoding": ACCEPT_ENCODING},
                                  timeout=self._timeout, transport=transport, verify=verify)
        self.last_server_date: datetime | None = None
        self._clock_offset: float | None = None
        # Told every offset this client measures (the sync process passes its own on).
        self.on_offset: Callable[[float], object] | None = None
        self._ahead: _Ahead | None = None
        self._said_unreachable = False  # since the last answer: one line per outage

    @classmethod
    def from_config(cls, api: ApiConfig, *, transport: httpx.BaseTransport | None = None,
                    clock: Clock = utc_now) -> VivenuClient:
        return cls(api.url, api.token, connect_timeout=api.connect_timeout,
                   read_timeout=api.read_timeout, retries=api.retries, transport=transport,
                   page_deadline=api.page_deadline, max_page_bytes=api.max_page_bytes,
                   clock=clock)

    def __repr__(self) -> str:
        return f"VivenuClient({self.base_url!r})"

    # -- endpoints ---------------------------------------------------------------------

    def events(self, include_root_events: bool | None = None) -> list[dict[str, Any]]:
        params = {} if include_root_events is None else {
            "includeRootEvents": "true" if include_root_events else "false"}
        body = self._json("GET", "/events", params=params)
        if not isinstance(body, list) or not all(
                isinstance(e, dict) and isinstance(e.get("_id"), str)
                and isinstance(e.get("name"), str) for e in body):
            raise ProtocolError("GET /events: expected a list of {_id, name} objects")
        return body

    def me(self) -> dict[str, Any]:
        body = self._json("GET", "/me")
        if not isinstance(body, dict) or not isinstance(body.get("deviceSettings", {}), dict):
            raise ProtocolError("GET /me: expected an object with deviceSettings")
        return body

    def seller(self) -> dict[str, Any]:
        body = self._json("GET", "/seller")
        if not isinstance(body, dict) or not isinstance(body.get("sellerId"), str):
            raise ProtocolError("GET /seller: expected an object with a sellerId string")
        return body

    def ticket_page(self, event_id: str, *, top: int, skip: int, from_: str | None = None,
                    until: str | None = None, ahead: int | None = None,
                    parse: Parse = parse_ticket) -> TicketPage:
        """One page of an event's ticket list, within the page deadline. A doc that cannot
        be stored rejects the page (ProtocolError naming ticket and field); one with wrong
        fields comes back not admissible, listed in ``problems``. ``parse``: how each doc
        becomes an item of ``tickets`` (the sync's store rows, say), with the same checks.

        ``ahead``: the ``skip`` the caller will ask for next. Its body downloads in a thread
        while this page is parsed and written (socket reads release the GIL); parsing stays
        on the caller's thread, which would otherwise trade the GIL with SQLite on every row.
        A later call for that same page takes the body (or the fault) downloaded ahead."""
        key = _PageKey(event_id, top, skip, from_, until)
        what = f"GET /tickets/v2/{event_id} skip={skip}"
        body = self._ahead_body(key)
        if body is None:
            body = self._page_body(key)
        doc = self._decode(body, 200, what)
        if not isinstance(doc, dict):
            raise ProtocolError(f"{what}: expected an object, got {type(doc).__name__}")
        docs, total = doc.get("docs"), doc.get("total")
        if not isinstance(docs, list) or not isinstance(total, int) or isinstance(total, bool):
            raise ProtocolError(f"{what}: expected a 'docs' list and an integer 'total'")
        if ahead is not None and ahead < total:
            self._download_ahead(key._replace(skip=ahead))
        tickets: list[Any] = []
        problems: list[tuple[int, str]] = []
        append = tickets.append
        try:
            for item in docs:
                ticket, problem = parse(item)
                if problem is not None:
                    problems.append((len(tickets), problem))
                append(ticket)
        except ValueError as exc:
            raise ProtocolError(f"{what}: doc {len(tickets)}: {exc}") from None
        return TicketPage(tickets, total, tuple(problems))

    def _page_body(self, key: _PageKey) -> bytes:
        params: dict[str, Any] = {"top": key.top, "skip": key.skip}
        if key.from_ is not None:
            params["from"] = key.from_
        if key.until is not None:
            params["until"] = key.until
        return self._request("GET", f"/tickets/v2/{segment(key.event_id)}", params=params,
                             content=None, deadline=self._page_deadline,
                             what=f"GET /tickets/v2/{key.event_id} skip={key.skip}")[1]

    def _download_ahead(self, key: _PageKey) -> None:
        self._ahead_body(None)  # at most one download ahead
        slot = _Ahead(key)

        def download() -> None:
            try:
                slot.body = self._page_body(key)
            except BaseException as exc:  # handed to the call that asks for this page
                slot.fault = exc

        slot.thread = threading.Thread(target=download, name="page-ahead", daemon=True)
        self._ahead = slot
        slot.thread.start()

    def _ahead_body(self, key: _PageKey | None) -> bytes | None:
        """The body downloaded ahead for ``key`` (its fault raised), else None; any
        download ahead is finished and forgotten either way."""
        slot, self._ahead = self._ahead, None
        if slot is None:
            return None
        assert slot.thread is not None
        slot.thread.join()
        if slot.key != key:
            return None  # the caller went elsewhere (a shift, a new listing): not used
        if slot.fault is not None:
            raise slot.fault
        return slot.body

    def ticket(self, barcode: str, event_id: str | None = None, *,
               deadline: float | None = None) -> Ticket:
        """One ticket by barcode; NotFound on 404. The whole call, retries included, ends
        within ``deadline`` seconds (None: ``page_deadline``) or raises ServerUnavailable."""
        params = {} if event_id is None else {"eventId": event_id}
        body = self._json("GET", f"/tickets/{segment(barcode)}", params=params,
                          deadline=deadline, what="GET /tickets/{barcode}")
        try:
            ticket, problem = parse_ticket(body)
        except ValueError as exc:
            raise ProtocolError(f"GET /tickets/{{barcode}}: {exc}") from None
        if problem is not None:
            log.warning("GET /tickets/{barcode}: not admissible: %s", problem)
        return ticket

    def scan_ticket(self, barcode: str) -> dict[str, Any]:
        """Let the server decide and record a scan: ``{access: GRANTED|DENIED, ticket}``."""
        what = "POST /tickets/{barcode}/scan"
        body = self._json("POST", f"/tickets/{segment(barcode)}/scan", what=what)
        if (not isinstance(body, dict) or body.get("access") not in SCAN_ACCESS
                or not isinstance(body.get("ticket"), dict)):
            raise ProtocolError(f"{what}: expected {{access: GRANTED|DENIED, ticket}}")
        return body

    def post_scans(self, event_id: str, scans: list[dict[str, Any]]) -> dict[str, Any]:
        """Upload scans made on the device; the answer is ``{"status": "OK"}``.

        A 2xx with an empty body counts as accepted (``{}``): the status is the server's
        acceptance, and vivenu documents no error or empty-body formats. One that says
        otherwise (a ``status`` but "OK", or an ``error``) is a ProtocolError: the scans
        stay queued rather than be marked sent on an answer refusing them.
        """
        what = f"POST /scans/{event_id}"
        body = self._json("POST", f"/scans/{segment(event_id)}", content=orjson.dumps(scans),
                          what=what, empty_ok=True)
        if not isinstance(body, dict):
            raise ProtocolError(f"{what}: expected an object, got {type(body).__name__}")
        refusal = {key: body[key] for key in ("status", "error", "errors") if key in body}
        if refusal and body.get("status") != "OK":
            said = escape(self._scrub(orjson.dumps(refusal).decode()))[:BODY_KEEP]
            raise ProtocolError(f"{what}: the answer says {said}, not accepted; kept queued")
        return body

    # -- server clock ------------------------------------------------------------------

    @property
    def clock_offset(self) -> float | None:
        """Server minus local clock in seconds, from the last Date header (None before)."""
        return self._clock_offset

    def _note_date(self, response: httpx.Response, received: datetime) -> None:
        header = response.headers.get("date")
        if not header:
            return
        server = http_date(header)
        if server is None:
            return
        self.last_server_date = server
        # Date has one-second resolution: the server's clock was somewhere in [D, D+1),
        # so the midpoint is the estimate with the smallest worst-case error.
        self.observe_offset((server + timedelta(seconds=0.5) - received).total_seconds())

    def observe_offset(self, offset: float) -> None:
        """An offset measured: by this client, or by another of this gate (its sync
        process's, whose answers this one does not see); told on to ``on_offset``."""
        self._clock_offset = offset
        if self.on_offset is not None:
            self.on_offset(offset)

    # -- plumbing ----------------------------------------------------------------------

    def _json(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              content: bytes | None = None, deadline: float | None = None,
              what: str | None = None, empty_ok: bool = False) -> Any:
        what = what or f"{method} {path}"
        status, body = self._request(method, path, params=params, content=content,
                                     deadline=deadline, what=what)
        if empty_ok and not body.strip():
            return {}
        return self._decode(body, status, what)

    @staticmethod
    def _decode(body: bytes, status: int, what: str) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ProtocolError(f"{what}: HTTP {status} body is not JSON",
                                status=status) from None

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None,
                 content: bytes | None, deadline: float | None,
                 what: str) -> tuple[int, bytes]:
        """Status and body of a 2xx, within ``deadline`` (seconds, retries included; None:
        ``page_deadline``, as no request may wait on a dripping server for ever)."""
        deadline_at = time.monotonic() + (self._page_deadline if deadline is None else deadline)
        headers = {"content-type": "application/json"} if content is not None else None
        policy = retrying(retries=self._retries, backoff=self._backoff,
                          deadline_at=deadline_at, sleep=self._sleep, what=what,
                          announce=self._say_retrying)
        try:
            for attempt in policy:
                with attempt:
                    request = self._http.build_request(
                        method, path, params=params, content=content, headers=headers,
                        timeout=self._attempt_timeout(deadline_at, what))
                    response = self._http.send(request, stream=True)
                    try:
                        self._note_date(response, self._clock())
                        self._check_status(response, what)
                        self._said_unreachable = False
                        body = self._read_body(response, self._max_bytes, deadline_at, what)
                    finally:
                        response.close()
        except RetryableStatus as exc:
            raise ServerUnavailable(f"{what}: HTTP {exc.status}, gave up after "
                                    f"{policy.statistics.get('attempt_number', 1)} attempt(s)",
                                    status=exc.status) from None
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"{what}: {type(exc).__name__}: {self._scrub(str(exc))}; "
                                    f"gave up after {policy.statistics.get('attempt_number', 1)}"
                                    " attempt(s)") from None
        return response.status_code, body

    @staticmethod
    def _read_body(response: httpx.Response, cap: int, deadline_at: float | None,
                   what: str, *, cut: bool = False) -> bytes:
        """The body, decompressed chunk by chunk (``body.Inflater``): refused past ``cap``
        bytes (``cut``: its first ``cap`` bytes) or the deadline."""
        chunks, size = [], 0
        try:
            # A response built in memory (httpx.MockTransport) holds its content decoded.
            loaded = response.is_stream_consumed
            inflater = Inflater(None if loaded else response.headers.get("content-encoding"))
            for raw in [response.content] if loaded else response.iter_raw():
                chunk = inflater.feed(raw, cap - size + 1)
                size += len(chunk)
                if size > cap:
                    if cut:
                        chunks.append(chunk[:len(chunk) - (size - cap)])
                        return b"".join(chunks)
                    raise ProtocolError(f"{what}: the answer passed {cap} bytes "
                                        f"(api.max_page_bytes); refused",
                                        status=response.status_code)
                if deadline_at is not None and time.monotonic() > deadline_at:
                    raise ServerUnavailable(f"{what}: the answer did not arrive within its "
                                            "deadline (api.page_deadline); gave up")
                chunks.append(chunk)
            inflater.end()
        except BadEncoding as exc:
            raise ProtocolError(f"{what}: HTTP {response.status_code}: {exc}",
                                status=response.status_code) from None
        return b"".join(chunks)

    def _say_retrying(self, why: str, retries: int, seconds: float) -> None:
        """One line when the server cannot be reached, not one per request or attempt."""
        if self._said_unreachable:
            return
        self._said_unreachable = True
        fault = f"{self.base_url} answered {why}" if why.startswith("HTTP") \
            else f"cannot reach {self.base_url} ({why})"
        log.warning("%s; retrying %d time(s) for up to about %.0f s", fault, retries, seconds)

    def _attempt_timeout(self, deadline_at: float | None, what: str) -> httpx.Timeout:
        if deadline_at is None:
            return self._timeout
        left = deadline_at - time.monotonic()
        if left <= 0:
            raise ServerUnavailable(f"{what}: deadline passed")
        # Every phase gets at most what is left; httpx has no whole-request timeout.
        return httpx.Timeout(min(self._timeout.read or left, left),
                             connect=min(self._timeout.connect or left, left))

    def _check_status(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 300:
            return
        if status < 400:
            # Not followed (the token would go with it), and never an answer: a captive
            # portal's empty 302 to a POST /scans would pass for accepted scans.
            where = urlsplit(response.headers.get("location", "")).hostname
            raise ProtocolError(f"{what}: HTTP {status}: redirected"
                                f"{f' to {escape(where)}' if where else ''}, not followed",
                                status=status)
        if status in RETRY_4XX or status >= 500:
            raise RetryableStatus(status, retry_after_seconds(
                response.headers.get("retry-after"), self.last_server_date))
        # Scrubbed before it is cut: a token echoed across the cut must not leave a part.
        # At most ERROR_BODY_READ bytes: enough to quote, never a flood.
        try:
            raw = self._read_body(response, ERROR_BODY_READ, None, what, cut=True)
        except ProtocolError:
            raw = b""  # a body that does not decompress: the status still says enough
        body = self._scrub(raw.decode(response.encoding or "utf-8", errors="replace"))
        # Shown on the operator's terminal and kept in the journal: no ESC or BEL raw.
        body = escape(body)[:BODY_KEEP]
        if status in (401, 403):
            hint = "" if self._token else " (no token configured: GATE_API_TOKEN or api.token_file)"
            raise AuthRefused(f"{what}: HTTP {status}: the token was refused{hint}",
                              status=status)
        if status == 404:
            raise NotFound(f"{what}: HTTP 404 not found", status=status)
        error = BadRequest(f"{what}: HTTP {status}: {body or '(empty body)'}", status=status)
        error.body = body
        raise error

    def _scrub(self, text: str) -> str:
        """Remove the token from text that came from elsewhere (a server echoing headers)."""
        secret = self._token.reveal()
        return text.replace(secret, "***") if secret else text

    def close(self) -> None:
        self._ahead_body(None)
        self._http.close()

    def __enter__(self) -> VivenuClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
