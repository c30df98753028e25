"""Venue commands from the control room's page: the supervisor's buttons.

With ``[control] supervisor_key_file`` the page shows stop entry, resume, free egress and
lockdown (for the venue, a zone or a gate) and block / unblock (a barcode or ticket id).
Each needs a supervisor's session (the PIN of ``[web] supervisor_pin_file``, on loopback
too, as the kiosk's override does) and goes through ``scanner.venue.issue.send``, the
path ``gate venue ...`` takes. Without a key the API answers 403 and the page has no
buttons.

    GET  /api/commands   {"role", "zones", "kinds"}: what the page may offer
    POST /api/commands   {"kind", "scope", "target"?, "reason"?} -> {"sent": "..."}
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scanner.errors import ConfigError
from scanner.kiosk.auth import SUPERVISOR, Login, session_tag
from scanner.venue.command import Command, Kind, Refused, Scope

log = logging.getLogger("scanner.control")
NO_KEY = "no supervisor key configured here: [control] supervisor_key_file"

Send = Callable[[Kind, Scope, str, str], Command]


@dataclass(frozen=True)
class Commands:
    """``send(kind, scope, target, reason)``: ``scanner.venue.issue.send`` bound to the
    control room's broker, zones and key; ``zones``: the venue's, for the page's choice."""

    send: Send
    zones: tuple[tuple[str, str], ...]   # (id, name)


def command_routes(commands: Commands | None, login: Login,
                   read_only: Callable[[Request], None],
                   body: Callable[[Request], Awaitable[dict[str, Any]]],
                   json: Callable[..., Response],
                   refuse: Callable[[HTTPStatus, str], Exception]) -> list[Route]:
    """The routes above; ``read_only`` refuses a request the page's reading needs a
    session for (the venue's zones are the page's), ``body``, ``json`` and ``refuse`` are
    ``routes``' own helpers."""

    def role(request: Request) -> str | None:
        return login.sessions.role(login.sessions.token(request.cookies))

    def available() -> Commands:
        if commands is None:
            raise refuse(HTTPStatus.FORBIDDEN, NO_KEY)
        return commands

    async def offer(request: Request) -> Response:
        read_only(request)
        found = available()
        return json({"role": role(request), "kinds": [k.value for k in Kind],
                     "zones": [{"id": i, "name": n} for i, n in found.zones]})

    async def issue(request: Request) -> Response:
        found = available()
        doc = await body(request)
        token = login.sessions.token(request.cookies)
        if role(request) != SUPERVISOR or token is None:
            raise refuse(HTTPStatus.UNAUTHORIZED, "the supervisor's PIN first")
        fields = {k: doc.get(k, "") for k in ("kind", "scope", "target", "reason")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise refuse(HTTPStatus.BAD_REQUEST, "kind, scope, target, reason: expected text")
        try:
            kind, scope = Kind(fields["kind"]), Scope(fields["scope"])
        except ValueError:
            raise refuse(HTTPStatus.BAD_REQUEST,
                         f"kind: one of {', '.join(Kind)}; scope: one of "
                         f"{', '.join(Scope)}") from None
        try:
            command = await run_in_threadpool(found.send, kind, scope, fields["target"],
                                              fields["reason"])
        except (Refused, ConfigError) as exc:
            raise refuse(HTTPStatus.BAD_REQUEST, str(exc)) from None
        log.warning("venue command sent from the control room by supervisor session %s: %s",
                    session_tag(token), command.describe())
        return json({"sent": command.describe(), "id": command.id})

    return [Route("/api/commands", offer),
            Route("/api/commands", issue, methods=["POST"])]
