"""What the simulated server checks in uploaded scans, and how it decides a live scan."""

from __future__ import annotations

from typing import Any

from scanner.tickets import parse_iso

SCAN_TYPES = ("OK", "FAIL")
DIRECTIONS = ("IN", "OUT")
MIN_BARCODE = 8


def scan_errors(body: Any) -> dict[str, Any] | None:
    """None if ``body`` is a valid POST /scans payload, else a 400 body naming the first
    offending index and field (vivenu's own schema: POST_Accessusers_CreateScans)."""
    if not isinstance(body, list):
        return _error("body must be a JSON array of scans", None, None)
    for index, scan in enumerate(body):
        if not isinstance(scan, dict):
            return _error("must be an object", index, None)
        barcode = scan.get("barcode")
        if not isinstance(barcode, str) or len(barcode) < MIN_BARCODE:
            return _error(f"must be a string of at least {MIN_BARCODE} characters",
                          index, "barcode")
        if "ticketId" in scan and not isinstance(scan["ticketId"], str):
            return _error("must be a string", index, "ticketId")
        stamp = scan.get("scanned_at")
        try:
            if not isinstance(stamp, str):
                raise ValueError
            parse_iso(stamp)
        except ValueError:
            return _error("must be an ISO timestamp", index, "scanned_at")
        if scan.get("type") not in SCAN_TYPES:
            return _error(f"must be one of {', '.join(SCAN_TYPES)}", index, "type")
        if scan.get("direction") not in DIRECTIONS:
            return _error(f"must be one of {', '.join(DIRECTIONS)}", index, "direction")
    return None


def _error(message: str, index: int | None, field: str | None) -> dict[str, Any]:
    where = "body" if index is None else f"[{index}]" + (f".{field}" if field else "")
    return {"error": "Bad Request", "message": f"{where}: {message}", "index": index,
            "field": field}


def server_decision(ticket: dict[str, Any], already_in: bool,
                    include_details_required: bool) -> str:
    """The simulator's simple rule: a valid ticket enters once."""
    status = ticket.get("status", "VALID")
    admissible = status == "VALID" or (status == "DETAILSREQUIRED" and include_details_required)
    return "GRANTED" if admissible and not already_in else "DENIED"
