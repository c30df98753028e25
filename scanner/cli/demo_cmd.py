"""``gate demo``: the real daemon, ``gate run``, against the built-in simulator.

The simulator runs in this process on loopback. ``gate run`` runs as its own process, as a
venue runs it, with a rendered video as its camera, two ptys as its entry and exit
handhelds and mock pins for its relay, lights and buzzer. The demo writes codes into the
handhelds, follows the daemon's log (one line per decision, one per relay pulse) and prints
it live; midway the simulator drops every connection, the gate decides offline, and once
the network is back the outbox drains into the simulator. Exit 0 only when every step
showed what it should.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click

from scanner.bench.handheld import PtyHandheld
from scanner.child import end, gate_argv, gate_env
from scanner.config import DEFAULT_WEB_PORT, toml
from scanner.sim.world import MAX_TICKETS

DEMO_TOKEN = "demo-token-not-a-secret"
# Seconds a step waits for the daemon before it counts as failed, on a machine as fast as
# the one the demo is usually run on; multiplied by the pace the daemon's start measured.
STEP_TIMEOUT = 15.0
PAUSE = 0.5           # between two people at a reader: longer than its dedup_window
LEAD_FRAMES = 60      # two seconds of empty camera before the codes, at 30 frames a second
# Seconds gate run usually takes from its start to its first answer on /healthz; a start
# that takes N times as long (a Pi Zero 2, a loaded Pi 3, qemu emulation) makes every step
# wait N times as long, up to MAX_PACE.
USUAL_START = 4.0
MAX_PACE = 60.0
# The first sync is waited for as long as it moves: given up only after this long without
# its progress changing (its ticket count on /healthz, or gate run's log).
SYNC_STALL = 300.0
HEALTH_POLL = 0.25    # seconds between two looks at /healthz, times the pace
DECISION = re.compile(r"decision (\S+) (\S+) (\S+) (\S+) (\S+): (.*)$")
PULSED = re.compile(r"relay pulsed for scan (\S+)")
LOGGED = re.compile(r"^\S+ \S+ (\w+) ([\w.]+): (.*)$")  # asctime levelname logger: message
GARBAGE = b"\x1b[2J\x07GAR\x00BAGE\x7f"  # what a misconfigured scanner sends


def demo_config(db: Path, event_id: str, url: str, video: Path, entry: str, exit_: str,
                web_port: int) -> dict[str, Any]:
    """The demo gate's configuration: the simulator, mock pins, a camera and two handhelds."""
    return {
        "gate_id": "demo-north-1", "db": str(db), "events": [event_id],
        # No retries: the outage should show at once, not after a minute of backoff.
        "api": {"url": url, "retries": 0, "connect_timeout": 1.0, "read_timeout": 2.0},
        "lookup": {"deadline_ms": 400.0},  # an unknown code is asked of the server, 400 ms
        "upload": {"interval": 0.5},
        "run": {"sync_interval": 5},
        "web": {"port": web_port},  # the steward's kiosk page, on loopback
        # gpiozero's MockFactory: no Raspberry Pi needed.
        "outputs": {"pin_factory": "mock", "relay_pin": 17, "relay_pulse_ms": 300,
                    "green_pin": 27, "red_pin": 22, "buzzer_pin": 23},
        "readers": [
            {"name": "camera", "source": "camera", "camera": str(video), "dedup_window": 1.0},
            {"name": "entry", "source": "serial", "port": entry, "dedup_window": 0.2},
            {"name": "exit", "source": "serial", "direction": "OUT", "port": exit_,
             "dedup_window": 0.2},
        ],
    }


@dataclass(frozen=True)
class Decision:
    scan_id: str
    reason: str
    direction: str
    barcode: str
    reader: str
    message: str


def opens(reason: str) -> bool:
    """Whether a decision with this reason releases the turnstile (an entry or an exit)."""
    from scanner.act.stage import OPENS

    return reason in OPENS


