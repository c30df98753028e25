"""The vivenu access-users endpoints as the simulator answers them, HTTP-free.

``answer`` takes a parsed request and returns a ``Reply``; ``server.py`` owns sockets,
the token check and faults. Paths, parameters, bodies and status codes follow vivenu's
accessusers-openapi.yml (../shared/vivenu beside the repository); where vivenu documents
nothing (error bodies, unknown events) the simulator answers a small JSON object with
``error`` and ``message``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from scanner.sim.injection import Faults
from scanner.sim.scans import scan_errors
from scanner.sim.world import World
from scanner.tickets import parse_iso

TOP_DEFAULT, TOP_MIN, TOP_MAX = 25, 1, 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Reply(NamedTuple):
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class BadParam(ValueError):
    """A query parameter the real API would refuse with 400."""


def json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, orjson.dumps(payload))


def error_reply(status: int, message: str) -> Reply:
    reasons = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    return json_reply(status, {"error": reasons.get(status, "Error"), "message": message})


def _number(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadParam(f"{name}: not a number: {raw!r}") from None
    if not math.isfinite(value) or value != int(value) or not lo <= value <= hi:
        raise BadParam(f"{name}: must be a whole number from {lo} to {hi}, got {raw!r}")
    return int(value)


def _instant_us(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment = parse_iso(raw)
    except ValueError:
        raise BadParam(f"{name}: not an ISO timestamp: {raw!r}") from None
    return (moment - _EPOCH) // timedelta(microseconds=1)


MALFORMED_VARIANTS = 3


def _malformed_page(variant: int, docs: list[dict[str, Any]], total: int) -> Reply:
    """A 200 whose body breaks the documented shape in one of three ways."""
    if variant % MALFORMED_VARIANTS == 0:
        broken = [dict(doc) for doc in docs] or [{"_id": "broken"}]
        broken[len(broken) // 2].pop("barcode", None)
        return json_reply(200, {"docs": broken, "total": total})
    if variant % MALFORMED_VARIANTS == 1:
        body = orjson.dumps({"docs": docs, "total": total})
        return Reply(200, body[: max(1, len(body) // 2)])
    return json_reply(200, {"docs": {"0": docs[:1]}, "total": str(total)})


def ticket_list(world: World, faults: Faults, event_id: str,
                query: Mapping[str, str]) -> Reply:
    top = _number(query, "top", TOP_DEFAULT, TOP_MIN, TOP_MAX)
    if cap := int(faults.settings().page_cap):
        top = min(top, cap)
    skip = _number(query, "skip", 0, 0, 10**12)
    from_us, until_us = _instant_us(query, "from"), _instant_us(query, "until")
    if event_id not in world.event_ids:
        return error_reply(404, f"no event {event_id!r}")
    docs, total = world.page(event_id, top=top, skip=skip, from_us=from_us, until_us=until_us)
    variant = faults.take_malformed()
    reply = (json_reply(200, {"docs": docs, "total": total}) if variant is None
             else _malformed_page(variant, docs, total))
    mutations = faults.settings().mutate_per_page
    if mutations:
        # After the page is cut: the next page then sees the shift, as on the real server.
        world.mutate(mutations, event_id)
    return reply


def post_scans(world: World, event_id: str, body: bytes) -> Reply:
    if event_id not in world.event_ids:
        return error_reply(404, f"no event {event_id!r}")
    try:
        scans = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_reply(400, "body: not valid JSON")
    problem = scan_errors(scans)
    if problem is not None:
        return json_reply(400, problem)
    poisoned = world.poisoned(scans)
    if poisoned is not None:
        return json_reply(400, {"error": "Bad Request", "index": poisoned, "field": "barcode",
                                "message": f"[{poisoned}].barcode: refused by the server"})
    world.record_scans(event_id, scans)
    return json_reply(200, {"status": "OK"})


def answer(world: World, faults: Faults, method: str, parts: list[str],
           query: Mapping[str, str], body: bytes) -> Reply:
    """Route one request below /api/accessusers; ``parts`` are the unquoted segments."""
    try:
        match method, parts:
            case "GET", ["events"]:
                if query.get("includeRootEvents", "true") not in ("true", "false"):
                    raise BadParam("includeRootEvents: must be true or false")
                return json_reply(200, world.events())
            case "GET", ["me"]:
                return json_reply(200, world.me())
            case "GET", ["seller"]:
                return json_reply(200, world.seller())
            case "GET", ["tickets", "v2", event_id]:
                return ticket_list(world, faults, event_id, query)
            case "GET", ["tickets", barcode]:
                ticket = world.find(barcode, query.get("eventId"))
                return (error_reply(404, "ticket not found") if ticket is None
                        else json_reply(200, ticket))
            case "POST", ["tickets", barcode, "scan"]:
                decision = world.scan(barcode)
                return (error_reply(404, "ticket not found") if decision is None
                        else json_reply(200, decision))
            case "POST", ["scans", event_id]:
                return post_scans(world, event_id, body)
    except BadParam as exc:
        return error_reply(400, str(exc))
    return error_reply(404, f"no route {method} /{'/'.join(parts)}")
