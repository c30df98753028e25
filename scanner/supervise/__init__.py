"""Stewards and supervisors: held tickets and their answers, overrides of denials, manual
releases and passage alarms, each a journal entry saying who and why.

    holds.py   held tickets waiting for the steward's answer (kiosk, wired button, timeout)
    desk.py    what a steward or supervisor may do, journaled before the gate acts
"""

from scanner.supervise.desk import OVERRIDE_REASONS, Desk
from scanner.supervise.holds import Answer, Holds

__all__ = ["OVERRIDE_REASONS", "Answer", "Desk", "Holds"]
