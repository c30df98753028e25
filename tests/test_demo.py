"""``gate demo`` end to end: the daemon as a process against the simulator, through an outage."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def run_demo(tmp_path: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "NOTIFY_"))}
    proc = subprocess.run([sys.executable, "-m", "scanner.cli.main", "demo", "--tickets", "300",
                           "--dir", str(tmp_path), "--port", "0"],
                          env=env, text=True, capture_output=True, timeout=180, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_decides_every_story_pulses_the_relay_and_uploads_after_the_outage(
        tmp_path: Path) -> None:
    code, out = run_demo(tmp_path)
    assert code == 0, out
    for reader, reason in (("camera", "GRANTED"), ("camera", "TICKET_INVALID"),
                           ("entry", "GRANTED"), ("entry", "ALREADY_INSIDE"),
                           ("exit", "CHECKED_OUT"), ("entry", "TICKET_INVALID"),
                           ("entry", "MALFORMED_READ"), ("entry", "UNKNOWN_BARCODE")):
        assert re.search(rf"{reader} +(IN|OUT) +{reason} ", out), (reader, reason)
    # 2 camera grants, 3 entry grants (2 offline), 1 exit: each released the turnstile
    assert len(re.findall(r"relay pulsed: turnstile released", out)) == 6
    assert "upload paused" in out
    assert re.search(r"kiosk page http://127.0.0.1:\d+/ : /healthz 200", out), out
    assert "0 step(s) failed" in out
    # every ticketed scan reached the simulator: 9 with a ticket, plus the unknown code
    received = int(out.rsplit("simulator received ", 1)[1].split()[0])
    assert received >= 10
    assert "Traceback" not in out
    assert "demo-token-not-a-secret" not in out
    assert "stopped" in (tmp_path / "run.log").read_text(encoding="utf-8")


@pytest.mark.slow
def test_each_relay_line_sits_under_its_own_steps_heading(tmp_path: Path) -> None:
    """A step waits for the relay pulse of what it admitted (an exit too), so its relay
    line is printed under its heading, never under the next step's."""
    code, out = run_demo(tmp_path)
    assert code == 0, out
    steps = re.split(r"^# ", out, flags=re.MULTILINE)[1:]
    relayed = 0
    for step in steps:
        decided = set(re.findall(r"^ +\w+ +(?:IN|OUT) +(?:GRANTED|CHECKED_OUT) +(\S+)", step,
                                 flags=re.MULTILINE))
        for barcode in re.findall(r"relay pulsed: turnstile released for (\S+)", step):
            assert barcode in decided, step
            relayed += 1
    assert relayed == 6, out


def test_a_checkout_is_shown_green_and_a_refusal_red() -> None:
    """An OUT that let someone leave is no error."""
    import contextlib
    import io

    import click

    from scanner.cli.demo_cmd import DaemonLog

    shown = io.StringIO()
    lines = ("2026-01-01 10:00:00,000 INFO scanner.decision: decision s1 CHECKED_OUT OUT "
             "B1 exit: Goodbye (1.0 ms)",
             "2026-01-01 10:00:01,000 INFO scanner.decision: decision s2 ALREADY_INSIDE IN "
             "B1 entry: Already inside (1.0 ms)")
    log = DaemonLog(io.StringIO(), io.StringIO())  # the lines are shown here, in colour
    log.close()
    with click.Context(click.Command("demo"), color=True), contextlib.redirect_stdout(shown):
        for line in lines:
            log._show(line)
    checked_out, refused = shown.getvalue().splitlines()
    assert "CHECKED_OUT" in checked_out and checked_out.startswith("\x1b[32m")
    assert "ALREADY_INSIDE" in refused and refused.startswith("\x1b[31m")


def test_the_demo_waits_while_healthz_says_syncing_and_goes_on_once_it_does_not() -> None:
    """The first sync's end is read from a real /healthz on loopback: 503 with ``syncing``
    is still starting, 503 for another reason is not (that is not the sync's to wait on),
    and no server at all is no answer."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from scanner.cli.demo_cmd import daemon_health

    answers = [(503, ["syncing: 100 of 200 tickets (50 %)"]),
               (503, ["reader camera disconnected"]), (200, [])]

    class Healthz(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, reasons = answers.pop(0)
            body = json.dumps({"ok": status == 200, "reasons": reasons}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Healthz) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        syncing, other, ready = (daemon_health(port, 5.0) for _ in range(3))
        server.shutdown()
    assert syncing.answered and syncing.starting
    assert syncing.syncing == "syncing: 100 of 200 tickets (50 %)"
    assert other.answered and not other.starting and other.said.startswith("503 (reader")
    assert ready.answered and not ready.starting and ready.said == "200"
    gone = daemon_health(port, 1.0)
    assert not gone.answered and gone.starting and gone.said.startswith("no answer")
