"""``gate bench venue``: a venue of gates with zones on one mosquitto, and its control room.

Every gate is a whole ``gate run`` daemon in a process of its own (store, journal, mesh
link, zone book, act stage with a MockPin relay), reading from a pty handheld at a steady
rate; ``gate control`` runs as a process of its own. The parent drives the gates over
pipes and watches the control room's event stream. Figures:

- read-to-relay: a read written into the gate's pty until its relay pin rises (the pin
  stamps its own edge), at each rate of ``--rates`` (persons per hour per lane), after
  ``--warmup`` seconds of reading that are not counted; the highest rate whose goals all
  hold is reported;
- zone count spread: a granted scan (its relay) until every other gate's zone book counts
  it, and until the control room's page stream carries it;
- partition: the broker is killed for ``--partition`` seconds while every gate goes on
  reading into capped zones; the maximum ever inside each capped zone (by the union of all
  records in HLC order) against its capacity, and the seconds after healing until every
  gate and the control room count the same;
- cost: CPU seconds and peak RSS per gate process and of the control room.

Goals: read-to-relay p99 <= 10 ms at 1,200/h; spread p99 <= 500 ms; 0 admissions beyond
capacity; equal counts within 10 s of healing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.mesh import wait_until
from scanner.bench.stats import goal, goal_line, percentiles
from scanner.bench.venue_gates import (
    CONNECT_TIMEOUT,
    KEY,
    MINTER,
    STAGES,
    START_BATCH,
    GateFailed,
    Venue,
)
from scanner.child import end

RELAY_GOAL_MS = 10.0
FLOOR_READS = 200   # the floor's reads: a p99 of 200 is their second worst
FLOOR_GAP = 0.25    # seconds between the floor's reads (a 100 ms pulse, then a pause)
PLACES_TIMEOUT = 30.0  # after all are connected, for every gate to hold its first places
SPREAD_GOAL_MS = 500.0
CONVERGE_GOAL_S = 10.0
BASE_RATE = 1200
ZONE_NAMES = ("grounds", "stand-a", "stand-b", "lounge")


def zone_tables(zones: int, capacities: dict[str, int]) -> list[dict[str, Any]]:
    """Up to four zones: the grounds, two stands in them, a lounge in the first stand."""
    parents = {"grounds": None, "stand-a": "grounds", "stand-b": "grounds",
               "lounge": "stand-a"}
    tables = []
    for name in ZONE_NAMES[:max(1, min(zones, 4))]:
        table: dict[str, Any] = {"id": name}
        if parents[name]:
            table["parent"] = parents[name]
        if name in capacities:
            table["capacity"] = capacities[name]
        tables.append(table)
    return tables


class _Stream(threading.Thread):
    """The control room's page stream: when each scan first appeared on it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[str, float] = {}
        self.stopped = threading.Event()
        self.first = threading.Event()  # the first frame arrived: the page is live

    def run(self) -> None:
        import httpx

        while not self.stopped.is_set():
            try:
                with httpx.stream("GET", f"{self.url}/events", timeout=None) as answer:
                    for line in answer.iter_lines():
                        if self.stopped.is_set():
                            return
                        if line.startswith("data: "):
                            now = time.monotonic()
                            self.first.set()
                            for entry in orjson.loads(line[6:])["log"]:
                                self.seen.setdefault(entry["scan_id"], now)
            except Exception:  # the room restarting: look again
                time.sleep(0.2)


def _max_inside(records: list[tuple[Any, ...]], tables: list[dict[str, Any]],
                zone_of: dict[str, str]) -> dict[str, int]:
    """Each zone's highest count ever, replaying every granted record in HLC order."""
    from datetime import UTC, datetime

    from scanner.config.zones import parse_zones
    from scanner.zones.presence import Occupancy

    occupancy = Occupancy(parse_zones(tables), zone_of.__getitem__, tz=UTC)
    top: dict[str, int] = {}
    now = datetime.now(UTC)
    for r in sorted(records, key=lambda r: r[3]):
        scan_id, gate, _seq, hlc, ticket, _ev, _bc, direction, result = r[:9]
        if result == "OK" and occupancy.add(ticket, hlc, scan_id, gate, direction, r[10]):
            for zone, n in occupancy.counts(now).items():
                top[zone] = max(top.get(zone, 0), n)
    return top