class DaemonLog:
    """Follows ``gate run``'s log on a thread: prints every line as it comes and keeps the
    decisions and relay pulses for the steps to wait on."""

    def __init__(self, stream: IO[str], copy: IO[str]) -> None:
        self.decisions: list[Decision] = []
        self.pulsed: list[str] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._follow, args=(stream, copy),
                                        name="demo-log", daemon=True)
        self._thread.start()

    def _follow(self, stream: IO[str], copy: IO[str]) -> None:
        for raw in stream:
            copy.write(raw)
            line = raw.rstrip("\n")
            self._show(line)
            with self._changed:
                self.lines.append(line)
                if m := DECISION.search(line):
                    self.decisions.append(Decision(*m.groups()))
                elif m := PULSED.search(line):
                    self.pulsed.append(m.group(1))
                self._changed.notify_all()

    def _show(self, line: str) -> None:
        m = LOGGED.match(line)
        level, message = (m.group(1), m.group(3)) if m else ("INFO", line)
        if d := DECISION.search(message):
            # An exit that let someone out is no error: only a refusal is red.
            click.secho(f"  {d.group(5):>7} {d.group(3):<3} {d.group(2):<16} {d.group(4)}"
                        f"  {d.group(6)}", fg="green" if opens(d.group(2)) else "red",
                        bold=True)
        elif p := PULSED.search(message):
            for seen in self.decisions:  # its decision was logged first, by the lane
                if seen.scan_id == p.group(1):
                    click.secho(f"  {seen.reader:>7} {seen.direction:<3} relay pulsed: "
                                f"turnstile released for {seen.barcode}", fg="green")
                    break
        else:
            click.secho(f"  gate run | {message}", dim=level == "INFO",
                        fg=None if level == "INFO" else "yellow")

    def wait(self, what: str, ready: Any, timeout: float) -> bool:
        """Wait until ``ready()`` (called under the lock) is true; False, said, on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready():  # polled too: the simulator changes without a log line
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.1))
            else:
                return True
        click.secho(f"  FAILED: no {what} within {timeout:.0f} s", fg="red", bold=True)
        return False

    def close(self) -> None:
        self._thread.join(5)


def pick_barcodes(world: Any, event_id: str) -> dict[str, list[str]]:
    """Barcodes for each story the demo tells, chosen with the gate's own rules."""
    from scanner.clock import utc_now
    from scanner.config import PolicyConfig
    from scanner.decide.model import Direction, ScanHistory
    from scanner.decide.policy import Policy
    from scanner.decide.rules import decide
    from scanner.tickets import Ticket

    policy = Policy.build(world.me(), PolicyConfig(), ())
    now = utc_now()
    wanted = {"GRANTED": 5, "TICKET_INVALID": 2}
    found: dict[str, list[str]] = {reason: [] for reason in wanted}
    for doc in world.current_tickets(event_id):
        ticket = Ticket.from_api(doc)
        reason = decide(ticket, ScanHistory(), policy, Direction.IN, now,
                        barcode=ticket.barcode).reason.value
        if len(found.get(reason, ())) < wanted.get(reason, 0):
            found[reason].append(ticket.barcode)
        if all(len(found[r]) == n for r, n in wanted.items()):
            return found
    if len(found["TICKET_INVALID"]) < 2:  # a small world may have no cancellation yet
        found["TICKET_INVALID"] += [d["barcode"] for d in world.cancel(2)]
    return found


