"""The control room: every gate, every zone and the venue's recent decisions on one page.

``view`` keeps what the mesh says (records, statuses, ledgers, health) as one venue view,
``routes`` serves it over the kiosk's web server, ``observer`` joins the mesh to feed it.
"""
