"""Is a read plausibly a barcode at all? Checked before any lookup, in well under a microsecond.

A read that fails here never reaches the store: a scanner that glitched, a keyboard wedge that
typed into the wrong window, or a code from another system. It is denied MALFORMED_READ.
"""

from __future__ import annotations

from scanner.decide.model import Reason

# vivenu's scan upload rejects barcodes shorter than this (``barcode`` minLength 8), so a
# shorter read can never be a ticket of ours.
MIN_READ_LENGTH = 8
# Longer than any ticket barcode; bounds the work a garbage read can cause.
DEFAULT_MAX_READ_LENGTH = 512


def read_problem(raw: str, max_length: int = DEFAULT_MAX_READ_LENGTH) -> str | None:
    """Why ``raw`` is not a barcode, as a short phrase, or None when it looks like one.

    Rejected: empty, shorter than 8 characters, longer than ``max_length``, or containing any
    character that is not printable. ``str.isprintable`` does the character test in C: it
    rejects the control characters (C0, DEL, C1), format characters such as zero-width
    spaces and the BOM, surrogates, private-use and unassigned code points, line and
    paragraph separators, and every space except the ASCII one. Letters of any script pass.
    """
    length = len(raw)
    # Fast path: the answer for every good read, one length test and one C-level scan.
    if MIN_READ_LENGTH <= length <= max_length and raw.isprintable():
        return None
    if not length:
        return "empty read"
    if length < MIN_READ_LENGTH:
        return f"too short ({length} characters, at least {MIN_READ_LENGTH})"
    if length > max_length:
        return f"too long ({length} characters, at most {max_length})"
    bad = next(ch for ch in raw if not ch.isprintable())
    return f"contains unprintable character U+{ord(bad):04X}"


def check_read(raw: str, max_length: int = DEFAULT_MAX_READ_LENGTH) -> Reason | None:
    """MALFORMED_READ when ``raw`` cannot be a barcode (see ``read_problem``), else None."""
    return None if read_problem(raw, max_length) is None else Reason.MALFORMED_READ


def malformed_message(raw: str, max_length: int = DEFAULT_MAX_READ_LENGTH) -> str:
    """One line for the kiosk about a read that ``check_read`` refused."""
    return f"Unreadable code: {read_problem(raw, max_length) or 'rejected'}"