def _control_room(workdir: Path, url: str, tables: list[dict[str, Any]],
                  port: int) -> subprocess.Popen[bytes]:
    from scanner.config import toml
    from scanner.mesh.localbroker import password

    creds = workdir / "control.creds"
    creds.write_text(f"control:{password('control')}\n")
    creds.chmod(0o600)
    config = workdir / "control.toml"
    config.write_text(toml.dumps({
        "gate_id": "control", "web": {"port": port},
        "mesh": {"url": url, "key_file": str(workdir / "venue.key"),
                 "credentials_file": str(creds), "minter": MINTER},
        "zones": tables,
    }), encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                             "control"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "GATE_API_TOKEN": "unused-bench-token"})


def _restart(broker: Any) -> None:
    """The broker back on its port (below the ephemeral range: no gate's reconnect
    attempt can hold it), tried again while the old socket lingers."""
    from scanner.errors import GateError

    for _ in range(60):
        try:
            broker.start()
            return
        except GateError:
            time.sleep(0.5)
    raise click.ClickException(f"mosquitto could not listen on port {broker.port} again")


def _proc_cost(pid: int) -> tuple[float, float]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                   .splitlines() if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0.0, 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"), rss / 1024


def stage_figures(stages: list[list[float]]) -> dict[str, Any]:
    """Per stage of ``STAGES``: its percentiles, and its mean share of the slowest 1 % of
    reads (where the tail goes: a stage's own p99 may come from other reads)."""
    if not stages:
        return {}
    slowest = sorted(stages, key=sum)[-max(1, len(stages) // 100):]
    return {name: {**percentiles([s[k] for s in stages]),
                   "tail_ms": round(sum(s[k] for s in slowest) / len(slowest), 3)}
            for k, name in enumerate(STAGES)}


def floor(tables: list[dict[str, Any]], workdir: Path, reads: int = FLOOR_READS) -> dict[str, Any]:
    """One gate alone (no mesh, no peers, the same zones uncapped) on this machine, before
    the venue starts: what read-to-relay can be here at all."""
    alone = Venue(1, [{k: v for k, v in t.items() if k != "capacity"} for t in tables], None,
                  workdir)
    try:
        alone.start(1)
        done = alone.reads(3600 / FLOOR_GAP, reads * FLOOR_GAP)
    finally:
        alone.close()
    return {"reads": len(done),
            "read_to_relay": percentiles([ms for *_, ms, _ in done if ms is not None]),
            "stages": stage_figures(alone.stages)}


def run(gates: int, zones: int, rates: list[int], steady: float, partition: float,
        workdir: Path, warmup: float = 0.0, batch: int = START_BATCH,
        floor_reads: int = FLOOR_READS) -> dict[str, Any]:
    import httpx

    from scanner.kiosk.httpd import listen
    from scanner.mesh.localbroker import LocalBroker

    (workdir / "venue.key").write_bytes(KEY)
    (workdir / "venue.key").chmod(0o600)
    # Capacities the split fills and the steady phases do not: room for every read before
    # the split and half of those made during it (every read is a new person).
    before = sum(steady * rate / 3600 for rate in rates) + warmup * rates[0] / 3600
    during = partition * rates[0] / 3600
    lounge_gates = len(range(3, gates, 4)) if zones >= 4 else 0
    capacities = {"grounds": int(gates * (before + during / 2))}
    if lounge_gates:
        capacities["lounge"] = int(lounge_gates * (before + during / 2))
    tables = zone_tables(zones, capacities)
    alone = floor(tables, workdir / "floor", floor_reads) if floor_reads else None
    broker = LocalBroker(workdir / "broker", [f"g{i:02d}" for i in range(gates)] + ["control"])
    broker.start()
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    room_url = f"http://127.0.0.1:{port}"
    room: subprocess.Popen[bytes] | None = None
    venue = Venue(gates, tables, broker.url, workdir)
    stream = _Stream(room_url)
    try:
        room = _control_room(workdir, broker.url, tables, port)
        venue.start(batch)
        late = venue.waiting_for("connected", CONNECT_TIMEOUT)
        if late:
            raise GateFailed(venue.failure(venue.names.index(late[0]), (
                f"not connected to the broker {CONNECT_TIMEOUT:.0f} s after all started "
                f"(nor were: {', '.join(late[1:]) or 'no other'})")))
        # A gate without a place yet denies until the minter's next round gives it some
        # (the minter makes its own when it needs them): said in the report, not fatal.
        placeless = venue.waiting_for("ready", PLACES_TIMEOUT)
        stream.start()
        if not stream.first.wait(30):
            raise click.ClickException("the control room's page stream did not start")
        venue.reads(rates[0], warmup)  # not counted: the gates' first places and statements
        by_rate: dict[int, dict[str, Any]] = {}
        page_ms: list[float] = []
        for rate in rates:
            done = venue.reads(rate, steady)
            granted = [(g, t, at) for g, t, ms, at in done if ms is not None]
            time.sleep(2.0)
            counted = dict(zip(venue.names, venue.ask_all("counted", [t for _, t, _ in granted]),
                               strict=True))
            spread = [(counted[g2].get(t, at + 5) - at) * 1000 for g, t, at in granted
                      for g2 in venue.names if g2 != g]
            by_rate[rate] = {"reads": len(done), "granted": len(granted),
                             "read_to_relay": percentiles([ms for *_, ms, _ in done
                                                           if ms is not None]),
                             "stages": stage_figures(venue.stages),
                             "spread": percentiles(spread)}
            if rate == rates[0]:  # the page: the stream's log names scans by id
                scan_of = {r[4]: r[0] for r in venue.ask_one("records")}
                page_ms = [(stream.seen.get(scan_of.get(t, ""), at + 5) - at) * 1000
                           for _, t, at in granted]
        broker.stop()
        split_done = venue.reads(rates[0], partition)
        _restart(broker)
        healed = time.monotonic()

        def equal() -> bool:
            counts = venue.ask_all("counts")
            try:
                page = {z["id"]: z["inside"] for z in httpx.get(f"{room_url}/api/zones",
                                                                 timeout=2).json()}
            except (httpx.HTTPError, ValueError):
                return False
            return all(c == counts[0] for c in counts) and page == counts[0]

        converged = wait_until(equal, 120, 0.25)
        converge_s = time.monotonic() - healed
        records = venue.ask_one("records")
        top = _max_inside(records, tables, venue.zone_of)
        beyond = {z: max(0, top.get(z, 0) - c) for z, c in capacities.items()
                  if z in {t["id"] for t in tables}}
        costs = venue.ask_all("cost")
        room_cpu, room_rss = _proc_cost(room.pid)
    finally:
        stream.stopped.set()
        venue.close()
        if room is not None:
            end(room)
        broker.stop()
    base = by_rate[rates[0]]
    ok_rates = [r for r in rates if by_rate[r]["read_to_relay"]["p99_ms"] <= RELAY_GOAL_MS
                and by_rate[r]["spread"]["p99_ms"] <= SPREAD_GOAL_MS]
    return {
        "gates": gates, "zones": [t["id"] for t in tables], "capacities": capacities,
        "without_places_at_start": placeless, "floor": alone, "rates": by_rate,
        "page_spread": percentiles(page_ms),
        "highest_rate_meeting_goals": max(ok_rates) if ok_rates else None,
        "partition_s": partition, "partition_reads": len(split_done),
        "partition_admitted": sum(ms is not None for *_, ms, _ in split_done),
        "max_inside": top, "beyond_capacity": beyond,
        "converged": converged, "converge_s": round(converge_s, 2),
        "cpu_s_per_gate": round(sum(c for c, _ in costs) / gates, 2),
        "rss_mb_per_gate": round(max(r for _, r in costs), 1),
        "control_room_cpu_s": round(room_cpu, 2), "control_room_rss_mb": round(room_rss, 1),
        "goals": [goal(f"read-to-relay p99 at {rates[0]}/h",
                       base["read_to_relay"]["p99_ms"], RELAY_GOAL_MS, "ms"),
                  goal("zone count spread p99 (every gate)", base["spread"]["p99_ms"],
                       SPREAD_GOAL_MS, "ms"),
                  goal("zone count spread p99 (control room page)",
                       percentiles(page_ms)["p99_ms"], SPREAD_GOAL_MS, "ms"),
                  goal("admissions beyond capacity", sum(beyond.values()), 0, ""),
                  goal("equal counts after healing", converge_s if converged else 1e9,
                       CONVERGE_GOAL_S, "s")],
    }


@click.command("venue")
@click.option("--gates", default=60, show_default=True, help="Gates, one process each.")
@click.option("--zones", default=4, show_default=True, help="Zones (1 to 4), nested.")
@click.option("--rates", default="1200,2400,4800", show_default=True,
              help="Persons per hour per lane, raised in turn.")
@click.option("--steady", default=30.0, show_default=True, help="Seconds read at each rate.")
@click.option("--warmup", default=10.0, show_default=True,
              help="Seconds read at the first rate before anything is measured.")
@click.option("--partition", default=120.0, show_default=True,
              help="Seconds the broker is down while gates read into capped zones.")
@click.option("--batch", default=START_BATCH, show_default=True,
              help="Gates started at once (each batch waits for the one before).")
@click.option("--floor-reads", default=FLOOR_READS, show_default=True,
              help="Reads of one gate alone before the venue starts (0: no floor).")
@click.option("--json", "as_json", is_flag=True)
def command(gates: int, zones: int, rates: str, steady: float, warmup: float,
            partition: float, batch: int, floor_reads: int, as_json: bool) -> int:
    """A venue with zones: read-to-relay, zone count spread, a split, cost."""
    chosen = [int(r) for r in rates.split(",") if r.strip()]
    with tempfile.TemporaryDirectory(prefix="gate-bench-venue-") as tmp:
        report = run(gates, zones, chosen, steady, partition, Path(tmp), warmup,
                     max(1, batch), max(0, floor_reads))
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_NON_STR_KEYS).decode())
        return 0
    click.echo(f"{gates} gates ({', '.join(report['zones'])}; capacities "
               f"{report['capacities']}), one mosquitto, the control room")
    if report["without_places_at_start"]:
        click.echo(f"  no place held yet when reading began: "
                   f"{', '.join(report['without_places_at_start'])}")
    alone = report["floor"]
    if alone is not None:
        f = alone["read_to_relay"]
        click.echo(f"  floor (one gate alone, no mesh, {alone['reads']} reads): read-to-relay "
                   f"p50 {f['p50_ms']} p99 {f['p99_ms']} ms")
    for rate, r in report["rates"].items():
        f, sp = r["read_to_relay"], r["spread"]
        click.echo(f"  {rate}/h per lane: {r['granted']} of {r['reads']} admitted; "
                   f"read-to-relay p50 {f['p50_ms']} p99 {f['p99_ms']} ms; zone count at "
                   f"every gate p50 {sp['p50_ms']} p99 {sp['p99_ms']} ms")
    base = next(iter(report["rates"].values()))["stages"]
    if base:
        click.echo(f"  stages (ms; tail: mean in the slowest 1 %)   {'floor p50/p99/tail':>20}"
                   f"   {'venue p50/p99/tail':>20}")
        for name in STAGES:
            cells = [f"{x[name]['p50_ms']:.2f}/{x[name]['p99_ms']:.2f}/{x[name]['tail_ms']:.2f}"
                     if x else "-" for x in (alone["stages"] if alone else {}, base)]
            click.echo(f"    {name:<42} {cells[0]:>20}   {cells[1]:>20}")
    pg = report["page_spread"]
    click.echo(f"  control room page: p50 {pg['p50_ms']} p99 {pg['p99_ms']} ms")
    click.echo(f"  highest rate meeting the goals: {report['highest_rate_meeting_goals']}/h")
    click.echo(f"  partition {partition:.0f} s: {report['partition_admitted']} of "
               f"{report['partition_reads']} admitted; max inside {report['max_inside']}; "
               f"beyond capacity {report['beyond_capacity']}; equal counts "
               f"{report['converged']} {report['converge_s']} s after healing")
    click.echo(f"  per gate {report['cpu_s_per_gate']} CPU s, {report['rss_mb_per_gate']} MB "
               f"RSS; control room {report['control_room_cpu_s']} CPU s, "
               f"{report['control_room_rss_mb']} MB RSS")
    for g in report["goals"]:
        click.echo(goal_line(g))
    return 0
