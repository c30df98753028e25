"""Linux key codes to characters for keyboard-wedge scanners, per keyboard layout.

A wedge scanner types a code as key presses in the layout the host is *believed* to have;
configure the same layout here as on the scanner. Key codes are the Linux input ABI
(linux/input-event-codes.h), stable across kernels, so no evdev import is needed here.
Dead keys (´ ^ ` on German keyboards) are taken literally: scanners do not compose accents.
"""

from __future__ import annotations

from dataclasses import dataclass

# Modifiers and keys with a role of their own.
KEY_LEFTSHIFT = 42
KEY_RIGHTSHIFT = 54
KEY_CAPSLOCK = 58
KEY_RIGHTALT = 100  # AltGr
KEY_ENTER = 28
KEY_KPENTER = 96
SHIFTS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
ENTERS = frozenset({KEY_ENTER, KEY_KPENTER})

# Keys that print the same in every layout here: space, tab and the numeric keypad.
_COMMON = {57: (" ", " "), 15: ("\t", "\t"), 55: ("*", "*"), 74: ("-", "-"), 78: ("+", "+"),
           98: ("/", "/"), 83: (".", "."), 82: ("0", "0"), 79: ("1", "1"), 80: ("2", "2"),
           81: ("3", "3"), 75: ("4", "4"), 76: ("5", "5"), 77: ("6", "6"), 71: ("7", "7"),
           72: ("8", "8"), 73: ("9", "9")}

# The four alphanumeric rows start at these key codes (KEY_1, KEY_Q, KEY_A, KEY_Z).
_ROW_STARTS = (2, 16, 30, 44)


@dataclass(frozen=True)
class Keymap:
    name: str
    plain: dict[int, str]
    shifted: dict[int, str]
    altgr: dict[int, str]

    def char(self, code: int, *, shift: bool, altgr: bool = False) -> str | None:
        if altgr:
            return self.altgr.get(code)
        return (self.shifted if shift else self.plain).get(code)


def _layout(name: str, rows: tuple[str, ...], shifted_rows: tuple[str, ...],
            extra: dict[int, tuple[str, str]], altgr: dict[int, str]) -> Keymap:
    plain = {code: pair[0] for code, pair in _COMMON.items()}
    shifted = {code: pair[1] for code, pair in _COMMON.items()}
    for start, row, srow in zip(_ROW_STARTS, rows, shifted_rows, strict=True):
        for offset, (ch, sch) in enumerate(zip(row, srow, strict=True)):
            plain[start + offset] = ch
            shifted[start + offset] = sch
    for code, (ch, sch) in extra.items():
        plain[code] = ch
        shifted[code] = sch
    return Keymap(name, plain, shifted, altgr)


US = _layout("us",
             ("1234567890-=", "qwertyuiop[]", "asdfghjkl;'`", "zxcvbnm,./"),
             ("!@#$%^&*()_+", "QWERTYUIOP{}", 'ASDFGHJKL:"~', "ZXCVBNM<>?"),
             {43: ("\\", "|")}, {})

DE = _layout("de",
             ("1234567890ß´", "qwertzuiopü+", "asdfghjklöä^", "yxcvbnm,.-"),
             ('!"§$%&/()=?`', "QWERTZUIOPÜ*", "ASDFGHJKLÖÄ°", "YXCVBNM;:_"),
             {43: ("#", "'"), 86: ("<", ">")},
             {3: "²", 4: "³", 8: "{", 9: "[", 10: "]", 11: "}", 12: "\\", 16: "@", 18: "€",
              27: "~", 86: "|", 50: "µ"})

LAYOUTS = {keymap.name: keymap for keymap in (US, DE)}


def keymap(name: str) -> Keymap:
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown keyboard layout {name!r}; "
                         f"known: {', '.join(sorted(LAYOUTS))}") from None
