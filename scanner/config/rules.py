"""What each configuration field accepts, declared next to it.

A field states its rule beside its default, so validation is data, not an if-chain::

    batch_size: int = setting(500, lo=1, hi=1000)
    source: str = setting("stdin", choices=SOURCE_NAMES)

``scanner.config.tables.build`` applies the rules; the checks below are the values a
bound or a list of choices cannot describe (a pin name, a terminator, a time of day).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

from scanner.config.names import TERMINATOR_NAMES
from scanner.printable import is_number

# A value's problem in words ("expected ..., got ..."), or None when it is acceptable.
Check = Callable[[Any], str | None]

TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class Rule:
    """Constraints beyond the type; a tuple field applies ``choices`` to each element."""

    lo: float | None = None          # inclusive lower bound
    hi: float | None = None          # inclusive upper bound
    above: float | None = None       # exclusive lower bound ("> 0")
    choices: tuple[str, ...] = ()
    nonempty: bool = False           # strings: printable and not blank; lists: one item or more
    path: bool = False               # a file or folder: a leading ~user must name a user
    check: Check | None = None       # anything else; ``text`` then says what it accepts
    text: str = ""

    def accepts(self, kind: Any) -> str:
        """``an integer from 1 to 1000``, ``one of IN, OUT``: the words after "expected"."""
        if self.text:
            return self.text
        if self.choices:
            listed = ", ".join(self.choices)
            return f"a list of {listed}" if is_tuple(kind) else f"one of {listed}"
        word = type_word(kind)
        if self.lo is not None and self.hi is not None:
            return f"{word} from {self.lo:g} to {self.hi:g}"
        if self.above is not None:
            return f"{word} > {self.above:g}"
        if self.lo is not None:
            return f"{word} >= {self.lo:g}"
        if self.hi is not None:
            return f"{word} <= {self.hi:g}"
        if self.nonempty and word == "a string":
            return "a non-empty printable string"
        if self.nonempty:
            return f"{word}, not empty"
        return word

    def problem(self, value: Any, kind: Any) -> str | None:
        if self.check is not None:
            return self.check(value)
        expected = f"expected {self.accepts(kind)}"
        if isinstance(value, tuple):
            if self.nonempty and not value:
                return f"{expected}, got an empty list"
            return next((f"{expected}, got {item!r}" for item in value
                         if self.choices and item not in self.choices), None)
        bad = f"{expected}, got {value!r}"
        if self.choices and value not in self.choices:
            return bad
        if isinstance(value, str) and self.nonempty and not printable(value):
            return bad
        if isinstance(value, str) and self.path and (home := unknown_home(value)):
            # Only the ~user part is named: the rest may be a secret pasted in its place.
            return f"{home!r} names no user with a home folder"
        if isinstance(value, int | float) and not isinstance(value, bool) and (
                (self.lo is not None and value < self.lo)
                or (self.hi is not None and value > self.hi)
                or (self.above is not None and value <= self.above)):
            return bad
        return None


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            repr: bool = True, **rule: Any) -> Any:
    """A dataclass field with its Rule in the metadata (the keywords are Rule's)."""
    metadata = {"rule": Rule(**rule)} if rule else {}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, repr=repr, metadata=metadata)
    return dataclasses.field(default=default, repr=repr, metadata=metadata)


def rule_of(f: dataclasses.Field[Any]) -> Rule:
    rule: Rule = f.metadata.get("rule", Rule())
    return rule


def printable(value: str) -> bool:
    return bool(value.strip()) and value.isprintable()


def unknown_home(path: str) -> str | None:
    """The leading ``~user`` of ``path`` when it cannot be expanded (no such user, or no
    HOME for a bare ``~``), else None: every later ``expanduser`` would raise."""
    try:
        Path(path).expanduser()
    except RuntimeError:
        return path.split("/", 1)[0]
    return None


# gpiozero's pin names: BCM numbers by prefix, physical header positions, wiringPi numbers.
_PIN_NAME = re.compile(r"(GPIO|BCM|BOARD|WPI)\d{1,3}|(J8|P1):\d{1,2}", re.IGNORECASE)
PIN_TEXT = "a GPIO number >= 0 or a gpiozero pin name such as GPIO17 or BOARD11"


def pin_problem(value: Any) -> str | None:
    """A wired pin is a BCM number or a gpiozero name; None (the key absent) is not wired."""
    if value is None or (isinstance(value, int) and value >= 0):
        return None
    if isinstance(value, str) and _PIN_NAME.fullmatch(value):
        return None
    return f"expected {PIN_TEXT}, got {value!r}"


def is_tuple(kind: Any) -> bool:
    return typing.get_origin(kind) is tuple


def type_word(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return TYPE_WORDS.get(kind, "a list of strings" if is_tuple(kind) else "a value")


TERMINATOR_TEXT = 'CR, LF, CRLF or the literal bytes (e.g. "\\x03")'


def terminator_problem(value: Any) -> str | None:
    """A serial terminator as ``hardware.serial_reader.parse_terminator`` takes it: a name
    or literal Latin-1 bytes, not empty (tests/test_config_registries.py holds the two to
    the same answer)."""
    bad = f"expected {TERMINATOR_TEXT}, got {value!r}"
    if not isinstance(value, str) or not value:
        return bad
    if value.upper() in TERMINATOR_NAMES:
        return None
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return bad
    return None


# A gate's name is also its MQTT topic level (gates/<gate_id>/...) and its broker username:
# '/' would split the level, '+' and '#' are MQTT wildcards (mosquitto refuses such a user)
# and ':' separates the username in mosquitto's password file and in credentials_file.
MAX_GATE_ID = 64
_GATE_ID_FORBIDDEN = "/+#:"
GATE_ID_TEXT = (f"a printable name of at most {MAX_GATE_ID} characters, without surrounding "
                f"spaces or any of {' '.join(_GATE_ID_FORBIDDEN)} (it names the gate's "
                "mesh topics and broker user)")


def gate_id_problem(value: Any) -> str | None:
    if isinstance(value, str) and value and value.isprintable() and value == value.strip() \
            and len(value) <= MAX_GATE_ID and not set(value) & set(_GATE_ID_FORBIDDEN):
        return None
    return f"expected {GATE_ID_TEXT}, got {value!r}"


def parse_time_of_day(text: str) -> time:
    """``HH:MM`` (24-hour) as a time; ValueError otherwise."""
    hours, sep, minutes = text.partition(":")
    if not (sep and len(minutes) == 2 and is_number(hours) and is_number(minutes)):
        raise ValueError(text)
    return time(int(hours), int(minutes))


def time_of_day_problem(value: Any) -> str | None:
    try:
        parse_time_of_day(value)
    except (ValueError, TypeError, AttributeError):
        return f"expected a local time of day as HH:MM, got {value!r}"
    return None
