"""The mesh: the gates of a venue share their journaled decisions over MQTT.

    hlc.py       hybrid logical clock: the order of scans across gates
    message.py   the signed record of one decision, and the other messages, parsed strictly
    peer_journal.py  every gate's records in the gate's database (PeerJournal), conflicts
    history.py   a ticket's history as the union of all gates' records
    broker_settings.py  how a gate reaches the broker: [mesh] settings, key and credentials
    broker.py    the seam to a broker: connect, publish, subscribe, an inbox of events
    paho_broker.py   the broker over MQTT 5 (paho): the only module importing paho
    memory_broker.py gates in one process on a hub a test partitions, heals, delays
    partition.py whether the gate decides alone, said once when split, once when healed
    replay.py    own records replayed to the peers that ask, gathered and signed once
    link.py      the worker over a broker: publish, announce, subscribe, anti-entropy

Nothing here is on the decision path except ``history.MergedHistory.history`` (one
indexed read): the link stamps and publishes scans after the gate has acted.
"""
