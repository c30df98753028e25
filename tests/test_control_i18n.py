"""The control room's catalogues (every message in every language with the same
placeholders: tests/test_kiosk_i18n.py, for both pages): every key the page names present,
every reason a log line can carry worded; the language a browser gets, and the one ``[web]
language`` forces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from importlib import resources

import pytest
from kits import loopback

from scanner.config import PAGE_LANGUAGES
from scanner.config.zones import venue
from scanner.control.routes import CONTROL, words
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.decide.model import Reason
from scanner.kiosk.i18n import FALLBACK, catalogue
from scanner.supervise import OVERRIDE_REASONS
from scanner.supervise.desk import IN_LOCKDOWN, LOCKDOWN_OVERRIDDEN
from scanner.supervise.holds import STOPPING, TIMED_OUT
from scanner.venue.command import Kind

STATIC = resources.files("scanner.control").joinpath("static")


def test_every_key_the_page_names_is_in_the_catalogue() -> None:
    js = STATIC.joinpath("control.js").read_text()
    html = STATIC.joinpath("control.html").read_text()
    keys = set(re.findall(r'\bt\("([\w.]+)"\s*[,)]', js))
    keys |= set(re.findall(r'data-t(?:-label)?="([\w.]+)"', html))
    # Keys the page builds from what the server sends: a state, a way, a link's state.
    keys |= {f"state.{s}" for s in ("online", "alone")} | {"direction.IN", "direction.OUT"}
    keys |= {f"link.{s}" for s in ("connecting", "live", "lost")}
    # A command's kind, and who made an entry and why (the roles and codes the desk writes).
    keys |= {f"kind.{k.value}" for k in Kind}
    keys |= {f"role.{r}" for r in ("supervisor", "steward", "gate", "button")}
    keys |= {f"why.{w}" for w in (IN_LOCKDOWN, LOCKDOWN_OVERRIDDEN, TIMED_OUT.why, STOPPING.why)}
    assert len(keys) > 35
    assert not keys - set(catalogue(FALLBACK, CONTROL))


@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
def test_every_reason_of_a_log_line_has_a_label(lang: str) -> None:
    messages = words(lang)["messages"]
    assert not {f"reason.{r.value}.label" for r in Reason} - set(messages)
    assert not {f"override.why.{w}" for w in OVERRIDE_REASONS} - set(messages)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ControlServer]:
    room = ControlServer(VenueView(venue(), tz=UTC), language=getattr(request, "param", None))
    room.start()
    yield room
    room.stop()


def test_the_browsers_language_is_the_pages(server: ControlServer) -> None:
    page = loopback.get(server.url, headers={"Accept-Language": "de-CH,de;q=0.9,en;q=0.5"},
                     timeout=5)
    assert '<html lang="de">' in page.text
    said = loopback.get(f"{server.url}/api/i18n", headers={"Accept-Language": "de"}, timeout=5)
    assert said.json()["lang"] == "de"
    assert said.json()["messages"]["page.title"] == "Leitstand"


@pytest.mark.parametrize("server", ["fr"], indirect=True)
def test_a_configured_language_wins_over_the_browsers(server: ControlServer) -> None:
    page = loopback.get(server.url, headers={"Accept-Language": "de"}, timeout=5)
    assert '<html lang="fr">' in page.text
    said = loopback.get(f"{server.url}/api/i18n", headers={"Accept-Language": "de"}, timeout=5)
    assert said.json()["messages"]["page.title"] == "Salle de contrôle"
