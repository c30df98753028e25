"""The control room composed: the observer on the venue's mesh and its page.

``gate control`` runs it with a configuration of its own: ``gate_id`` is its name on the
mesh (the broker's username, so the ACL lets it ask for replays under it), ``[mesh]`` the
venue's broker and key, ``[web]`` where its page listens (a PIN beyond loopback, as the
kiosk's), ``[[zones]]`` the venue's zones. It has no lane, no store and no journal: it
decides nothing and uploads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.clock import local_zone
from scanner.config import GateConfig
from scanner.control.observer import Observer
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.errors import ConfigError
from scanner.kiosk.parts import DEFAULT_PIN_FILE


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
    from scanner.mesh.paho_broker import PahoBroker
    from scanner.mesh.settings import MeshSettings

    if not config.mesh.url:
        raise ConfigError("mesh.url: the control room needs the venue's broker")
    settings = MeshSettings.from_config(config.mesh)
    view = VenueView(config.zones, tz=local_zone(), name=config.gate_id)
    observer = Observer(settings, PahoBroker(settings, f"control-{config.gate_id}"), view,
                        name=config.gate_id)
    web = config.web
    server = ControlServer(view, host=web.host, port=web.port,
                           pin_file=web.pin_file or DEFAULT_PIN_FILE,
                           status_open=web.status_open, language=web.language,
                           healthy=observer.state)
    return ControlRoom(view, observer, server)
