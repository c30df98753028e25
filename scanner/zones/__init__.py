"""Zones: areas inside areas, who is inside each, and how many may be.

``scanner.config.zones`` declares the zones (the ``[[zones]]`` tables), ``presence`` turns
every gate's records into a ticket's place and each zone's count, ``rules`` adds timed
re-entry and capacity to a decision, ``escrow`` divides a capped zone's free places among
the gates so that no split of the mesh can overfill it, and ``book`` holds one gate's (or
the control room's) zone state. All of it is pure: the gatekeeper asks the book, and the
mesh (``scanner.mesh.zoning``) feeds it records, ledgers and time.
"""
