"""The pages' words: one gettext catalogue per language under ``locale/<lang>/LC_MESSAGES``.

The kiosk's catalogues are ``kiosk.po`` in this package; another page served the same way
(the control room) names its own package and domain (``Catalogue``). A page asks
``/api/i18n`` once and paints every word from the catalogue it gets; the server picks the
language from ``[web] language`` when set, else from the browser's Accept-Language.
Message ids are keys (``word.valid``, ``reason.UNKNOWN_BARCODE.next``); placeholders are
Python brace fields (``{done} of {total}``), filled by the page.

Babel reads the ``.po`` files (the catalogue format translators' tools edit) and
negotiates the language with the usual territory fallback (``de-CH`` gets ``de``).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, NamedTuple

from scanner.config import PAGE_LANGUAGES

FALLBACK = "en"
MAX_ACCEPT_LANGUAGE = 512   # longer headers are cut: a browser sends a few dozen bytes


class Catalogue(NamedTuple):
    """Where a page's catalogues are: ``package``/locale/<lang>/LC_MESSAGES/``domain``.po."""

    package: str
    domain: str


KIOSK = Catalogue("scanner.kiosk", "kiosk")


def po_path(lang: str, where: Catalogue = KIOSK) -> Any:
    return resources.files(where.package).joinpath("locale", lang, "LC_MESSAGES",
                                                   f"{where.domain}.po")


@functools.cache
def catalogue(lang: str, where: Catalogue = KIOSK) -> dict[str, str]:
    """Every message of ``lang``: id -> text (the header entry left out)."""
    from babel.messages.pofile import read_po

    with po_path(lang, where).open("rb") as f:
        cat = read_po(f, locale=lang, domain=where.domain)
    return {str(m.id): str(m.string) for m in cat if m.id and isinstance(m.id, str)}


def preferences(header: str | None) -> list[str]:
    """Accept-Language's tags, most wanted first (q=0 and ``*`` left out)."""
    ranked: list[tuple[float, int, str]] = []
    for i, item in enumerate((header or "")[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        tag = tag.strip()
        if tag and tag != "*" and q > 0:
            ranked.append((-q, i, tag))
    return [tag for _q, _i, tag in sorted(ranked)]


def choose(header: str | None, forced: str | None = None) -> str:
    """The page's language: ``forced`` ([web] language) if set, else the browser's best."""
    if forced:
        return forced
    from babel.core import negotiate_locale

    found = negotiate_locale(preferences(header), PAGE_LANGUAGES, sep="-")
    return found.split("-")[0].lower() if found else FALLBACK


def page_words(lang: str, where: Catalogue = KIOSK) -> dict[str, Any]:
    """What ``/api/i18n`` answers."""
    return {"lang": lang, "messages": catalogue(lang, where)}
