"""``gate bench kiosk``: what open pages cost the gate, and how soon a page paints a read.

(a) read-to-relay (as ``gate bench run`` (a) measures it: a pty handheld's line until the
    mock relay pin goes active, the daemon in this process) with no page open, then with
    ``--streams`` open event streams and ``--status-rate`` requests a second to
    ``/api/status``, from a client process of their own (a venue's tablets and a
    monitoring system are other machines): the streams come from several loopback
    addresses, as many devices would. The same reads, alternating rounds of each, so a
    disk's or a neighbour's mood falls on both.
(b) handheld to painted result in Debian's Chromium (needs Playwright and
    /usr/bin/chromium; skipped, and said so, without them): the line's write until the
    page's frame with the decision was painted (the page's own probe, rAF then a task),
    against the floor of the same run: the write until the relay, which the page cannot
    beat.

Goals: (a) p99 with the load <= 1.2x p99 without; (b) p95 <= 100 ms.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.handheld import PtyHandheld
from scanner.bench.run import (
    GAP,
    PULSE_S,
    RELAY,
    RelayWatch,
    granted_barcodes,
    quiet_daemon_log,
    read_to_relay_ms,
    simulator,
)
from scanner.bench.stats import figure_line, goal, goal_line, percentile, percentiles
from scanner.netrules import free_port

DEFAULT_SCANS = 200
DEFAULT_STREAMS = 100
DEFAULT_STATUS_RATE = 20.0
DEFAULT_PAINTS = 60
SYNC_TICKETS = 2000
GOAL_LOAD_RATIO = 1.2
GOAL_PAINT_P95_MS = 100.0
ROUND = 25               # reads per round; rounds alternate without and with the load
STREAMS_PER_ADDRESS = 20  # below the kiosk's per-address bound
LOAD_WAIT = 30.0          # for every stream to be open
CHROMIUM = "/usr/bin/chromium"


def load(url: str, streams: int, rate: float) -> None:
    """The client process: ``streams`` open event streams and ``rate`` status requests a
    second until stdin closes; prints "open" once every stream answered."""
    import httpx

    opened = threading.Semaphore(0)

    def stream(i: int) -> None:
        address = f"127.0.0.{2 + i // STREAMS_PER_ADDRESS}"
        with httpx.Client(transport=httpx.HTTPTransport(local_address=address),
                          timeout=httpx.Timeout(5.0, read=None)) as client:
            try:
                with client.stream("GET", url + "/events") as answer:
                    opened.release()
                    for _chunk in answer.iter_bytes():
                        pass
            except httpx.HTTPError:
                return

    def poll() -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                started = time.monotonic()
                with suppress(httpx.HTTPError):
                    client.get(url + "/api/status")
                time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))

    for i in range(streams):
        threading.Thread(target=stream, args=(i,), daemon=True).start()
    for _ in range(streams):
        opened.acquire()
    threading.Thread(target=poll, daemon=True).start()
    print("open", flush=True)
    sys.stdin.read()  # until the bench closes it


@contextmanager
def page_load(url: str, streams: int, rate: float) -> Iterator[None]:
    code = f"from scanner.bench.kiosk import load; load({url!r}, {streams}, {rate})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        timer = threading.Timer(LOAD_WAIT, proc.kill)
        timer.start()
        line = proc.stdout.readline() if proc.stdout else ""
        timer.cancel()
        if line.strip() != "open":
            raise click.ClickException(f"the page load did not open {streams} streams")
        yield
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.kill()
        proc.wait()


@contextmanager
def kiosk_daemon(tmp: Path) -> Iterator[tuple[Any, Any, PtyHandheld, RelayWatch, str,
                                              Iterator[str]]]:
    """``gate run`` in this process with its page on a loopback port, synced."""
    from scanner.app import Gate
    from scanner.app.daemon import open_daemon
    from scanner.bench.run import TOKEN
    from scanner.config import (
        ApiConfig,
        GateConfig,
        LookupConfig,
        OutputsConfig,
        ReaderConfig,
        RunConfig,
        Secret,
        WebConfig,
    )
    from scanner.sim import World

    event_id = World(seed=7, events=1, tickets_per_event=0).event_ids[0]
    port = free_port()
    with simulator(tmp, SYNC_TICKETS) as api, PtyHandheld() as handheld, \
            quiet_daemon_log(tmp / "daemon.log") as syncs:
        config = GateConfig(
            gate_id="bench-kiosk", db=str(tmp / "kiosk.db"), events=(event_id,),
            api=ApiConfig(url=api, token=Secret(TOKEN), retries=0),
            lookup=LookupConfig(deadline_ms=0),
            readers=(ReaderConfig(source="serial", port=handheld.port, dedup_window=0.0),),
            outputs=OutputsConfig(pin_factory="mock", relay_pin=RELAY,
                                  relay_pulse_ms=int(PULSE_S * 1000)),
            web=WebConfig(port=port), run=RunConfig(sync_interval=900))
        with Gate(config) as gate:
            daemon = open_daemon(gate).start()
            try:
                if not syncs.wait_beyond(0, 600):
                    raise click.ClickException("the daemon's first sync did not finish")
                codes = iter(granted_barcodes(gate, event_id, SYNC_TICKETS // 2))
                relay = RelayWatch(gate.outputs.factory.pin(RELAY))
                yield gate, daemon, handheld, relay, f"http://127.0.0.1:{port}", codes
            finally:
                daemon.stop(60)


def measure_load(handheld: PtyHandheld, relay: RelayWatch, url: str, codes: Iterator[str],
                 scans: int, streams: int, rate: float) -> dict[str, Any]:
    def rounds(n: int) -> list[float]:
        out = []
        for _ in range(n):
            ms = read_to_relay_ms(handheld, relay, next(codes))
            if ms is not None:
                out.append(ms)
            time.sleep(PULSE_S + GAP)
        return out

    none: list[float] = []
    loaded: list[float] = []
    rounds(5)  # warm: the first reads pay for imports and cold pages
    while len(none) < scans:
        none += rounds(ROUND)
        with page_load(url, streams, rate):
            loaded += rounds(ROUND)
    return {"none": percentiles(none), "loaded": percentiles(loaded), "scans": len(none),
            "streams": streams, "status_rate": rate}


def measure_paint(handheld: PtyHandheld, relay: RelayWatch, url: str, codes: Iterator[str],
                  paints: int) -> dict[str, Any] | None:
    """(b), or None without Playwright or Chromium."""
    if not Path(CHROMIUM).exists():
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    painted: list[float] = []
    relayed: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(url)
        page.wait_for_function("() => window.__kiosk && window.__kiosk.connected "
                               "&& window.__kiosk.state", timeout=10_000)
        for i in range(paints + 5):
            before = int(page.evaluate("() => window.__kiosk.latencies.length"))
            written = time.time() * 1000
            ms = read_to_relay_ms(handheld, relay, next(codes))
            page.wait_for_function("n => window.__kiosk.latencies.length > n", arg=before,
                                   timeout=10_000)
            at = float(page.evaluate("n => window.__kiosk.latencies[n].painted_epoch_ms",
                                     before))
            if i >= 5 and ms is not None:  # the first paints warm the page's code
                painted.append(at - written)
                relayed.append(ms)
            time.sleep(PULSE_S + GAP)
        browser.close()
    ordered = sorted(painted)
    return {"painted": percentiles(painted), "relay": percentiles(relayed),
            "painted_p95_ms": round(percentile(ordered, 0.95), 3), "paints": len(painted)}


def run_bench(scans: int, streams: int, rate: float, paints: int,
              where: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=where, prefix="gate-bench-kiosk-") as name, \
            kiosk_daemon(Path(name)) as (_gate, _daemon, handheld, relay, url, codes):
        paint = measure_paint(handheld, relay, url, codes, paints)
        loaded = measure_load(handheld, relay, url, codes, scans, streams, rate)
    goals = [goal(f"read-to-relay p99 with {streams} streams and {rate:g} status/s / none",
                  loaded["loaded"]["p99_ms"] / max(loaded["none"]["p99_ms"], 1e-9),
                  GOAL_LOAD_RATIO, "x")]
    if paint is not None:
        goals.append(goal("handheld to painted result p95", paint["painted_p95_ms"],
                          GOAL_PAINT_P95_MS, "ms"))
    return {"load": loaded, "paint": paint, "goals": goals}


@click.command()
@click.option("--scans", type=click.IntRange(min=ROUND), default=DEFAULT_SCANS,
              show_default=True, help="Reads timed without pages, and again with them.")
@click.option("--streams", type=click.IntRange(min=1, max=150), default=DEFAULT_STREAMS,
              show_default=True, help="Event streams held open.")
@click.option("--status-rate", type=click.FloatRange(min=0.1), default=DEFAULT_STATUS_RATE,
              show_default=True, help="Requests a second to /api/status.")
@click.option("--paints", type=click.IntRange(min=10), default=DEFAULT_PAINTS,
              show_default=True, help="Reads timed to the painted page in Chromium.")
@click.option("--dir", "where", type=click.Path(file_okay=False), default=None,
              help="Where the store is built (default: a temporary directory).")
@click.option("--json", "as_json", is_flag=True, help="Figures as one JSON document.")
def command(scans: int, streams: int, status_rate: float, paints: int, where: str | None,
            as_json: bool) -> None:
    """Read-to-relay with many pages open; handheld to painted page in Chromium."""
    doc = run_bench(scans, streams, status_rate, paints, where)
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    load_doc, paint = doc["load"], doc["paint"]
    click.echo(f"(a) read-to-relay, daemon in process, {load_doc['scans']} reads per row")
    click.echo(figure_line("no page open", load_doc["none"], 46))
    click.echo(figure_line(f"{streams} streams + {status_rate:g} /api/status a second",
                           load_doc["loaded"], 46))
    if paint is None:
        click.echo("(b) skipped: no Playwright or no /usr/bin/chromium")
    else:
        click.echo(f"(b) handheld to painted page in Chromium, {paint['paints']} reads, 800x480")
        click.echo(figure_line("handheld to relay (the floor)", paint["relay"], 46))
        click.echo(figure_line("handheld to painted result", paint["painted"], 46)
                   + f"  p95 {paint['painted_p95_ms']:.3f} ms")
    for g in doc["goals"]:
        click.echo(goal_line(g))