class Story:
    """The steps, each checked against what the daemon logged; ``failures`` counts misses."""

    def __init__(self, log: DaemonLog, entry: PtyHandheld, exit_: PtyHandheld) -> None:
        self.log = log
        self.readers = {"entry": entry, "exit": exit_}
        self.failures = 0
        self.pace = 1.0  # how much slower than usual this machine runs the daemon

    def timeout(self, seconds: float = STEP_TIMEOUT) -> float:
        """``seconds`` on a machine of usual speed, stretched by the measured pace."""
        return seconds * self.pace

    def caption(self, text: str) -> None:
        click.secho(f"\n# {text}", fg="cyan", bold=True)

    def scan(self, reader: str, code: str | bytes, expect: str, caption: str) -> None:
        """Write ``code`` into a handheld; expect one decision ``expect`` from it, and a
        relay pulse for it if granted."""
        self.caption(caption)
        time.sleep(PAUSE)
        seen = len(self.log.decisions)
        self.readers[reader].scan(code)
        mine: list[Decision] = []

        def decided() -> bool:
            mine[:] = [d for d in self.log.decisions[seen:] if d.reader == reader]
            return bool(mine)

        if not self.log.wait(f"decision from {reader}", decided, self.timeout()):
            self.failures += 1
            return
        if mine[0].reason != expect:
            click.secho(f"  FAILED: expected {expect}, got {mine[0].reason}", fg="red")
            self.failures += 1
        elif not self.released(mine):
            self.failures += 1

    def released(self, decided: list[Decision]) -> bool:
        """Wait for the relay pulse of each of ``decided`` that opens the turnstile, so its
        line is printed under this step's heading, not the next one's."""
        opened = {d.scan_id for d in decided if opens(d.reason)}
        return self.log.wait("relay pulse", lambda: opened <= set(self.log.pulsed),
                             self.timeout())

    def camera(self, expected: list[str]) -> None:
        self.caption(f"the camera sees {len(expected)} tickets held up to it (a replayed video)")

        def all_seen() -> bool:
            return len([d for d in self.log.decisions if d.reader == "camera"]) >= len(expected)

        if not self.log.wait("camera decisions", all_seen, self.timeout(STEP_TIMEOUT * 2)):
            self.failures += 1
            return
        mine = [d for d in self.log.decisions if d.reader == "camera"]
        got = sorted(d.reason for d in mine)
        if not self.released(mine):
            self.failures += 1
        elif got != sorted(expected):
            click.secho(f"  FAILED: camera decided {got}, expected {sorted(expected)}",
                        fg="red")
            self.failures += 1

    def expect(self, what: str, ready: Any, timeout: float = STEP_TIMEOUT) -> bool:
        """Wait for ``ready()``, ``timeout`` stretched by the pace; a miss is a failure."""
        ok = self.log.wait(what, ready, self.timeout(timeout))
        self.failures += not ok
        return ok

    def first_sync(self, proc: subprocess.Popen[str], port: int) -> None:
        """Wait until gate run's first sync has ended, as its /healthz tells (``syncing: N
        of M tickets`` until the store is whole), for as long as that moves; then print
        what /healthz answers. How long the daemon took to answer at all sets the pace."""
        click.echo(f"  waiting for the first sync to end (/healthz says syncing until then; "
                   f"given up after {SYNC_STALL:.0f} s without progress)")
        started = moved = time.monotonic()
        answered, progress = False, None
        while True:
            health = daemon_health(port, self.timeout())
            now = time.monotonic()
            if health.answered and not answered:
                answered = True
                self.pace = min(max((now - started) / USUAL_START, 1.0), MAX_PACE)
                if self.pace > 1.0:
                    click.echo(f"  gate run answered after {now - started:.0f} s: this "
                               f"machine is slow, each step waits {self.timeout():.0f} s")
            if not health.starting:  # answered, and neither starting nor syncing
                break
            if (health.syncing, len(self.log.lines)) != progress:
                progress, moved = (health.syncing, len(self.log.lines)), now
            if proc.poll() is not None or now - moved > SYNC_STALL:
                why = f"gate run exited {proc.returncode}" if proc.poll() is not None \
                    else f"no progress for {SYNC_STALL:.0f} s ({health.said})"
                click.secho(f"  FAILED: the first sync did not end: {why}", fg="red",
                            bold=True)
                self.failures += 1
                return
            time.sleep(HEALTH_POLL * self.pace)
        # The camera may have let someone in meanwhile: its pulses belong under this heading.
        self.failures += not self.released(list(self.log.decisions))
        click.echo(f"  kiosk page http://127.0.0.1:{port}/ : /healthz {health.said}")


@contextmanager
def daemon(env: dict[str, str], home: Path) -> Iterator[tuple[subprocess.Popen[str], DaemonLog]]:
    """``gate run`` as a child process, its log followed; SIGTERM at the end."""
    with (home / "run.log").open("w", encoding="utf-8") as copy:
        proc = subprocess.Popen(gate_argv("run"), env=env, text=True, bufsize=1,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                errors="replace")
        assert proc.stdout is not None
        log = DaemonLog(proc.stdout, copy)
        try:
            yield proc, log
        finally:
            end(proc, 20)
            log.close()


@click.command()
@click.option("--tickets", default=2000, show_default=True,
              type=click.IntRange(10, MAX_TICKETS),
              help="Tickets of the demo's event in the simulator.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the demo's database, video and log here (default: a temporary "
                   "folder).")
@click.option("--port", "web_port", type=click.IntRange(0, 65535), default=None,
              help="The kiosk page's port; 0 for any free one (default: 8080 when free).")
def demo(tickets: int, workdir: Path | None, web_port: int | None) -> int:
    """Run the gate daemon against the built-in simulator, through an outage and back."""
    from scanner.bench.video import write_ticket_video
    from scanner.sim import Faults, SimServer, World

    started = time.monotonic()
    world = World(seed=7, events=1, tickets_per_event=tickets)
    faults = Faults(seed=7)
    event_id = world.event_ids[0]
    codes = pick_barcodes(world, event_id)
    valid, cancelled = codes["GRANTED"], codes["TICKET_INVALID"]
    with SimServer(world, faults, token=DEMO_TOKEN) as server, \
            tempfile.TemporaryDirectory(prefix="gate-demo-") as tmp, \
            PtyHandheld() as entry, PtyHandheld() as exit_:
        home = workdir or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        video = home / "camera.avi"
        write_ticket_video(video, [valid[3], cancelled[1], valid[4]], hold=8, gap=10,
                           lead=LEAD_FRAMES)
        web_port = kiosk_port() if web_port is None else kiosk_port(web_port)
        env = demo_environment(home, server.url, event_id, video, entry.port, exit_.port,
                               web_port)
        click.secho(f"simulator on {server.url}: event {event_id} with {tickets} tickets\n"
                    f"gate run: camera {video.name}, handhelds entry {entry.port} and exit "
                    f"{exit_.port}, mock pins; files in {home}\n"
                    f"kiosk page: http://127.0.0.1:{web_port}/", bold=True)
        with daemon(env, home) as (proc, log):
            story = Story(log, entry, exit_)
            story.caption("gate run starts: it syncs the event, then reads")
            story.first_sync(proc, web_port)
            story.camera(["GRANTED", "GRANTED", "TICKET_INVALID"])
            tell(story, world, faults, valid, cancelled)
            story.caption("SIGTERM: gate run stops reading, finishes, flushes, exits")
            proc.terminate()
            try:
                code = proc.wait(story.timeout(20))
            except subprocess.TimeoutExpired:
                click.secho(f"  FAILED: gate run did not exit within "
                            f"{story.timeout(20):.0f} s", fg="red", bold=True)
                story.failures += 1
            else:
                click.echo(f"  gate run exited {code}")
                story.failures += code != 0
        uploaded = len(world.scans)
    seconds = time.monotonic() - started
    click.secho(f"\nsimulator received {uploaded} scans from the gate; {story.failures} "
                f"step(s) failed; {seconds:.0f} s in all", bold=True,
                fg="green" if not story.failures and uploaded else "red")
    return 1 if story.failures or uploaded == 0 else 0


