"""The kiosk's routes for stewards and supervisors (``scanner.supervise.Desk``).

    GET  /api/desk      {"role", "override_reasons", "held"}: what this session may do
                        (held scan ids only for a session)
    POST /api/info      {"barcode"}: an information scan, nothing journaled  (steward)
    POST /api/confirm   {"scan_id"?, "confirm": bool}: answer a held ticket   (steward)
    POST /api/release   {}: open the gate once by hand, journaled             (steward)
                        (in a venue lockdown: the supervisor only; a steward's is
                        journaled as refused and answered 403)
    POST /api/override  {"scan_id", "why", "note"?}: admit a denied ticket    (supervisor)

Every one needs a session, on loopback too (``routes``' rules for annul): the screen's
public side is not the steward. A steward's session asking to override is answered 401,
so the page asks for the supervisor's PIN and tries again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scanner.decide.model import Direction
from scanner.errors import (
    AlreadyAnswered,
    NotAllowed,
    NotAnswerable,
    ReleaseRefused,
    SupervisionError,
)
from scanner.kiosk.auth import SUPERVISOR, Sessions, session_tag
from scanner.kiosk.parts import KioskParts
from scanner.kiosk.present import preview_event
from scanner.supervise import OVERRIDE_REASONS, Desk
from scanner.supervise.desk import Acting

Body = Callable[[Request], Awaitable[dict[str, Any]]]
Json = Callable[..., Response]
_STATUS = {ReleaseRefused: HTTPStatus.FORBIDDEN, NotAllowed: HTTPStatus.UNAUTHORIZED,
           AlreadyAnswered: HTTPStatus.CONFLICT, NotAnswerable: HTTPStatus.NOT_FOUND}


class Served(Protocol):
    """What the routes here use of ``scanner.kiosk.server.KioskServer``."""

    parts: KioskParts
    sessions: Sessions

    @property
    def direction(self) -> Direction: ...


def desk_routes(kiosk: Served, body: Body, text: Callable[[dict[str, Any], str], str],
                json: Json, refuse: Callable[[HTTPStatus, str], Exception]) -> list[Route]:
    """The routes above; ``body``, ``text``, ``json`` and ``refuse`` are ``routes``' own
    helpers (a checked JSON body, a text field, a JSON answer, an HttpError)."""

    def acting(request: Request) -> Acting:
        token = kiosk.sessions.token(request.cookies)
        role = kiosk.sessions.role(token)
        if role is None or token is None:
            raise refuse(HTTPStatus.UNAUTHORIZED, "the steward's PIN first")
        return Acting(role, session_tag(token))

    def desk() -> Desk:
        if kiosk.parts.desk is None:
            raise refuse(HTTPStatus.NOT_IMPLEMENTED, "this gate has no steward's desk")
        return kiosk.parts.desk

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await run_in_threadpool(fn, *args)
        except SupervisionError as exc:
            status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)),
                          HTTPStatus.BAD_REQUEST)
            raise refuse(status, str(exc)) from None

    async def state(request: Request) -> Response:
        role = kiosk.sessions.role(kiosk.sessions.token(request.cookies))
        # The reasons are no secret (the page lists them before a login); held scans are.
        held = kiosk.parts.desk.holds.pending() \
            if kiosk.parts.desk is not None and role is not None else []
        return json({"role": role, "override_reasons": list(OVERRIDE_REASONS), "held": held})

    async def info(request: Request) -> Response:
        doc = await body(request)
        acting(request)
        result = await call(desk().preview, text(doc, "barcode"), kiosk.direction)
        return json(preview_event(result.decision, gate_id=kiosk.parts.gate_id))

    async def confirm(request: Request) -> Response:
        doc = await body(request)
        who = acting(request)
        scan_id = doc.get("scan_id")
        if scan_id is not None and not isinstance(scan_id, str):
            raise refuse(HTTPStatus.BAD_REQUEST, "scan_id: expected text")
        if not isinstance(doc.get("confirm"), bool):
            raise refuse(HTTPStatus.BAD_REQUEST, "confirm: expected true or false")
        if not await call(desk().answer, scan_id, doc["confirm"], who):
            raise refuse(HTTPStatus.CONFLICT, "no ticket held for an answer")
        return json({"ok": True})

    async def release(request: Request) -> Response:
        await body(request)
        who = acting(request)
        return json({"scan_id": await call(desk().release, who)})

    async def override(request: Request) -> Response:
        doc = await body(request)
        who = acting(request)
        if who.role != SUPERVISOR:
            raise refuse(HTTPStatus.UNAUTHORIZED, "the supervisor's PIN first")
        note, why = doc.get("note", ""), text(doc, "why")
        if not isinstance(note, str):
            raise refuse(HTTPStatus.BAD_REQUEST, "note: expected text")
        if why not in OVERRIDE_REASONS:
            raise refuse(HTTPStatus.BAD_REQUEST, f"why: one of {', '.join(OVERRIDE_REASONS)}")
        result = await call(desk().override, text(doc, "scan_id"), who, why, note)
        return json(result.to_json())

    return [Route("/api/desk", state), Route("/api/info", info, methods=["POST"]),
            Route("/api/confirm", confirm, methods=["POST"]),
            Route("/api/release", release, methods=["POST"]),
            Route("/api/override", override, methods=["POST"])]
