"""Database plumbing the ticket store and the journal share, knowing neither's tables.

engine        engines from URLs: SQLite's pragmas, a server's pre-ping, schema preparation
driver_sql    statements compiled once, run on a driver connection held open
faults        database errors as one-line StoreErrors; damage as ``CorruptStore``
database      ``Database``: reading, writing and held connections, faults translated once
keyed         one row by its primary key on any dialect, write locks, key/value tables
migrations    a schema's versions stepped up under the write lock
identity      which journal belongs to which ticket store
integrity     ``gate db check``'s page and JSON checks
"""
