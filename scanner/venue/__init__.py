"""Venue commands: supervisors' signed orders that every gate obeys, even offline.

    command   what an order is (kind, scope, target, the issuer's number) and its checks
    signing   Ed25519 keys: the supervisor signs, gates verify (``[mesh] supervisor_key``)
    applied   the applied commands in the journal database, replay refused there too
    fold      the newest command of every slot folded into what one gate obeys
    in_force  the gate's book: check, keep, obey; decisions wait until it is caught up
    channel   the gate's connection for commands: retained topics, probe, anti-entropy
    issue     the supervisor's side: number, sign, publish retained (CLI, control room)

The decision reads the result as data (``scanner.decide.orders.VenueOrders``).
"""
