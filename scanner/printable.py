"""Text from outside (reads, server answers, event names) made safe to show and to store.

A read is whatever a device or an operator typed: ESC sequences, C0/C1 controls, the
bidirectional overrides (U+202A..U+202E, U+2066..U+2069, U+200E/U+200F), lone surrogates
from bytes that were not UTF-8. Printed raw, they can rewrite an operator's terminal or make
one barcode look like another (terminal injection); stored raw, a surrogate cannot even be
encoded for the database. Every character ``str.isprintable`` refuses is written as a Python
escape (``\\x1b``, ``\\u202e``, ``\\udcff``), so the result is one printable line.
"""

from __future__ import annotations


def is_number(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits. ``str.isdigit`` also takes other
    scripts' digits and superscripts: ``int`` reads "٤" as 4 and refuses "²" outright."""
    return text.isascii() and text.isdigit()


# Characters of an unreadable read kept in the journal; the rest is counted, not stored, so
# a device that streams garbage cannot fill the journal. A valid read is at most
# ``reader.max_length`` (512) characters, and is never shortened.
KEPT_READ_CHARS = 256


def _escaped(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` with every unprintable character (controls, bidi, surrogates, separators)
    as a Python escape; printable text comes back unchanged. For all terminal output."""
    if text.isprintable():  # one C-level pass for the common, clean case
        return text
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


def unreadable_form(text: str, limit: int = KEPT_READ_CHARS) -> str:
    """How an unreadable read is journaled: repr-like and printable (backslashes doubled,
    so an escape in it is always one), at most ``limit`` characters of the read, with the
    number cut off. Bytes that were not UTF-8 arrive as surrogates (``surrogateescape``, as
    Python decodes a command line) and appear as ``\\udcXX``."""
    kept = escape(text[:limit].replace("\\", "\\\\"))
    cut = len(text) - limit
    return f"{kept}...(+{cut} characters)" if cut > 0 else kept
