"""What each configuration field accepts, declared next to it, and the one loader that checks it.

A field states its rule beside its default, so validation is data, not an if-chain::

    batch_size: int = setting(500, lo=1, hi=1000)
    source: str = setting("stdin", choices=("camera", "serial", "hid", "stdin"))

``build(cls, table, prefix)`` turns one TOML table into the frozen dataclass: unknown keys,
types and rules are checked in that order, then the class's own ``problem()`` for rules that
span fields. Every mistake is one ConfigError line naming the dotted key and what it accepts:
``upload.batch_size: expected an integer from 1 to 1000, got 0``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scanner.errors import ConfigError

# A value's problem in words ("expected ..., got ..."), or None when it is acceptable.
Check = Callable[[Any], str | None]

_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
# Every float is seconds, a rate or a share; past this a timer overflows (timedelta, wait()).
MAX_FLOAT = 1e9


@dataclass(frozen=True)
class Rule:
    """Constraints beyond the type; a tuple field applies ``choices`` to each element."""

    lo: float | None = None          # inclusive lower bound
    hi: float | None = None          # inclusive upper bound
    above: float | None = None       # exclusive lower bound ("> 0")
    choices: tuple[str, ...] = ()
    nonempty: bool = False           # strings: printable and not blank; lists: one item or more
    check: Check | None = None       # anything else; ``text`` then says what it accepts
    text: str = ""

    def accepts(self, kind: Any) -> str:
        """``an integer from 1 to 1000``, ``one of IN, OUT``: the words after "expected"."""
        if self.text:
            return self.text
        if self.choices:
            listed = ", ".join(self.choices)
            return f"a list of {listed}" if _is_tuple(kind) else f"one of {listed}"
        word = _type_word(kind)
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


def build(cls: type, data: Any, prefix: str, problems: list[ConfigError] | None = None) -> Any:
    """The dataclass ``cls`` from a TOML table; ``prefix`` is the dotted key ending in '.'.

    With ``problems``, every mistake is appended there instead of raised, and the key keeps
    its default: the whole table is checked at once (``gate config check``)."""
    def fault(error: ConfigError) -> None:
        if problems is None:
            raise error
        problems.append(error)

    if not isinstance(data, dict):
        fault(ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table"))
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values = {}
    for key, raw in data.items():
        if key not in fields:
            close = [k for k in fields if k.replace("_", "") == key.replace("_", "").lower()]
            hint = f" (did you mean {close[0]}?)" if close else ""
            fault(ConfigError(f"{prefix}{key}: unknown key{hint}"))
            continue
        rule = rule_of(fields[key])
        try:
            value = coerce(hints[key], raw, f"{prefix}{key}", rule, problems)
        except ConfigError as exc:
            fault(exc)
            continue
        problem = rule.problem(value, hints[key])
        if problem:
            fault(ConfigError(f"{prefix}{key}: {problem}"))
            continue
        values[key] = value
    built = cls(**values)
    problem_of: Callable[[], tuple[str, str] | None] | None = getattr(built, "problem", None)
    if problem_of is not None and (found := problem_of()):
        fault(ConfigError(f"{prefix}{found[0]}: {found[1]}"))
    return built


def coerce(kind: Any, raw: Any, key: str, rule: Rule | None = None,
           problems: list[ConfigError] | None = None) -> Any:
    """``raw`` as ``kind``, or a ConfigError saying what ``key`` accepts (a table's
    mistakes go to ``problems`` when given, as in ``build``)."""
    rule = rule or Rule()
    if dataclasses.is_dataclass(kind):
        return build(kind, raw, key + ".", problems)  # type: ignore[arg-type]
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw is None and len(options) < len(typing.get_args(kind)):
            return None
        for option in options:
            if _fits(option, raw):
                return coerce(option, raw, key, rule)
        raise ConfigError(f"{key}: expected {rule.accepts(options[0])}, got {raw!r}")
    if _is_tuple(kind):
        if isinstance(raw, str):
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise ConfigError(f"{key}: expected {rule.accepts(kind)} (a list of strings), "
                              f"got {raw!r}")
        return tuple(raw)
    if kind in _WORDS:
        # nan passes every comparison and inf would be an interval that never ends.
        if not _fits(kind, raw) or (kind is float and not (
                abs(raw) <= MAX_FLOAT and math.isfinite(raw))):
            raise ConfigError(f"{key}: expected {rule.accepts(kind)}, got {raw!r}")
        return float(raw) if kind is float else raw
    raise ConfigError(f"{key}: cannot be set from the config file")


def _fits(kind: Any, raw: Any) -> bool:
    if kind is bool or isinstance(raw, bool):
        return kind is bool and isinstance(raw, bool)
    if kind is float:
        return isinstance(raw, int | float)
    return isinstance(kind, type) and isinstance(raw, kind)


def _is_tuple(kind: Any) -> bool:
    return typing.get_origin(kind) is tuple


def _type_word(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return _WORDS.get(kind, "a list of strings" if _is_tuple(kind) else "a value")


_HIDDEN = "(value not shown: it may hold a token)"


def url_problem(value: Any, schemes: tuple[str, ...], plain: str) -> str | None:
    """A URL with one of ``schemes``, no userinfo, no query; ``plain`` only to loopback.

    The value itself is never echoed: an operator who pastes the token in the wrong place
    must not find it in the log. Only the host is named, which is not a secret.
    """
    from urllib.parse import urlsplit

    from scanner.netrules import is_loopback

    example = f"{schemes[-1]}://host"
    parts = urlsplit(value.strip())
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        return f"expected a URL such as {example} {_HIDDEN}"
    if "@" in parts.netloc:
        return f"must not carry a user or password (user:secret@) {_HIDDEN}"
    if parts.query or parts.fragment:
        return f"must not carry a query or fragment {_HIDDEN}; give the base URL only"
    scheme = parts.scheme.lower()
    if scheme not in schemes or not host:
        return f"expected an {' or '.join(s + '://' for s in schemes)} URL {_HIDDEN}"
    if scheme == plain and not is_loopback(host):
        return (f"plain {plain}:// is allowed only to loopback, not to {host!r}; "
                f"use {schemes[-1]}://")
    return None


def api_url_problem(value: Any) -> str | None:
    return url_problem(value, ("http", "https"), "http")


def mesh_url_problem(value: Any) -> str | None:
    """Empty: no mesh. Plain mqtt:// may reach a LAN broker; MeshConfig.problem refuses it
    when credentials would travel in clear."""
    return url_problem(value, ("mqtt", "mqtts"), "") if value else None
