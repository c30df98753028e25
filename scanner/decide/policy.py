"""What the rules enforce at this gate: the server's device settings merged with local overrides.

Built once whenever ``/me`` or the configuration changes, never per scan, so each rule is a
set membership or a dict lookup at scan time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, timedelta, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from scanner.decide.barcode import DEFAULT_MAX_READ_LENGTH
from scanner.decide.model import Feedback
from scanner.errors import ConfigError

if TYPE_CHECKING:  # scanner.config reads files and the environment; the rules never need it
    from scanner.config import PolicyConfig

CheckoutWithoutCheckin = Literal["allow", "deny"]

NO_WINDOW = (timedelta(0), timedelta(0))
# A number of minutes above this is a mistake, not a setting; it also keeps timedelta in range.
MAX_WINDOW_MINUTES = 366 * 24 * 60

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Route:
    """One ``[[routes]]`` table: tickets in these areas, with these entry permissions or of
    these ticket types go in through ``gates``. A ticket no route names may use any gate."""

    gates: tuple[str, ...]
    areas: frozenset[str] = frozenset()
    entries: frozenset[str] = frozenset()
    ticket_types: frozenset[str] = frozenset()

    def names(self, area: str | None, entries: tuple[str, ...], ticket_type: str) -> bool:
        return ((area is not None and area in self.areas)
                or not self.entries.isdisjoint(entries) or ticket_type in self.ticket_types)


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything the rules need, precomputed. The defaults are the safe ones (see ``build``)."""

    # Events whose tickets this gate admits; None: any event in the store.
    served_events: frozenset[str] | None = None
    # Allowed ticket type ids per event; an event absent here uses ``default_ticket_types``.
    ticket_types: Mapping[str, frozenset[str]] = field(default_factory=lambda: _EMPTY,
                                                        hash=False)
    # For events not in ``ticket_types``; None: every ticket type.
    default_ticket_types: frozenset[str] | None = None
    # Per event: how long before and after a ticket's timeslot start it admits.
    timeslot_windows: Mapping[str, tuple[timedelta, timedelta]] = field(
        default_factory=lambda: _EMPTY, hash=False)
    allow_checkin: bool = True
    allow_checkout: bool = True
    multi_checkin: bool = False
    check_timeslots: bool = False
    include_details_required: bool = False
    # Entry-permission ids this gate serves; empty: entry lists are not checked.
    entries: frozenset[str] = frozenset()
    checkout_without_checkin: CheckoutWithoutCheckin = "deny"
    max_read_length: int = DEFAULT_MAX_READ_LENGTH
    # Colour of "valid but already scanned" (colorSettings.repeated).
    repeated_feedback: Feedback = Feedback.ORANGE
    # Zone in which messages show clock times; a value, so the rules stay pure.
    display_tz: tzinfo = UTC
    # This gate's id and the venue's routes: a routed ticket elsewhere is WRONG_GATE.
    gate_id: str = ""
    routes: tuple[Route, ...] = ()
    # Held for a steward: these ticket types, and reduced-price tickets when set.
    confirm_ticket_types: frozenset[str] = frozenset()
    confirm_discounted: bool = False
    # Colour of a held ticket (colorSettings.actionRequired), pink as in vivenu's palette.
    action_feedback: Feedback = Feedback.PINK

    def allowed_types(self, event_id: str) -> frozenset[str] | None:
        """Ticket type ids admitted for ``event_id``; None: all."""
        return self.ticket_types.get(event_id, self.default_ticket_types)

    def window(self, event_id: str) -> tuple[timedelta, timedelta]:
        """(before, after) the timeslot start within which ``event_id`` admits."""
        return self.timeslot_windows.get(event_id, NO_WINDOW)

    @classmethod
    def build(cls, me: Any, local: PolicyConfig, gate_events: tuple[str, ...] = (), *,
              max_read_length: int = DEFAULT_MAX_READ_LENGTH,
              display_tz: tzinfo = UTC, gate_id: str = "",
              routes: tuple[Route, ...] = ()) -> Policy:
        """Combine the device settings from ``/me`` with the local ``[policy]`` configuration.

        Precedence, key by key:

        - A local value wins when it is set (not None for flags, non-empty for lists); the
          server's value applies otherwise; the default applies when neither is usable.
        - ``me`` is None until ``/me`` was fetched once. The defaults then are the safe ones:
          check-in and check-out allowed, no multi check-in, DETAILSREQUIRED tickets not
          admitted, every ticket type, timeslots not checked (without the server's
          before/after minutes a window of zero would refuse every visitor).
        - A malformed ``/me`` never raises: a value of the wrong type counts as absent for
          that key only, an event entry without a text ``eventId`` is skipped, and
          non-text ticket type ids are dropped.
        - Served events: ``gate_events`` (local) if non-empty, else the ``scanConfig.events``
          ids, else None: any event whose tickets are in the store.
        - Ticket types: a local ``allowed_ticket_types`` applies to every event and replaces
          the server's lists. From the server, an event admits every type when
          ``allowAllTicketTypes`` is true or ``allowedTicketTypeIds`` is missing or empty: an
          empty list is what an unconfigured event looks like, and refusing every ticket of
          an event is not a safe reading of it. The first entry of a duplicated event wins.
        - Timeslot minutes come only from the server (0 when absent; negative, non-finite or
          absurdly large values count as absent).
        - ``entries`` and ``checkout_without_checkin`` are local only; the API has neither.
          A ``checkout_without_checkin`` other than "allow" or "deny" is a configuration
          mistake and raises ConfigError naming the key.
        - ``colorSettings.repeated`` sets the colour of "already scanned" denials when it is
          one the kiosk can show; otherwise orange, as in vivenu's own app.
        - Held tickets: ``confirm_ticket_types`` and ``confirm_discounted`` are local only
          (holding people at a gate is the venue's choice, not a server default); they are
          shown in ``colorSettings.actionRequired`` when the kiosk can show it, else pink.
        """
        me = _obj(me)
        device = _obj(me.get("deviceSettings"))
        scan = _obj(device.get("scanConfig"))
        scan_types = _obj(scan.get("scanTypes"))
        access = _obj(me.get("accessControlSettings"))
        colors = _obj(device.get("colorSettings"))

        server_types: dict[str, frozenset[str]] = {}
        windows: dict[str, tuple[timedelta, timedelta]] = {}
        server_events: list[str] = []
        listed = scan.get("events")
        for item in listed if isinstance(listed, list) else ():
            event_id = item.get("eventId") if isinstance(item, dict) else None
            if not isinstance(event_id, str) or event_id in server_events:
                continue
            server_events.append(event_id)
            types = _types(item)
            if types is not None:
                server_types[event_id] = types
            window = _window(_obj(item.get("timeslotSettings")))
            if window != NO_WINDOW:
                windows[event_id] = window

        if gate_events:
            served: frozenset[str] | None = frozenset(gate_events)
        else:
            served = frozenset(server_events) if server_events else None

        if local.allowed_ticket_types:
            per_event: dict[str, frozenset[str]] = {}
            default_types: frozenset[str] | None = frozenset(local.allowed_ticket_types)
        else:
            per_event, default_types = server_types, None

        if local.checkout_without_checkin not in ("allow", "deny"):
            raise ConfigError("policy.checkout_without_checkin: expected 'allow' or 'deny', "
                              f"got {local.checkout_without_checkin!r}")

        repeated = colors.get("repeated")
        if not (isinstance(repeated, str) and repeated in _FEEDBACK_VALUES):
            repeated = Feedback.ORANGE
        action = colors.get("actionRequired")
        action_feedback = Feedback(action) if isinstance(action, str) \
            and action in _FEEDBACK_VALUES else Feedback.PINK
        return cls(
            served_events=served,
            ticket_types=MappingProxyType(per_event),
            default_ticket_types=default_types,
            timeslot_windows=MappingProxyType(windows),
            allow_checkin=_pick(local.allow_checkin, scan_types.get("checkin"), True),
            allow_checkout=_pick(local.allow_checkout, scan_types.get("checkout"), True),
            multi_checkin=_pick(local.multi_checkin, scan.get("enableMultiCheckin"), False),
            check_timeslots=_pick(local.check_timeslots, scan.get("checkTimeslots"), False),
            include_details_required=_pick(local.include_details_required,
                                           access.get("includeDetailsRequiredTickets"), False),
            entries=frozenset(local.entries),
            checkout_without_checkin=local.checkout_without_checkin,  # type: ignore[arg-type]
            max_read_length=max_read_length,
            repeated_feedback=Feedback(repeated),
            display_tz=display_tz,
            gate_id=gate_id,
            routes=routes,
            confirm_ticket_types=frozenset(local.confirm_ticket_types),
            confirm_discounted=local.confirm_discounted,
            action_feedback=action_feedback,
        )


_FEEDBACK_VALUES = frozenset(f.value for f in Feedback)


def _obj(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one: malformed counts as absent."""
    return value if isinstance(value, dict) else _EMPTY


def _pick(local: bool | None, server: Any, default: bool) -> bool:
    """Local flag if set, else the server's if it really is a boolean, else the default."""
    if local is not None:
        return local
    return server if isinstance(server, bool) else default


def _types(event: Mapping[str, Any]) -> frozenset[str] | None:
    """The ticket types one ``scanConfig.events`` entry restricts to; None: all of them."""
    if event.get("allowAllTicketTypes") is True:
        return None
    ids = event.get("allowedTicketTypeIds")
    if not isinstance(ids, list):
        return None
    allowed = frozenset(i for i in ids if isinstance(i, str))
    return allowed or None


def _window(settings: Mapping[str, Any]) -> tuple[timedelta, timedelta]:
    return (timedelta(minutes=_minutes(settings.get("beforeMinutes"))),
            timedelta(minutes=_minutes(settings.get("afterMinutes"))))


def _minutes(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not math.isfinite(value) or value < 0 or value > MAX_WINDOW_MINUTES:
        return 0
    return value
