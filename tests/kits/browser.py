"""Debian's Chromium through Playwright for the kiosk page's tests (no tests here): the
browser (one per worker, shared by the modules) and screenshot folder fixtures, the mark
that skips without /usr/bin/chromium, and ``open_kiosk``, a tab on the page once it is
connected and painted in its language."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# The pages under test are one origin each: a renderer process per site and context, as
# site isolation starts, and the browser's own services are only start-up cost here (the
# browser tests took 44-47 CPU s and 90-92 s serially with them, 42 and 77-83 s without).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-extensions", "--disable-site-isolation-trials", "--renderer-process-limit=2",
        "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication"]

needs_chromium = pytest.mark.skipif(
    not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM),
    reason="no /usr/bin/chromium (deploy/bootstrap.sh --test)")


class Chromium:
    """One Chromium for the whole run of a worker: starting Playwright's driver and the
    browser costs about 1.5 s of CPU, which each module would otherwise pay again. A
    browser that died (a crash in an earlier module) is started anew."""

    def __init__(self, playwright: Any) -> None:
        self.playwright = playwright
        self.chromium: Any = None

    def current(self) -> Any:
        if self.chromium is None or not self.chromium.is_connected():
            self.chromium = self.playwright.chromium.launch(executable_path=CHROMIUM,
                                                            args=ARGS)
        return self.chromium

    def close(self) -> None:
        if self.chromium is not None and self.chromium.is_connected():
            self.chromium.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        shared = Chromium(pw)
        yield shared
        shared.close()


@pytest.fixture(scope="module")
def browser(chromium: Chromium) -> Iterator[Any]:
    """The shared Chromium for one module; every tab and context the module opened is
    closed after it, as a browser of its own would have been."""
    current = chromium.current()
    yield current
    if current.is_connected():
        for context in current.contexts:
            context.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$GATE_ARTIFACTS, or a tmp directory: where screenshots land."""
    out = Path(os.environ.get("GATE_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_kiosk(browser: Any, url: str, *, locale: str = "en-GB", init_script: str | None = None,
               wait_ms: float = 8000) -> Any:
    """A tab of its own (a fresh context) on the kiosk page at 800x480, once the page's
    stream is open and its state and words arrived; close it with ``tab.context.close()``."""
    context = browser.new_context(locale=locale, viewport={"width": 800, "height": 480})
    if init_script is not None:
        context.add_init_script(init_script)
    tab = context.new_page()
    tab.goto(url)
    tab.wait_for_function("() => window.__kiosk && window.__kiosk.connected "
                          "&& window.__kiosk.state && window.__kiosk.lang", timeout=wait_ms)
    return tab


# axe-core's rules for WCAG 2.0 and 2.1, levels A and AA; a violation of these that axe
# rates serious or critical fails the screen.
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
               "resultTypes": ["violations"]}
AXE_FAILS = ("serious", "critical")


def axe_violations(page: Any) -> list[str]:
    """axe's serious and critical WCAG 2.1 AA violations on ``page``: rule, impact, the
    elements."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page, options=AXE_OPTIONS).response["violations"]
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in found if v["impact"] in AXE_FAILS]
