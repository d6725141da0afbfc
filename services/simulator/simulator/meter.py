"""A simulated prepaid meter: consumption, relay, local credit, a few stored registers and its
own clock."""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from simulator.clock import SimClock
from simulator.loadcurve import (
    PERIODS,
    Period,
    energy_between,
    hour_of_day,
    hourly_load_kw,
)
from simulator.secure import SecureElement

Relay = Literal["open", "closed"]
PURCHASE_COUNT_MAX = 0xFFFF  # the reference profile's UINT16 purchase count


class PurchaseRefused(ValueError):
    """A purchase the meter does not take: not its next count, or no amount."""


@dataclass(frozen=True)
class MeterSample:
    """What a meter's registers show at one instant."""

    energy_kwh: float
    energy_by_period: dict[Period, float]
    power_kw: float
    voltage_v: float
    current_a: float
    power_factor: float
    relay: Relay
    hold_power: bool
    clock: datetime


class SimulatedMeter:
    """One meter on a simulated RS485 bus.

    Energy is integrated lazily, whenever the meter is looked at: the power of each
    simulated hour times the simulated time that passed, while the relay is closed.
    """

    def __init__(
        self,
        *,
        meter_id: str,
        unit_id: int,
        profile: str,
        base_load_kw: float,
        clock: SimClock,
        seed: int = 1,
        initial_energy_kwh: float = 0.0,
        address: str | None = None,
    ) -> None:
        if not 1 <= unit_id <= 247:
            raise ValueError("unit_id must be a Modbus slave address (1-247)")
        if address is not None and (len(address) != 12 or not address.isdigit()):
            raise ValueError("a DL/T 645 address is 12 decimal digits")
        self.meter_id = meter_id
        self.unit_id = unit_id
        # The serial number its identity registers tell (fixed per meter id and seed).
        self.serial = zlib.crc32(f"{seed}:{meter_id}".encode()) % 90_000_000 + 10_000_000
        self.profile = profile
        # DL/T 645 meters answer to a 12-digit address instead of the unit id.
        self.address = address
        self.hold_power = False
        # Parts per million the meter's own clock runs fast (negative: slow).
        self.clock_drift_ppm = 0.0
        self._drift_origin = clock.seconds()
        # Simulated seconds (from the clock's midnight) when the register resets, once.
        self.energy_resets_at: float | None = None
        # Registers the meter only stores (a settable code...).
        self.stored: dict[int, int] = {}
        # Local credit (yuan) and the purchases taken: only purchases move them (a test
        # playing a cheat sets them directly). With a local price (yuan/kWh) the meter
        # debits its credit as it measures energy and opens its relay at zero.
        self.local_credit = Decimal("0.00")
        self.purchase_count = 0
        self.local_price: Decimal | None = None
        # The two credit alarm levels (yuan): the meter warns at the first, again at the second.
        self.alarm_thresholds = (Decimal("0.00"), Decimal("0.00"))
        # The power limit (限功率, kW; None: no limit). The meter opens its relay itself when
        # it finds the power above the limit, and raises its overload alarm until a close.
        self.power_limit_kw: Decimal | None = None
        self.overload = False
        # A resistive load switched on (a heater, a kettle: power factor 1), kW on top of the
        # household's. The meter recognises its signature (恶性负载识别) and trips, raising its
        # malicious-load alarm until a close; a test or an operator switches it.
        self.resistive_load_kw = 0.0
        self.malicious_load = False
        # A secure meter's element (simulator.secure): it verifies sealed commands itself.
        self.secure: SecureElement | None = None
        self._opened_for_credit = False
        self.clock_offset = timedelta()
        self._clock = clock
        # A string seed is hashed deterministically (unlike hash() of a str).
        rng = random.Random(f"{seed}:{meter_id}")
        self.nominal_voltage_v = round(rng.uniform(216.0, 232.0), 1)
        self.power_factor = round(rng.uniform(0.90, 0.99), 3)
        # The meter's own jitter of the daily shape stays the same when its base load changes.
        self._shape_seed = f"{seed}:{meter_id}:shape"
        self._base_load_kw = base_load_kw
        self._hourly_kw = hourly_load_kw(base_load_kw, random.Random(self._shape_seed))
        self._relay: Relay = "closed"
        # The chance that a relay command is acknowledged but not carried out (a worn
        # contactor, a firmware fault): 1.0 is a stuck relay.
        self.relay_write_ignore_rate = 0.0
        self._relay_fault_rng = random.Random(f"{seed}:{meter_id}:relay")
        self._energy: dict[Period, float] = dict.fromkeys(PERIODS, initial_energy_kwh / 4)
        self._integrated_until = clock.seconds()

    @property
    def clock(self) -> SimClock:
        """The simulated clock the meter runs on."""
        return self._clock

    # --- state a test or an operator changes --------------------------------------------
    @property
    def base_load_kw(self) -> float:
        return self._base_load_kw

    @base_load_kw.setter
    def base_load_kw(self, value: float) -> None:
        if value < 0 or not math.isfinite(value):
            raise ValueError("base load must be a finite number of kW, zero or more")
        self._advance()
        self._base_load_kw = value
        self._hourly_kw = hourly_load_kw(value, random.Random(self._shape_seed))

    @property
    def relay(self) -> Relay:
        self._advance()  # a local-prepaid meter may have cut itself meanwhile
        return self._relay

    @relay.setter
    def relay(self, value: Relay) -> None:
        if value not in ("open", "closed"):
            raise ValueError("relay is 'open' or 'closed'")
        self._advance()
        self._relay = value
        self._opened_for_credit = False  # a command decides now, not the credit
        if value == "closed":
            # A close re-arms the load protection: the alarms stand until then.
            self.overload = self.malicious_load = False

    def switch_relay(self, value: Relay) -> None:
        """Carry out a relay command, unless the meter silently ignores this one."""
        rate = self.relay_write_ignore_rate
        if rate and self._relay_fault_rng.random() < rate:
            return
        self.relay = value

    # --- what the registers show --------------------------------------------------------
    def energy_kwh(self) -> float:
        """Return the total active energy so far, kWh (not rounded to the register)."""
        self._advance()
        return sum(self._energy.values())

    def power_kw(self) -> float:
        """Return the active power drawn now (zero while the relay is open)."""
        if self._relay == "open":
            return 0.0
        return self._hourly_kw[hour_of_day(self._clock.seconds())] + self.resistive_load_kw

    def meter_time(self) -> datetime:
        """Return the meter's own clock (simulated time, what was set on it, its drift)."""
        drift = (self._clock.seconds() - self._drift_origin) * self.clock_drift_ppm * 1e-6
        return self._clock.now() + self.clock_offset + timedelta(seconds=drift)

    def set_meter_time(self, moment: datetime) -> None:
        """Set the meter's clock (it then runs on from there, drifting as before)."""
        self._drift_origin = self._clock.seconds()
        self.clock_offset = moment - self._clock.now()

    def take_purchase(self, amount: Decimal, count: int) -> bool:
        """Add a purchase if ``count`` is the meter's count + 1; return False for its own
        count again (a retried write: nothing added). PurchaseRefused for anything else."""
        if count == self.purchase_count:
            return False
        if count != self.purchase_count + 1 or count > PURCHASE_COUNT_MAX:
            raise PurchaseRefused(f"purchase {count}: the meter's count is {self.purchase_count}")
        if amount <= 0:
            raise PurchaseRefused(f"purchase amount {amount} is not positive")
        self._advance()
        self.local_credit += amount
        self.purchase_count = count
        if self._opened_for_credit and self.local_credit > 0:
            # The meter cut itself for want of credit; a purchase restores it.
            self._opened_for_credit = False
            self._relay = "closed"
        return True

    def reset_energy(self) -> None:
        """Zero the energy registers, as a meter that lost its memory or was swapped does."""
        self._advance()
        self._energy = dict.fromkeys(PERIODS, 0.0)

    def sample(self) -> MeterSample:
        """Bring energy up to now and return everything the registers show."""
        self._advance()
        power_kw = self.power_kw()
        voltage = self.nominal_voltage_v
        current = power_kw * 1000 / (voltage * self.power_factor)
        return MeterSample(
            energy_kwh=sum(self._energy.values()),
            energy_by_period=dict(self._energy),
            power_kw=power_kw,
            voltage_v=voltage,
            current_a=current,
            power_factor=self.power_factor,
            relay=self._relay,
            hold_power=self.hold_power,
            clock=self.meter_time(),
        )

    def _advance(self) -> None:
        now = self._clock.seconds()
        if now <= self._integrated_until:
            return
        resets_at = self.energy_resets_at
        if resets_at is not None and now >= resets_at:
            # Lazily, when the meter is next looked at: no timer per meter.
            self.energy_resets_at = None
            self._advance_to(resets_at)
            self._energy = dict.fromkeys(PERIODS, 0.0)
        self._advance_to(now)
        self._protect_load()

    def _protect_load(self) -> None:
        """Trip for a malicious load or a power above the limit, as the meter sees it now.

        Checked whenever the meter is looked at (each poll or command): the load drawn in
        between is integrated as drawn, as a real meter's few-second delay would let it be.
        """
        if self._relay != "closed":
            return
        if self.resistive_load_kw > 0:
            self._relay, self.malicious_load = "open", True
        elif self.power_limit_kw is not None and self.power_limit_kw < self.power_kw():
            self._relay, self.overload = "open", True

    def _advance_to(self, now: float) -> None:
        if now <= self._integrated_until:
            return
        if self._relay == "closed":
            used = energy_between(self._hourly_kw, self._integrated_until, now)
            for period, kwh in used.items():
                self._energy[period] += kwh
            if self.local_price is not None:
                self._debit(sum(used.values()))
        self._integrated_until = now

    def _debit(self, kwh: float) -> None:
        """Take the energy's price from the local credit; cut supply when it runs out."""
        assert self.local_price is not None
        # Energy is simulated in floats; its shortest text is exact enough for money here.
        self.local_credit -= Decimal(repr(kwh)) * self.local_price
        if self.local_credit <= 0:
            # Between two looks the meter may overshoot a little: the credit goes below zero.
            self._relay = "open"
            self._opened_for_credit = True
