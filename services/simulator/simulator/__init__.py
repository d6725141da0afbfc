"""Field simulator: Modbus TCP gateways (DTUs) with prepaid meters behind them.

It ships with the product so that a site can be tried, and the collector tested, without
hardware. Meters consume energy along a daily load curve; an open relay really cuts it.
"""

from simulator.clock import SimClock
from simulator.field import FieldSimulator, SimulatedDtu
from simulator.meter import SimulatedMeter
from simulator.modbus import handle_request
from simulator.registers import PROFILE_NAMES

__all__ = [
    "PROFILE_NAMES",
    "FieldSimulator",
    "SimClock",
    "SimulatedDtu",
    "SimulatedMeter",
    "handle_request",
]
