"""The control room composed: the observer on the venue's mesh and its page.

``gate control`` runs it with a configuration of its own: ``gate_id`` is its name on the
mesh (the broker's username, so the ACL lets it ask for replays under it), ``[mesh]`` the
venue's broker and key, ``[web]`` where its page listens (a PIN beyond loopback, as the
kiosk's), ``[[zones]]`` the venue's zones. It has no lane, no store and no journal: it
decides nothing and uploads nothing. With ``[control] supervisor_key_file`` its page may
send venue commands (``scanner.control.commands``) after the supervisor's PIN (``[web]
supervisor_pin_file``), through the broker's supervisor user (``[control]
credentials_file``, else ``[mesh]``'s).
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.clock import local_zone
from scanner.config import GateConfig
from scanner.control.commands import Commands
from scanner.control.observer import Observer
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.errors import ConfigError
from scanner.kiosk.parts import DEFAULT_PIN_FILE, DEFAULT_SUPERVISOR_PIN_FILE


@dataclass
class ControlRoom:
    view: VenueView
    observer: Observer
    server: ControlServer

    def start(self) -> None:
        self.observer.start()
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
        self.observer.close()


def control_room(config: GateConfig) -> ControlRoom:
    """The control room for ``config`` (not started); a ConfigError without ``[mesh]``."""
    from scanner.mesh.broker_settings import MeshSettings
    from scanner.mesh.paho_broker import PahoBroker

    if not config.mesh.url:
        raise ConfigError("mesh.url: the control room needs the venue's broker")
    settings = MeshSettings.from_config(config.mesh)
    view = VenueView(config.zones, tz=local_zone(), name=config.gate_id)
    observer = Observer(settings, PahoBroker(settings, f"control-{config.gate_id}"), view,
                        name=config.gate_id)
    web = config.web
    server = ControlServer(view, host=web.host, port=web.port,
                           pin_file=web.pin_file or DEFAULT_PIN_FILE,
                           supervisor_pin_file=web.supervisor_pin_file
                           or DEFAULT_SUPERVISOR_PIN_FILE,
                           status_open=web.status_open, commands=commands(config),
                           language=web.language, healthy=observer.state)
    return ControlRoom(view, observer, server)


def commands(config: GateConfig) -> Commands | None:
    """The page's command buttons, or None without ``[control] supervisor_key_file``.
    A ConfigError when the key is set but no supervisor's PIN is: nobody could use them."""
    from dataclasses import replace

    from scanner.kiosk.auth import SUPERVISOR_PIN_KEY, PinHash
    from scanner.mesh.broker_settings import MeshSettings
    from scanner.venue.issue import send
    from scanner.venue.signing import Signer

    control = config.control
    if not control.supervisor_key_file:
        return None
    pin_file = config.web.supervisor_pin_file or DEFAULT_SUPERVISOR_PIN_FILE
    if PinHash.load(pin_file, SUPERVISOR_PIN_KEY) is None:
        raise ConfigError(f"{SUPERVISOR_PIN_KEY}: no supervisor PIN at {pin_file}, and the "
                          f"command buttons need one: run `gate kiosk set-pin --supervisor`")
    signer = Signer(control.supervisor_key_file, "control.supervisor_key_file")
    mesh, key = config.mesh, "mesh.credentials_file"
    if control.credentials_file:
        mesh, key = replace(mesh, credentials_file=control.credentials_file), \
            "control.credentials_file"
    settings = MeshSettings.from_config(mesh, credentials_key=key)
    return Commands(
        lambda kind, scope, target, reason: send(settings, config.zones, signer, kind, scope,
                                                 target, reason=reason),
        tuple((z.id, z.label) for z in config.zones))
