"""The decision: a pure function of ticket, history, policy, direction and time."""

from scanner.decide.barcode import check_read, malformed_message, read_problem
from scanner.decide.model import Decision, Direction, Feedback, PastScan, Reason, ScanHistory
from scanner.decide.policy import Policy
from scanner.decide.rules import decide, record

__all__ = [
    "Decision",
    "Direction",
    "Feedback",
    "PastScan",
    "Policy",
    "Reason",
    "ScanHistory",
    "check_read",
    "decide",
    "malformed_message",
    "read_problem",
    "record",
]
