"""An answer's body decompressed here, never more of it at once than the caller's cap.

httpx decompresses as it streams, but each chunk read in one go: a 64 KiB chunk of a gzip
bomb becomes 64 MiB before a byte cap can look at it, and a body encoded twice
("gzip, gzip", which httpx also decodes) a thousand times that. So the client reads the
raw bytes and inflates them with ``Inflater``: one layer of what it asks for
(``ACCEPT_ENCODING``), each call bounded.
"""

from __future__ import annotations

import zlib

# What the client asks for; zlib decompresses both. Nothing else is taken.
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16,
          "deflate": zlib.MAX_WBITS}


class BadEncoding(Exception):
    """The body cannot be decompressed; internal to the client, which names the request."""


class Inflater:
    """Decompresses one body sent with ``content_encoding`` (a header's value, or None).

    Raises BadEncoding for an encoding not asked for, a body that does not decompress, and
    (``end``) one cut short."""

    def __init__(self, content_encoding: str | None) -> None:
        content_encoding = content_encoding or ""
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in _WBITS):
            raise BadEncoding(f"content-encoding {content_encoding[:40]!r} was not asked for")
        self._zlib = zlib.decompressobj(_WBITS[codings[0]]) if codings else None
        self._fed = False  # an empty body is empty whatever its header says

    def feed(self, data: bytes, limit: int) -> bytes:
        """What ``data`` decompresses to, at most ``limit`` (>= 1) bytes of it: a caller
        counting towards a cap of ``limit - 1`` more bytes then sees it passed."""
        if self._zlib is None:
            return data
        self._fed = self._fed or bool(data)
        try:
            return self._zlib.decompress(data, limit)
        except zlib.error:
            raise BadEncoding("the compressed body does not decompress") from None

    def end(self) -> None:
        """The body is complete: a compressed stream must have reached its end."""
        if self._zlib is not None and self._fed and not self._zlib.eof:
            raise BadEncoding("the compressed body ends before its stream does")
