"""The simulated access user's settings, rendered as vivenu's ``/me`` answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SYNC_INTERVALS = (5, 15, 30, 60, 300, 600, 900)
REVEAL_INTERVALS = (1, 3, 5, 10, 15, 30)


@dataclass(frozen=True)
class DeviceOptions:
    """What ``/me`` tells the device; change with ``dataclasses.replace``.

    ``events`` limits the scan config to these event ids (None: every event).
    ``allowed_ticket_types`` maps an event id to its allowed type ids; events not in it
    allow all ticket types.
    """

    name: str = "Gate 1 (simulator)"
    events: tuple[str, ...] | None = None
    allowed_ticket_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    checkin: bool = True
    checkout: bool = True
    multi_checkin: bool = False
    check_timeslots: bool = True
    before_minutes: float = 30
    after_minutes: float = 60
    include_details_required: bool = False
    ticket_sync_interval: int = 30
    scan_reveal_interval: int = 3
    sound_feedback: bool = True
    haptic_feedback: bool = False

    def __post_init__(self) -> None:
        # The same constraints vivenu's schema puts on these fields.
        if not (self.checkin or self.checkout):
            raise ValueError("device: at least one of checkin or checkout must be enabled")
        if self.ticket_sync_interval not in SYNC_INTERVALS:
            raise ValueError(f"device.ticket_sync_interval: one of {SYNC_INTERVALS}")
        if self.scan_reveal_interval not in REVEAL_INTERVALS:
            raise ValueError(f"device.scan_reveal_interval: one of {REVEAL_INTERVALS}")
        if self.before_minutes < 0 or self.after_minutes < 0:
            raise ValueError("device: timeslot minutes must not be negative")


def access_user_info(options: DeviceOptions, *, user_id: str, seller_id: str,
                     event_ids: Sequence[str]) -> dict[str, Any]:
    """An AccessUserInfoResource for these options."""
    events = []
    for event_id in event_ids if options.events is None else options.events:
        allowed = options.allowed_ticket_types.get(event_id)
        events.append({
            "eventId": event_id,
            "allowAllTicketTypes": allowed is None,
            "allowedTicketTypeIds": list(allowed or ()),
            "timeslotSettings": {"beforeMinutes": options.before_minutes,
                                 "afterMinutes": options.after_minutes},
        })
    return {
        "_id": user_id,
        "sellerId": seller_id,
        "name": options.name,
        "deviceSettings": {
            "accessMode": "full",
            "scanConfig": {
                "mode": "default",
                "events": events,
                "scanTypes": {"checkin": options.checkin, "checkout": options.checkout},
                "enableMultiCheckin": options.multi_checkin,
                "checkTimeslots": options.check_timeslots,
            },
            "colorSettings": {"success": "green", "declined": "red", "repeated": "orange",
                              "highlighted": "blue", "actionRequired": "orange"},
            "enableSoundFeedback": options.sound_feedback,
            "enableHapticFeedback": options.haptic_feedback,
            "scanRevealInterval": options.scan_reveal_interval,
            "ticketSyncInterval": options.ticket_sync_interval,
        },
        "accessControlSettings": {
            "includeDetailsRequiredTickets": options.include_details_required,
        },
    }
