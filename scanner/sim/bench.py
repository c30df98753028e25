"""How fast the simulator serves a full ticket list, and how fast the client takes it in.

    .venv/bin/python -m scanner.sim.bench --tickets 1000000 --top 1000

Runs ``gate sim`` in its own process so its CPU time is measured apart from the client's
(read from /proc, so Linux only), pages through one event with ``VivenuClient`` and prints
one line of figures.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from scanner.config import Secret
from scanner.sim.server import DEFAULT_TOKEN
from scanner.vivenu.client import VivenuClient


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--top", type=int, default=1000)
    args = parser.parse_args(argv)
    gate = Path(sys.executable).with_name("gate")
    server = subprocess.Popen(
        [str(gate), "sim", "--port", "0", "--events", "1", "--tickets", str(args.tickets)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"http://\S+", line)
        if found is None:
            print(f"bench: gate sim did not start: {line!r}", file=sys.stderr)
            return 1
        with VivenuClient(found.group(0), Secret(DEFAULT_TOKEN)) as client:
            event_id = client.events()[0]["_id"]
            cpu_before = process_cpu_seconds(server.pid)
            wall, client_cpu = time.perf_counter(), time.process_time()
            seen, skip = 0, 0
            while True:
                page = client.ticket_page(event_id, top=args.top, skip=skip)
                seen += len(page.tickets)
                skip += args.top
                if skip >= page.total:
                    break
            wall = time.perf_counter() - wall
            client_cpu = time.process_time() - client_cpu
            server_cpu = process_cpu_seconds(server.pid) - cpu_before
        pages = -(-seen // args.top)
        print(f"sim served {seen} tickets in {pages} pages of {args.top}: "
              f"server CPU {server_cpu:.1f} s, client CPU (HTTP + parse into Ticket) "
              f"{client_cpu:.1f} s, wall {wall:.1f} s, {seen / wall:,.0f} tickets/s")
        return 0 if seen == args.tickets else 1
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
