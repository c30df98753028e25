"""The offline ticket store: tickets, events, device settings and sync progress."""
