"""``gate bench sync``: full and delta sync of one event against the simulator.

The simulator and each sync run in their own processes (``gate sim``, ``gate sync
--once``), so the peak RSS and CPU reported are the syncing process's alone (``os.wait4``
gives each child's own rusage) and the simulator's CPU does not count against the sync.

The full sync's CPU per ticket (user + sys of the whole process, start-up included) is
set beside a plain loop run the same way in its own child (``python -m
scanner.bench.plain_sync``): httpx + json + sqlite3 paging the same simulator with the same
page size into the same table. The gate's goal is to cost no more CPU than that loop.

The runs alternate, gate then loop, and the verdict is the median over the rounds of each
pair's ratio (gate / loop): a pair runs a few seconds apart, under the same machine
weather. The least of each is printed too, but on a VM whose speed comes in bursts it
compares two different minutes: one round of a 200,000-ticket sync once ran in 6.8 s of
CPU where the four around it took 9.0-9.6 s.

Goals on the reference 2-core box: full 1,000,000 tickets <= 60 s at <= 200 MB peak RSS;
a delta over 1,000 changed tickets among 1,000,000 <= 1 s.

Then a two-event round (``scanner.bench.second_event``): a second event's first full sync
on a gate serving a first one, against the plain loop, and the first event's checks beside
it against idle ones.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

from scanner.bench.sync_runs import CONTROL_TIMEOUT, run_plain, run_sync, start_sim
from scanner.child import gate_env
from scanner.errors import GateError
from scanner.sim.server import DEFAULT_TOKEN
from scanner.vivenu.urls import API_PREFIX

CHANGED = 1000


def _us_per_ticket(cpu: float, tickets: int) -> float | None:
    return round(cpu / tickets * 1e6, 1) if tickets else None


def measure(tickets: int, workdir: Path, rounds: int = 1) -> dict[str, Any]:
    """``rounds`` full syncs of the gate and of the plain loop, interleaved, each into a new
    file; CPU per ticket compares the least-disturbed run of each (a shared machine only ever
    adds time), the other figures are the last gate run's, then a delta on its store."""
    sim, url = start_sim(tickets)
    try:
        # The simulator mutates and serves a large world while the sync loads the machine.
        with httpx.Client(base_url=url, headers={"token": DEFAULT_TOKEN},
                          timeout=CONTROL_TIMEOUT) as control:
            event_id = control.get(f"{API_PREFIX}/events").json()[0]["_id"]
            fulls, plains = [], []
            for n in range(rounds):
                env = gate_env(GATE_API_URL=url, GATE_API_TOKEN=DEFAULT_TOKEN,
                               GATE_DB=str(workdir / f"bench-{n}.db"), GATE_EVENTS=event_id)
                fulls.append(run_sync(env, workdir))
                plains.append(run_plain(url, event_id, workdir, workdir / f"plain-{n}.db"))
            full = fulls[-1]
            changed = control.post("/_sim/mutate", json={"n": CHANGED, "kind": "change",
                                                         "event_id": event_id})
            changed.raise_for_status()
            delta = run_sync(env, workdir)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    best = min(fulls, key=lambda run: run["cpu"])
    plain = min(plains, key=lambda run: run["cpu"])
    ratios = sorted((g["cpu"] / g["report"]["fetched"]) / (p["cpu"] / p["tickets"])
                    for g, p in zip(fulls, plains, strict=True)
                    if g["report"]["fetched"] and p["tickets"])
    paired = statistics.median(ratios) if ratios else None
    seconds = full["report"]["seconds"]
    gate_us = _us_per_ticket(best["cpu"], best["report"]["fetched"])
    plain_us = _us_per_ticket(plain["cpu"], plain["tickets"])
    return {
        "tickets": tickets,
        "full_seconds": round(seconds, 3),
        "full_wall_seconds": round(full["wall"], 3),
        "tickets_per_second": round(full["report"]["fetched"] / seconds) if seconds else None,
        "full_pages": full["report"]["pages"],
        "full_peak_rss_mb": full["rss_mb"],
        "rounds": rounds,
        "full_cpu_seconds": round(best["cpu"], 3),
        "full_cpu_us_per_ticket": gate_us,
        "plain_tickets": plain["tickets"],
        "plain_cpu_seconds": round(plain["cpu"], 3),
        "plain_cpu_us_per_ticket": plain_us,
        "plain_wall_seconds": round(plain["wall"], 3),
        "paired_cpu_ratios": [round(r, 3) for r in ratios],
        "paired_cpu_ratio_median": None if paired is None else round(paired, 3),
        "cpu_goal_met": paired is not None and paired <= 1.0,
        "delta_changed": CHANGED,
        "delta_upserted": delta["report"]["upserted"],
        "delta_seconds": round(delta["report"]["seconds"], 3),
        "delta_wall_seconds": round(delta["wall"], 3),
        "delta_peak_rss_mb": delta["rss_mb"],
        "store_count": delta["report"]["total"],
    }


@click.command()
@click.option("--tickets", default=100_000, show_default=True, type=click.IntRange(1),
              help="Tickets in the simulated event.")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1),
              help="Full syncs of the gate and of the plain loop, alternating; the CPU "
                   "verdict is the median of each pair's ratio.")
@click.option("--two-events/--one-event", default=True, show_default=True,
              help="Also time a second event's first full sync (N tickets) on a gate "
                   "serving a first one, and the first event's checks beside it.")
@click.option("--json", "as_json", is_flag=True, help="The figures as one JSON object.")
def command(tickets: int, rounds: int, two_events: bool, as_json: bool) -> None:
    """Full sync of N tickets, then a delta over 1,000 changed ones."""
    from scanner.bench import second_event

    try:
        with tempfile.TemporaryDirectory(prefix="gate-bench-sync-") as tmp:
            figures = measure(tickets, Path(tmp), rounds)
        if two_events:
            with tempfile.TemporaryDirectory(prefix="gate-bench-sync-") as tmp:
                figures["two_events"] = second_event.measure(tickets, Path(tmp), rounds)
    except httpx.HTTPError as exc:
        raise GateError(f"bench sync: the simulator did not answer: {exc!r}") from exc
    if as_json:
        click.echo(orjson.dumps(figures).decode())
        return
    click.echo(f"full sync: {figures['tickets']} tickets in {figures['full_seconds']} s "
               f"({figures['tickets_per_second']} tickets/s; process wall "
               f"{figures['full_wall_seconds']} s), peak RSS {figures['full_peak_rss_mb']} MB")
    click.echo(f"delta: {figures['delta_upserted']} of {figures['delta_changed']} changed "
               f"tickets in {figures['delta_seconds']} s (process wall "
               f"{figures['delta_wall_seconds']} s), peak RSS "
               f"{figures['delta_peak_rss_mb']} MB")
    verdict = "goal met" if figures["cpu_goal_met"] else "goal NOT met"
    click.echo(f"sync CPU per ticket (user+sys of the process, least of "
               f"{figures['rounds']} alternating runs each): gate "
               f"{figures['full_cpu_us_per_ticket']} us, plain httpx+json+sqlite3 loop "
               f"{figures['plain_cpu_us_per_ticket']} us ({figures['plain_tickets']} tickets)")
    click.echo(f"gate / plain loop per pair of runs: "
               f"{', '.join(f'{r:.3f}' for r in figures['paired_cpu_ratios'])}; median "
               f"{figures['paired_cpu_ratio_median']}: {verdict} (median <= 1)")
    if two_events:
        for line in second_event.lines(figures["two_events"]):
            click.echo(line)
