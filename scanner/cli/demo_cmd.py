"""``gate demo``: the real gate commands, as separate processes, against the simulator.

The simulator runs in this process on loopback; every step is the same ``gate`` command an
operator would type, run as its own process with the demo's environment, so what the demo
shows is exactly what a gate does. Midway the simulator drops every connection, to show
that scanning goes on offline and the queued scans upload once the network is back.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import click

from scanner.cli.child import gate_argv, gate_env

DEMO_TOKEN = "demo-token-not-a-secret"
DEMO_CONFIG = """\
gate_id = "demo-north-1"

[api]
retries = 1          # the demo's outage should fail fast, not back off for a minute

[lookup]
deadline_ms = 400.0
"""


def pick_barcodes(world: Any, event_id: str) -> dict[str, str]:
    """One barcode for each story the demo tells, chosen with the gate's own rules."""
    from scanner.clock import utc_now
    from scanner.config import PolicyConfig
    from scanner.decide.model import Direction, ScanHistory
    from scanner.decide.policy import Policy
    from scanner.decide.rules import decide
    from scanner.tickets import Ticket

    policy = Policy.build(world.me(), PolicyConfig(), ())
    now = utc_now()
    wanted = {"GRANTED": ["valid", "second valid"], "TICKET_INVALID": ["cancelled"],
              "DETAILS_REQUIRED": ["details required"]}
    found: dict[str, str] = {}
    for doc in world.current_tickets(event_id):
        ticket = Ticket.from_api(doc)
        reason = decide(ticket, ScanHistory(), policy, Direction.IN, now,
                        barcode=ticket.barcode).reason.value
        if wanted.get(reason):
            found[wanted[reason].pop(0)] = ticket.barcode
        if not any(wanted.values()):
            break
    return found


class SimAction(Enum):
    """What a step does to the simulator when it runs no gate command."""

    CHURN = "churn"        # sell, cancel and change tickets
    OUTAGE = "outage"      # drop every connection
    RECOVER = "recover"    # answer again


def steps(codes: dict[str, str]) -> Iterator[tuple[str, list[str] | SimAction]]:
    """(caption, gate arguments or simulator action) in the order the demo runs them."""
    valid = codes["valid"]
    yield "events this token may scan", ["events"]
    yield "first sync: a full sync of every event", ["sync", "--once"]
    yield "SIM: tickets sold, cancelled and changed", SimAction.CHURN
    yield "second sync: only the delta", ["sync", "--once"]
    yield "a valid ticket enters", ["check", valid]
    yield "the same ticket again: anti-passback", ["check", valid]
    yield "it leaves", ["check", valid, "--direction", "OUT"]
    if "cancelled" in codes:
        yield "a cancelled ticket", ["check", codes["cancelled"]]
    if "details required" in codes:
        yield "a ticket whose holder details are missing", ["check", codes["details required"]]
    yield "a code the gate has never seen (online lookup, 400 ms deadline)", \
        ["check", "NOTATICKET-0000"]
    yield "a garbage read from a scanner", ["check", "abc"]
    yield "SIM: the venue's internet goes down", SimAction.OUTAGE
    yield "it tries to come back in: no re-entry at this event", ["check", valid]
    yield "another ticket enters, decided offline", ["check", codes["second valid"]]
    yield "upload fails; every scan stays queued", ["upload", "--once"]
    yield "SIM: the network is back", SimAction.RECOVER
    yield "upload drains the journal in batches", ["upload", "--once"]
    yield "status", ["status"]


@click.command()
@click.option("--tickets", default=20_000, show_default=True, type=click.IntRange(10),
              help="Tickets per event in the simulator.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the demo's database here (default: a temporary folder).")
def demo(tickets: int, workdir: Path | None) -> int:
    """Run the gate against the built-in simulator."""
    from scanner.sim import Faults, SimServer, World

    world = World(seed=7, events=2, tickets_per_event=tickets)
    faults = Faults(seed=7)
    with SimServer(world, faults, token=DEMO_TOKEN) as server, \
            tempfile.TemporaryDirectory(prefix="gate-demo-") as tmp:
        home = workdir or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        env = demo_environment(home, server.url)
        event_id = world.event_ids[0]
        codes = pick_barcodes(world, event_id)
        click.secho(f"simulator on {server.url}: {len(world.event_ids)} events x {tickets} "
                    f"tickets; gate database {home / 'gate.db'}", bold=True)
        failures = 0
        for caption, step in steps(codes):
            click.secho(f"\n# {caption}", fg="cyan")
            if isinstance(step, SimAction):
                act_on_simulator(step, world, faults)
                continue
            args = step
            click.secho(f"$ gate {' '.join(args)}", bold=True)
            proc = subprocess.run(gate_argv(*args), env=env, text=True, capture_output=True,
                                  timeout=600, check=False)
            click.echo((proc.stdout + proc.stderr).rstrip())
            # check exits 1 for a denial, upload 1 while offline: those are the story
            failures += proc.returncode not in (0, 1)
        uploaded = len(world.scans)
        click.secho(f"\nsimulator received {uploaded} scans from the gate", bold=True)
    return 1 if failures or uploaded == 0 else 0


def demo_environment(home: Path, url: str) -> dict[str, str]:
    token_file = home / "token"
    token_file.write_text(DEMO_TOKEN + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    config = home / "gate.toml"
    config.write_text(DEMO_CONFIG, encoding="utf-8")
    return gate_env(GATE_CONFIG=str(config), GATE_API_URL=url,
                    GATE_API_TOKEN_FILE=str(token_file), GATE_DB=str(home / "gate.db"),
                    GATE_EVENTS="")


def act_on_simulator(action: SimAction, world: Any, faults: Any) -> None:
    if action is SimAction.CHURN:
        kinds: dict[str, int] = {}
        for kind, _doc in world.mutate(50):
            kinds[kind] = kinds.get(kind, 0) + 1
        click.echo("simulator: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))
    elif action is SimAction.OUTAGE:
        faults.update(drop_rate=1.0)
        click.echo("simulator: dropping every connection")
    elif action is SimAction.RECOVER:
        faults.update(drop_rate=0.0)
        click.echo("simulator: answering again")
