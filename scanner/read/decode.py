"""Barcode decoders behind one interface: zxing-cpp by default, pyzbar when zxing-cpp is
missing (QR and Code128 only).

Two passes, chosen per frame by the caller: the *fast* one (QR only, no rotation, no
inversion) runs on every camera frame; the *full* one (every configured format, rotated and
inverted too) on every Nth. Decoders take grey images, and contain their own failures: a
decoder exception is counted in ``errors`` and yields no result, never reaches the gate.

Text is zxing-cpp's ``TextMode.Plain``: the content transcoded to Unicode as encoded (ECI
honoured), without the HRI decorations ("(01)" GS1 brackets, "␝" control pictures) that
``TextMode.HRI`` (the default) adds. ``TextMode.ECI`` would prefix an AIM identifier and an
ECI designator (``]Q2\\000026TICKET``); hygiene strips those when a handheld sends them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from scanner.errors import ConfigError

log = logging.getLogger(__name__)

# Format names as written in the configuration (reader.formats), zxing-cpp's spelling.
KNOWN_FORMATS = ("QRCode", "Code128", "Aztec", "PDF417", "DataMatrix")
DEFAULT_FORMATS = KNOWN_FORMATS
FAST_FORMAT = "QRCode"  # tickets are QR codes; the cheap pass looks for nothing else


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str | None        # None when the decoder could not make text of the bytes
    data: bytes             # the symbol's bytes as encoded
    symbology: str          # "QRCode", "Code128", ...
    decode_ms: float        # wall time of the decode call that found it


class Decoder(Protocol):
    name: str
    formats: tuple[str, ...]
    errors: int             # decode calls that raised and were contained
    busy_ms: float          # wall time spent in decode calls, found or not (for benchmarks)

    def decode(self, grey: Any, *, full: bool) -> list[Decoded]: ...


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    formats = tuple(formats)
    unknown = [f for f in formats if f not in KNOWN_FORMATS]
    if unknown or not formats:
        raise ConfigError(f"reader.formats: unknown or empty {unknown or list(formats)}; "
                          f"choose from {', '.join(KNOWN_FORMATS)}")
    return formats


class _Contained:
    """Times a decode call and turns any exception into an empty result plus a count."""

    name = "decoder"
    errors = 0
    busy_ms = 0.0  # wall time spent in decode calls, found or not (for benchmarks)

    def _run(self, call: Callable[[], list[Any]]) -> tuple[list[Any], float]:
        started = time.perf_counter()
        try:
            found = call()
        except Exception as exc:  # third-party C code: anything may come out, nothing may pass
            self.errors += 1
            log.debug("%s failed on a frame: %r", self.name, exc)
            found = []
        elapsed = (time.perf_counter() - started) * 1000.0
        self.busy_ms += elapsed
        return found, elapsed


def _fast_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    """What the cheap pass looks for: the QR code tickets use, or all if it is not wanted."""
    return (FAST_FORMAT,) if FAST_FORMAT in formats else formats


class ZxingDecoder(_Contained):
    name = "zxing-cpp"

    def __init__(self, formats: Sequence[str] = DEFAULT_FORMATS) -> None:
        import zxingcpp

        self._zx = zxingcpp
        self.formats = check_formats(formats)
        self._full = zxingcpp.barcode_formats_from_str(",".join(self.formats))
        self._fast = zxingcpp.barcode_formats_from_str(",".join(_fast_formats(self.formats)))

    def decode(self, grey: Any, *, full: bool) -> list[Decoded]:
        zx = self._zx
        found, ms = self._run(lambda: zx.read_barcodes(
            grey, formats=self._full if full else self._fast, try_rotate=full,
            try_invert=full, try_downscale=True, text_mode=zx.TextMode.Plain))
        # Binary content keeps its Plain text too (bytes as Latin-1): hygiene judges it.
        return [Decoded(b.text, b.bytes, b.format.name, ms) for b in found if b.valid]


class PyzbarDecoder(_Contained):
    """The fallback: zbar knows QR and Code128 of our formats, and scans both axes anyway."""

    name = "pyzbar"
    SUPPORTED: ClassVar[dict[str, str]] = {"QRCode": "QRCODE", "Code128": "CODE128"}
    _NAMES: ClassVar[dict[str, str]] = {v: k for k, v in SUPPORTED.items()}

    def __init__(self, formats: Sequence[str] = DEFAULT_FORMATS) -> None:
        from pyzbar import pyzbar

        self._pyzbar = pyzbar
        wanted = check_formats(formats)
        self.formats = tuple(f for f in wanted if f in self.SUPPORTED)
        if not self.formats:
            raise ConfigError(f"reader.formats: pyzbar reads only "
                              f"{', '.join(self.SUPPORTED)}, not {', '.join(wanted)}")
        skipped = sorted(set(wanted) - set(self.formats))
        if skipped:
            log.warning("pyzbar cannot read %s; those codes will be missed", ", ".join(skipped))
        self._full = [pyzbar.ZBarSymbol[self.SUPPORTED[f]] for f in self.formats]
        self._fast = [pyzbar.ZBarSymbol[self.SUPPORTED[f]] for f in _fast_formats(self.formats)]

    def decode(self, grey: Any, *, full: bool) -> list[Decoded]:
        # pyzbar reads only channel 0 of a colour array: callers must pass grey (2-D).
        found, ms = self._run(lambda: self._pyzbar.decode(
            grey, symbols=self._full if full else self._fast))
        return [Decoded(_utf8(s.data), s.data, self._NAMES.get(s.type, s.type), ms)
                for s in found]


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


DECODERS: dict[str, Callable[[Sequence[str]], Decoder]] = {
    "zxing": ZxingDecoder,
    "pyzbar": PyzbarDecoder,
}
# "auto": the first of these whose library imports.
AUTO_ORDER = ("zxing", "pyzbar")


def make_decoder(backend: str = "auto", formats: Sequence[str] = DEFAULT_FORMATS,
                 factories: dict[str, Callable[[Sequence[str]], Decoder]] | None = None
                 ) -> Decoder:
    """Build the configured decoder (reader.decoder); ``auto`` falls back on ImportError."""
    factories = DECODERS if factories is None else factories
    if backend != "auto":
        if backend not in factories:
            raise ConfigError(f"reader.decoder: unknown {backend!r}; "
                              f"choose auto or {', '.join(factories)}")
        return factories[backend](formats)
    missing = []
    for name in AUTO_ORDER:
        try:
            return factories[name](formats)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
            log.warning("decoder %s unavailable: %s; trying the next", name, exc)
    raise ConfigError(f"reader.decoder: no decoder library importable: {'; '.join(missing)}")
