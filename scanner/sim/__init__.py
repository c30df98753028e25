"""A vivenu access-users API simulator: ``World`` (the data), ``Faults`` (what goes wrong),
``SimServer`` (real HTTP on loopback). See ``gate sim``."""

from scanner.sim.injection import Faults
from scanner.sim.server import SimServer
from scanner.sim.world import World

__all__ = ["Faults", "SimServer", "World"]