def tell(story: Story, world: Any, faults: Any, valid: list[str], cancelled: list[str]) -> None:
    """The handheld part of the story, the outage and the recovery."""
    story.scan("entry", valid[0], "GRANTED", "a valid ticket at the entry")
    story.scan("entry", valid[0], "ALREADY_INSIDE", "the same ticket again: anti-passback")
    story.scan("exit", valid[0], "CHECKED_OUT", "it leaves through the exit reader")
    story.scan("entry", cancelled[0], "TICKET_INVALID", "a cancelled ticket")
    story.scan("entry", GARBAGE, "MALFORMED_READ",
               "a garbage read with control bytes (journaled, never admitted)")
    story.scan("entry", "NOTATICKET-0000", "UNKNOWN_BARCODE",
               "a code the gate has never seen: asked of the server, 400 ms at most")
    online = set(valid[:1] + valid[3:])
    story.expect("scans in the simulator", lambda: online <= received(world), 10)
    click.echo(f"  simulator has received {len(world.scans)} scans")

    story.caption("SIM: the venue's internet goes down")
    faults.update(drop_rate=1.0)
    before = len(world.scans)
    story.scan("entry", valid[1], "GRANTED", "a ticket enters, decided offline")
    story.scan("entry", valid[2], "GRANTED", "another one, offline too")
    story.expect("upload paused", lambda: any("upload paused" in line
                                              for line in story.log.lines[-40:]))
    click.echo(f"  simulator has received {len(world.scans)} scans (was {before})")
    story.failures += len(world.scans) != before

    story.caption("SIM: the network is back; the outbox drains")
    faults.update(drop_rate=0.0)
    offline = set(valid[1:3])
    if story.expect("offline scans in the simulator", lambda: offline <= received(world)):
        click.echo(f"  simulator has received {len(world.scans)} scans, the offline ones "
                   "included")


def received(world: Any) -> set[str]:
    return {scan["barcode"] for scan in list(world.scans)}


def kiosk_port(preferred: int = DEFAULT_WEB_PORT) -> int:
    """The kiosk's usual port when it is free (a second demo, or a gate, may hold it), else
    any free one."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port on loopback for the kiosk page")


@dataclass(frozen=True)
class Health:
    """What the daemon's /healthz answered: ``said`` is its status code and reasons, or why
    it did not answer; ``syncing`` the first sync's progress while it runs."""

    said: str
    answered: bool = False
    starting: bool = True   # not answering yet, starting, or its first sync not ended
    syncing: str | None = None


def daemon_health(port: int, timeout: float) -> Health:
    import httpx

    try:
        # Plain http on loopback, polled: no TLS handshake ever happens, so no CA bundle is
        # loaded for it (tens of ms of CPU at each poll).
        reply = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=timeout, verify=False)
        reasons = [str(r) for r in reply.json().get("reasons", ())]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return Health(f"no answer ({exc.__class__.__name__})")
    syncing = next((r for r in reasons if r.startswith("syncing")), None)
    starting = syncing is not None or any(r.startswith("not ready") for r in reasons)
    said = f"{reply.status_code}" + (f" ({'; '.join(reasons)})" if reasons else "")
    return Health(said, True, starting, syncing)


def demo_environment(home: Path, url: str, event_id: str, video: Path, entry: str,
                     exit_: str, web_port: int) -> dict[str, str]:
    token_file = home / "token"
    token_file.write_text(DEMO_TOKEN + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    config = home / "gate.toml"
    doc = demo_config(home / "gate.db", event_id, url, video, entry, exit_, web_port)
    config.write_text(toml.dumps(doc), encoding="utf-8")
    return gate_env(GATE_CONFIG=str(config), GATE_API_TOKEN_FILE=str(token_file))
