"""The mesh: the gates of a venue share their journaled decisions over MQTT.

    hlc.py       hybrid logical clock: the order of scans across gates
    message.py   the signed record of one decision, and the other messages, parsed strictly
    store.py     every gate's records in the gate's database (PeerJournal), conflicts
    presence.py  history and presence as the union of all gates' records
    link.py      the MQTT worker: publish, announce, subscribe, anti-entropy

Nothing here is on the decision path except ``presence.MergedHistory.history`` (one
indexed read): the link stamps and publishes scans after the gate has acted.
"""
