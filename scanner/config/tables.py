"""One TOML table into its frozen dataclass, every field checked against its rule.

``build(cls, table, prefix)`` checks unknown keys, types and rules in that order, then the
class's own ``problem()`` for rules that span fields. Every mistake is one ConfigError line
naming the dotted key and what it accepts:
``upload.batch_size: expected an integer from 1 to 1000, got 0``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from scanner.config.rules import TYPE_WORDS, Rule, is_tuple, rule_of
from scanner.errors import ConfigError

# Every float is seconds, a rate or a share; past this a timer overflows (timedelta, wait()).
MAX_FLOAT = 1e9


# Keys an earlier version read, and where they are now: one line saying so, not "unknown".
MOVED = {"mesh.zone": "the top-level zone key (this gate's zone in [[zones]], which venue "
                      "commands for a zone follow)"}


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
        if f"{prefix}{key}" in MOVED:
            fault(ConfigError(f"{prefix}{key}: moved to {MOVED[prefix + key]}"))
            continue
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
    if is_tuple(kind):
        if isinstance(raw, str):
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise ConfigError(f"{key}: expected {rule.accepts(kind)} (a list of strings), "
                              f"got {raw!r}")
        return tuple(raw)
    if kind in TYPE_WORDS:
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
