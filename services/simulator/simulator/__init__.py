"""Field simulator: DTUs of every kind with prepaid and energy meters behind them.

It ships with the product so that a site can be tried, and the collector tested and
benchmarked, without hardware. Meters consume energy along a daily load curve; an open
relay really cuts it. Buses are as slow as real RS485 lines when given a SerialLine.
"""

from simulator.clock import SimClock
from simulator.dtu import DTU_KINDS, SimulatedDtu
from simulator.faults import DtuFaults, FaultPlan, MeterFaults
from simulator.field import FieldSimulator
from simulator.meter import SimulatedMeter
from simulator.modbus import handle_request
from simulator.registers import DLT645_PROFILE_NAMES, MODBUS_PROFILE_NAMES, PROFILE_NAMES
from simulator.timing import SerialLine

__all__ = [
    "DLT645_PROFILE_NAMES",
    "DTU_KINDS",
    "MODBUS_PROFILE_NAMES",
    "PROFILE_NAMES",
    "DtuFaults",
    "FaultPlan",
    "FieldSimulator",
    "MeterFaults",
    "SerialLine",
    "SimClock",
    "SimulatedDtu",
    "SimulatedMeter",
    "handle_request",
]
