"""Entry point of ``gate``: the group, logging, and the one place faults become exit codes.

Subcommands live in sibling modules and are imported lazily, so ``gate --help`` and
``gate check`` do not pay for OpenCV or the HTTP stack they do not use.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from scanner.build import PACKAGE
from scanner.cli.logs import fault_line, setup_logging
from scanner.errors import ConfigError, GateError
from scanner.printable import escape

# command name -> ("module:attribute" of its click command, one line of help)
COMMANDS = {
    "sim": ("scanner.cli.sim_cmd:sim", "Serve the built-in vivenu simulator on loopback."),
    "run": ("scanner.cli.run_cmd:run", "Run the turnstile daemon (systemd: gate-scanner)."),
    "sync": ("scanner.cli.sync_cmds:sync", "Sync tickets and device settings into the store."),
    "events": ("scanner.cli.sync_cmds:events", "List the events this device may scan."),
    "status": ("scanner.cli.status_cmd:status", "Store, sync, journal and upload state."),
    "tickets": ("scanner.cli.sync_cmds:tickets", "Print the local store's tickets as JSON lines."),
    "check": ("scanner.cli.check_cmds:check", "Decide one barcode exactly as the gate does."),
    "upload": ("scanner.cli.check_cmds:upload", "Upload journaled scans to vivenu."),
    "journal": ("scanner.cli.journal_cmds:journal",
                "Print, export or back up the scan journal."),
    "scan": ("scanner.cli.scan_cmd:scan", "Read codes from a camera or scanner and decide."),
    "demo": ("scanner.cli.demo_cmd:demo", "Run the gate against the built-in simulator."),
    "conflicts": ("scanner.cli.mesh_cmds:conflicts", "Tickets admitted on both sides of a split."),
    "zones": ("scanner.cli.zones_cmds:zones", "Every zone's count: inside, capacity."),
    "control": ("scanner.cli.zones_cmds:control",
                "Run the control room: every gate and zone on one page."),
    "bench": ("scanner.cli.bench_cmds:bench", "Measure sync, decision, upload, decode speed."),
    "config": ("scanner.cli.config_cmd:config", "Check and print the effective configuration."),
    "kiosk": ("scanner.cli.kiosk_cmd:kiosk", "The steward's kiosk page: set its PIN."),
    "devices": ("scanner.cli.devices_cmd:devices",
                "Serial ports, cameras, input devices, GPIO chips attached."),
    "setup": ("scanner.cli.setup_cmd:setup", "Write this gate's configuration (first run)."),
    "test": ("scanner.cli.outputs_cmd:test", "Wiring tests: gate test outputs."),
    "db": ("scanner.cli.db_cmds:db", "Check the store and journal; rebuild a damaged store."),
    "venue": ("scanner.cli.venue_cmds:venue",
              "Venue-wide commands (stop entry, free egress, lockdown, block), signed."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when invoked, so ``--help`` stays fast."""

    commands_map: dict[str, tuple[str, str]] = COMMANDS

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands_map)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.commands_map.get(cmd_name)
        if entry is None:
            return None
        module_name, _, attr = entry[0].partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command), entry[0]
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.commands_map[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name=PACKAGE, prog_name=PACKAGE,
                      message="%(prog)s %(version)s")
@click.option("--config", "config_path", envvar="GATE_CONFIG", type=click.Path(),
              help="TOML configuration file (or GATE_CONFIG).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """gate-scanner: offline-first access control for vivenu events."""
    setup_logging(verbose)
    # A file that cannot be read is blamed on what named it: the flag or the variable.
    given = ctx.get_parameter_source("config_path") is click.core.ParameterSource.COMMANDLINE
    ctx.obj = {"config_path": config_path, "config_from": "--config" if given else "GATE_CONFIG"}


def config_source(ctx: click.Context) -> dict[str, Any]:
    """The path of the configuration file and what named it, as ``load_config`` takes them."""
    obj = ctx.find_root().obj
    return {"path": obj.get("config_path"), "origin": obj["config_from"]}


def load(ctx: click.Context) -> Any:
    """The configuration for this invocation (loaded once, errors name the key)."""
    from scanner.config import load_config

    obj = ctx.find_root().obj
    if "config" not in obj:
        obj["config"] = load_config(**config_source(ctx))
    return obj["config"]


def main(argv: list[str] | None = None) -> int:
    try:
        result = cli.main(args=argv, prog_name="gate", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("gate: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except ConfigError as exc:
        # Every mistake at once, each naming its key; escaped, since a key or path from the
        # file may hold control characters that would rewrite the terminal or split a line.
        for line in exc.lines:
            click.echo(fault_line(f"gate: configuration error: {escape(line)}"), err=True)
        return 2
    except GateError as exc:
        click.echo(fault_line(f"gate: error: {escape(str(exc))}"), err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
