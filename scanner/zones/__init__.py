"""Zones: areas inside areas, who is inside each, and how many may be.

``scanner.config.zones`` declares the zones (the ``[[zones]]`` tables), ``presence`` turns
every gate's records into a ticket's place and each zone's count, ``rules`` adds per-zone
anti-passback,
timed re-entry and capacity to a decision, and ``escrow`` divides a capped zone's free
places among the gates so that no split of the mesh can overfill it. All of it is pure:
the gate's service (``scanner.zones.service``) feeds it records and time.
"""
