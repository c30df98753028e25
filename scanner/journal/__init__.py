"""The durable scan journal: decisions, presence, history and the upload queue."""

from scanner.journal.journal import Journal, QueuedScan

__all__ = ["Journal", "QueuedScan"]
