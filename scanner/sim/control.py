"""``/_sim/...``: drive a running simulator from another process (tests, the demo).

Loopback clients only, same token as the API. Routes:

    GET  /_sim/faults                 current fault switches
    POST /_sim/faults   {switch: v}   change some switches
    POST /_sim/mutate   {n, kind?, event_id?}   kind: mix|sell|cancel|change|delete
    POST /_sim/poison   {barcodes: []}          POST /scans refuses batches holding these
    POST /_sim/device   {field: v}    change what /me says (DeviceOptions fields)
    GET  /_sim/scans                  every uploaded scan, with eventId
    GET  /_sim/decisions              every POST /tickets/{barcode}/scan decision
    GET  /_sim/tickets/{eventId}      the current ticket set as NDJSON, listing order
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from scanner.sim.endpoints import Reply, error_reply, json_reply
from scanner.sim.injection import Faults
from scanner.sim.world import World

MUTATIONS = ("mix", "sell", "cancel", "change", "delete")


def _mutate(world: World, args: dict[str, Any]) -> Reply:
    n, kind, event_id = args.get("n", 1), args.get("kind", "mix"), args.get("event_id")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return error_reply(400, "n: expected a whole number >= 0")
    if kind not in MUTATIONS:
        return error_reply(400, f"kind: one of {', '.join(MUTATIONS)}")
    if event_id is not None and event_id not in world.event_ids:
        return error_reply(404, f"no event {event_id!r}")
    if kind == "mix":
        changes = world.mutate(n, event_id)
    elif kind == "sell":
        target = event_id or world.event_ids[0]
        changes = [("sell", doc) for doc in world.sell(target, n)]
    else:
        changes = [(kind, doc) for doc in getattr(world, kind)(n, event_id)]
    return json_reply(200, {"changed": [{"kind": k, "_id": d["_id"], "barcode": d["barcode"]}
                                        for k, d in changes]})


def _device(world: World, args: dict[str, Any]) -> Reply:
    if "allowed_ticket_types" in args and isinstance(args["allowed_ticket_types"], dict):
        args["allowed_ticket_types"] = {k: tuple(v)
                                        for k, v in args["allowed_ticket_types"].items()}
    if isinstance(args.get("events"), list):
        args["events"] = tuple(args["events"])
    try:
        world.device = dataclasses.replace(world.device, **args)
    except (TypeError, ValueError) as exc:
        return error_reply(400, f"device: {exc}")
    return json_reply(200, world.me())


def _ndjson(docs: Any) -> Reply:
    body = b"".join(orjson.dumps(doc) + b"\n" for doc in docs)
    return Reply(200, body, "application/x-ndjson")


def control(world: World, faults: Faults, method: str, parts: list[str],
            body: bytes) -> Reply:
    """Route one request below /_sim/."""
    try:
        args = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        return error_reply(400, "body: not valid JSON")
    if method == "POST" and not isinstance(args, dict):
        return error_reply(400, "body: expected a JSON object")
    match method, parts:
        case "GET", ["faults"]:
            return json_reply(200, faults.as_dict())
        case "POST", ["faults"]:
            try:
                faults.update(**args)
            except ValueError as exc:
                return error_reply(400, str(exc))
            return json_reply(200, faults.as_dict())
        case "POST", ["mutate"]:
            return _mutate(world, args)
        case "POST", ["poison"]:
            codes = args.get("barcodes")
            if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                return error_reply(400, "barcodes: expected a list of strings")
            world.poison.update(codes)
            return json_reply(200, {"poison": sorted(world.poison)})
        case "POST", ["device"]:
            return _device(world, args)
        case "GET", ["scans"]:
            return json_reply(200, world.scans)
        case "GET", ["decisions"]:
            return json_reply(200, world.scan_decisions)
        case "GET", ["tickets", event_id]:
            if event_id not in world.event_ids:
                return error_reply(404, f"no event {event_id!r}")
            return _ndjson(world.current_tickets(event_id))
    return error_reply(404, f"no control route {method} /_sim/{'/'.join(parts)}")
