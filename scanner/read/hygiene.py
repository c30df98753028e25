"""Read hygiene: turn what a device delivered into a clean ``Payload``, or a reason why not.

- surrounding whitespace is stripped;
- a leading AIM symbology identifier (``]Q1``, ``]C0``, ``]d2``: handhelds add it when so
  configured, zxing-cpp in ``TextMode.ECI``) is removed and kept as the symbology;
- leading ECI designators (``\\000026`` = UTF-8) are removed; in that ECI protocol a literal
  backslash is doubled, so ``\\\\`` becomes ``\\`` again;
- rejected with a reason code: EMPTY, NOT_UTF8 (also U+FFFD, a key or byte the device
  could not map), CONTROL_CHARS (anything not printable), TOO_LONG;
- the same text again within ``window`` seconds of its last sighting is the same read.
  The window slides: a ticket held in front of the camera for ten seconds is one read, and
  it counts again only after it has been away for the window. Rejects are deduplicated the
  same way, so a damaged code in view does not print thirty lines a second.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from hardware.reads import RawRead
from scanner.config import DEFAULT_DEDUP_WINDOW as DEFAULT_WINDOW
from scanner.decide.barcode import DEFAULT_MAX_READ_LENGTH as DEFAULT_MAX_LENGTH
from scanner.errors import ReadError

EMPTY = "EMPTY"
NOT_UTF8 = "NOT_UTF8"
CONTROL_CHARS = "CONTROL_CHARS"
TOO_LONG = "TOO_LONG"
REASONS = (EMPTY, NOT_UTF8, CONTROL_CHARS, TOO_LONG)


# AIM ISO/IEC 15424 identifier: "]", a symbology letter, a modifier character.
_AIM = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_ECI = re.compile(r"(?:\\[0-9]{6})+")
_AIM_SYMBOLOGIES = {"Q": "QRCode", "C": "Code128", "z": "Aztec", "L": "PDF417",
                    "d": "DataMatrix", "E": "EAN", "A": "Code39", "I": "ITF"}
# Sightings kept before old ones are pruned; each entry is one distinct code.
_PRUNE_AT = 1024


@dataclass(frozen=True, slots=True)
class Payload:
    """One clean read; timestamps are time.monotonic_ns() for scan-to-decision latency."""

    text: str
    source: str
    symbology: str | None
    captured_ns: int         # when the frame or line arrived from the device
    decode_ms: float         # time in the image decoder (0 for line devices)
    accepted_ns: int         # when hygiene passed it on


@dataclass(frozen=True, slots=True)
class Rejected:
    raw: RawRead
    reason: str
    message: str

    def line(self) -> str:
        return f"REJECTED {self.reason:<13} {self.raw.source}  {self.message}"

    @property
    def text(self) -> str:
        """The read as text, bytes that are not UTF-8 kept as surrogates (surrogateescape),
        for journaling it as an unreadable code."""
        data = self.raw.data
        return data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data

    @property
    def why(self) -> str:
        """The reason in one phrase, with its code: ``not UTF-8 at byte 0 (NOT_UTF8)``."""
        return f"{self.message} ({self.reason})"


def normalize(data: bytes | str, max_length: int = DEFAULT_MAX_LENGTH,
              truncated: bool = False) -> tuple[str, str | None]:
    """Clean text and the symbology its AIM identifier named; raises ReadError(reason)."""
    if truncated:
        raise ReadError(f"longer than {max_length} characters, cut by the device",
                        reason=TOO_LONG)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReadError(f"not UTF-8 at byte {exc.start}", reason=NOT_UTF8) from None
    text = data.strip()
    symbology = None
    if aim := _AIM.match(text):
        symbology = _AIM_SYMBOLOGIES.get(text[1], f"AIM-{text[1]}")
        text = text[aim.end():]
    if eci := _ECI.match(text):
        text = text[eci.end():].replace("\\\\", "\\")
    text = text.strip()
    if not text:
        raise ReadError("nothing but whitespace or identifiers", reason=EMPTY)
    if len(text) > max_length:
        raise ReadError(f"{len(text)} characters, more than {max_length}", reason=TOO_LONG)
    if "\ufffd" in text:
        raise ReadError("contains U+FFFD (bytes or keys the device could not map)",
                        reason=NOT_UTF8)
    if not text.isprintable():  # one C-level pass on the common, clean read
        bad = next(ch for ch in text if not ch.isprintable())
        raise ReadError(f"contains control character U+{ord(bad):04X}", reason=CONTROL_CHARS)
    return text, symbology


class Deduper:
    """Answers "is this a new read?" for a key seen at a monotonic time in ns."""

    def __init__(self, window: float = DEFAULT_WINDOW) -> None:
        self.window_ns = int(window * 1e9)
        self._last: dict[object, int] = {}

    def fresh(self, key: object, at_ns: int) -> bool:
        last = self._last.get(key)
        self._last[key] = at_ns if last is None else max(last, at_ns)
        if len(self._last) > _PRUNE_AT:
            self._prune(at_ns)
        return last is None or at_ns - last > self.window_ns

    def _prune(self, now_ns: int) -> None:
        self._last = {k: t for k, t in self._last.items() if now_ns - t <= self.window_ns}


class Hygiene:
    """``check(raw)``: a ``Payload``, a ``Rejected`` with its reason, or None (duplicate)."""

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH,
                 window: float = DEFAULT_WINDOW) -> None:
        self.max_length = max_length
        self.dedup = Deduper(window)

    def check(self, raw: RawRead, now_ns: int | None = None) -> Payload | Rejected | None:
        try:
            text, aim_symbology = normalize(raw.data, self.max_length, raw.truncated)
        except ReadError as exc:
            if not self.dedup.fresh(("rejected", raw.data), raw.captured_ns):
                return None
            return Rejected(raw, exc.reason, str(exc))
        if not self.dedup.fresh(text, raw.captured_ns):
            return None
        return Payload(text, raw.source, raw.symbology or aim_symbology, raw.captured_ns,
                       raw.decode_ms, time.monotonic_ns() if now_ns is None else now_ns)
