"""The pages' catalogues: every message in every language with the same placeholders (the
kiosk's and the control room's), a detail and a next step for every denial reason, and every
key the page or the server names present; the language a browser gets."""

from __future__ import annotations

import re
import string
from importlib import resources

import pytest

from scanner.config import PAGE_LANGUAGES
from scanner.control.routes import CONTROL
from scanner.decide.model import Reason
from scanner.kiosk import present, state
from scanner.kiosk.i18n import FALLBACK, KIOSK, Catalogue, catalogue, choose, preferences

STATIC = resources.files("scanner.kiosk").joinpath("static")


def fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}


# Every page's catalogue: the kiosk's and the control room's.
CATALOGUES = pytest.mark.parametrize("where", [KIOSK, CONTROL], ids=lambda c: c.domain)


@CATALOGUES
def test_every_language_has_a_catalogue_and_no_other(where: Catalogue) -> None:
    found = {p.name for p in resources.files(where.package).joinpath("locale").iterdir()
             if p.is_dir()}
    assert found == set(PAGE_LANGUAGES)


@CATALOGUES
@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
def test_every_message_is_translated_with_the_same_placeholders(where: Catalogue,
                                                                lang: str) -> None:
    english, other = catalogue(FALLBACK, where), catalogue(lang, where)
    assert set(other) == set(english)
    for key, text in english.items():
        assert other[key].strip(), f"{lang}: {key} is empty"
        assert fields(other[key]) == fields(text), f"{lang}: {key} placeholders differ"


def test_every_denial_reason_has_a_label_a_detail_and_a_next_step() -> None:
    words = catalogue(FALLBACK)
    for reason in Reason:
        if reason in (Reason.GRANTED, Reason.CHECKED_OUT):
            continue
        for part in ("label", "detail", "next"):
            assert f"reason.{reason.value}.{part}" in words


def test_every_key_the_page_and_the_server_name_is_in_the_catalogue() -> None:
    js = STATIC.joinpath("kiosk.js").read_text()
    html = STATIC.joinpath("index.html").read_text()
    keys = set(re.findall(r'\bt\("([\w.]+)"\s*[,)]', js))
    keys |= set(re.findall(r'data-t(?:-label|-placeholder)?="([\w.]+)"', html))
    keys |= {key for key, _word in present.WORDS.values()} | {present.DENIED[0]}
    keys |= {key for key, _text in state.CLOCK_BANNERS.values()}
    keys |= set(re.findall(r'"(banner\.\w+)"', resources.files("scanner.kiosk")
                           .joinpath("state.py").read_text()))
    assert len(keys) > 40
    missing = keys - set(catalogue(FALLBACK))
    assert not missing


@pytest.mark.parametrize(("header", "forced", "lang"), [
    ("de-DE,de;q=0.9,en;q=0.8", None, "de"),
    ("fr-CH", None, "fr"),
    ("en;q=0.3, es;q=0.9", None, "es"),
    ("ja, zh;q=0.8", None, "en"),
    ("it;q=0, nl", None, "nl"),
    ("", None, "en"),
    (None, "de", "de"),
    ("nl", "fr", "fr"),
    ("de;q=bogus, it", None, "it"),
])
def test_the_language_comes_from_the_setting_or_the_browser(
        header: str | None, forced: str | None, lang: str) -> None:
    assert choose(header, forced) == lang


def test_a_huge_accept_language_is_cut_not_parsed_whole() -> None:
    assert len(preferences("de," * 100_000)) < 300
