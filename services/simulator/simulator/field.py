"""A simulated field: many DTUs of every kind, each with a bus of meters, one clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from datetime import datetime

from prepaid_common.sealing import KeyRing, MeterKeys

from simulator.clock import SimClock
from simulator.dtu import DTU_KINDS, DtuKind, RegistrationMode, SimulatedDtu
from simulator.faults import DtuFaults, FaultPlan
from simulator.meter import SimulatedMeter
from simulator.registers import DLT645_PROFILE_NAMES, PROFILE_NAMES, SECURE_PROFILE_NAMES
from simulator.secure import SecureElement
from simulator.timing import SerialLine

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PROFILE_MIX", "FieldSimulator", "SimulatedDtu", "assign_profiles"]

DEFAULT_PROFILE_MIX: Mapping[str, float] = {
    "reference-prepaid": 0.8,
    "acrel-ddsy1352": 0.1,
    "eastron-sdm120": 0.1,
}
DEFAULT_KIND_MIX: Mapping[DtuKind, float] = {"modbus-tcp": 1.0}


class FieldSimulator:
    """Many DTUs, each with a bus of meters, sharing one simulated clock."""

    def __init__(
        self,
        dtu_count: int,
        meters_per_dtu: int,
        *,
        host: str = "127.0.0.1",
        base_port: int = 0,
        speed: float = 1.0,
        seed: int = 1,
        profile_mix: Mapping[str, float] | None = None,
        start: datetime | None = None,
        clock: SimClock | None = None,
        kind_mix: Mapping[DtuKind, float] | None = None,
        line: SerialLine | None = None,
        target: tuple[str, int] | None = None,
        registration_mode: RegistrationMode = "once",
        heartbeat_seconds: float = 30.0,
        reconnect_seconds: float = 1.0,
        faults: FaultPlan | None = None,
        command_keys: KeyRing | None = None,
    ) -> None:
        if dtu_count < 1 or not 1 <= meters_per_dtu <= 247:
            raise ValueError("need at least one DTU and 1-247 meters per DTU")
        # Secure meters are personalised with keys diversified from the site's master keys
        # (the same ones control seals with); they never hold a master key themselves.
        self.command_keys = command_keys
        self.clock = clock or SimClock(speed=speed, start=start)
        self.faults = faults or FaultPlan()
        rng = random.Random(seed)
        kinds = assign_kinds(kind_mix or DEFAULT_KIND_MIX, dtu_count)
        if "dtu-client" in kinds and target is None:
            raise ValueError("client-mode DTUs need a target (host, port) to dial")
        profiles = assign_profiles(profile_mix or DEFAULT_PROFILE_MIX, dtu_count * meters_per_dtu)
        if command_keys is None and any(p in SECURE_PROFILE_NAMES for p in profiles):
            raise ValueError("secure meters need the command master keys (command_keys)")
        rng.shuffle(profiles)
        _keep_dlt645_off_gateways(profiles, kinds, meters_per_dtu)
        fault_rng = random.Random(f"{seed}:faults")
        flapping = set(
            fault_rng.sample(range(dtu_count), min(self.faults.flapping_dtus, dtu_count))
        )
        self._dtus: list[SimulatedDtu] = []
        for index in range(dtu_count):
            dtu_id = f"DTU{index + 1:04d}"
            meters = []
            for unit_id in range(1, meters_per_dtu + 1):
                profile = profiles[index * meters_per_dtu + unit_id - 1]
                dlt645 = profile in DLT645_PROFILE_NAMES
                meters.append(
                    SimulatedMeter(
                        meter_id=f"{dtu_id}-{unit_id:02d}",
                        unit_id=unit_id,
                        profile=profile,
                        base_load_kw=round(rng.uniform(0.5, 5.0), 1),
                        clock=self.clock,
                        seed=seed,
                        initial_energy_kwh=round(rng.uniform(0.0, 2000.0), 2),
                        # 12 BCD digits: the DTU's number, then the meter's place on the bus.
                        address=f"{index + 1:06d}{unit_id:06d}" if dlt645 else None,
                    )
                )
            for meter in meters:
                if meter.profile in SECURE_PROFILE_NAMES:
                    assert command_keys is not None
                    keys = MeterKeys.derive(command_keys, meter.meter_id)
                    meter.secure = SecureElement(meter.meter_id, keys)
            kind = kinds[index]
            if kind == "dtu-client":
                assert target is not None
                dtu_host, port = target
            else:
                dtu_host, port = host, (base_port + index if base_port else 0)
            dtu = SimulatedDtu(
                dtu_id,
                meters,
                host=dtu_host,
                port=port,
                kind=kind,
                line=line,
                registration_mode=registration_mode,
                heartbeat_seconds=heartbeat_seconds,
                reconnect_seconds=reconnect_seconds,
                rng=random.Random(f"{seed}:{dtu_id}"),
            )
            if index in flapping:
                dtu.faults = DtuFaults(
                    self.faults.flap_every_seconds, self.faults.flap_down_seconds
                )
            self._apply_meter_faults(dtu, fault_rng)
            self._dtus.append(dtu)
        self._by_id = {dtu.dtu_id: dtu for dtu in self._dtus}
        self._meters = {meter.meter_id: meter for dtu in self._dtus for meter in dtu.meters}
        self._flappers: list[asyncio.Task[None]] = []

    def _apply_meter_faults(self, dtu: SimulatedDtu, rng: random.Random) -> None:
        plan = self.faults
        for meter in dtu.meters:
            faults = plan.meter_faults(rng, meter.meter_id)
            if faults.any:
                dtu.bus.faults[meter.meter_id] = faults
            if plan.clock_drift_ppm:
                meter.clock_drift_ppm = rng.uniform(-plan.clock_drift_ppm, plan.clock_drift_ppm)
            if plan.reset_share and rng.random() < plan.reset_share:
                meter.energy_resets_at = self.clock.seconds() + plan.reset_after_seconds

    @property
    def dtus(self) -> list[SimulatedDtu]:
        return list(self._dtus)

    def dtu(self, dtu_id: str) -> SimulatedDtu:
        """Return one DTU by id."""
        return self._by_id[dtu_id]

    def meter(self, meter_id: str) -> SimulatedMeter:
        """Return one meter by id (``DTU0001-03``)."""
        return self._meters[meter_id]

    @property
    def meters(self) -> list[SimulatedMeter]:
        return list(self._meters.values())

    async def start(self) -> None:
        """Open every DTU's listening socket, start the dialling ones and the flapping."""
        try:
            for dtu in self._dtus:
                await dtu.start()
        except BaseException:
            await self.stop()
            raise
        for dtu in self._dtus:
            if dtu.faults.flap_every_seconds is not None:
                self._flappers.append(asyncio.create_task(_flap(dtu), name=f"flap-{dtu.dtu_id}"))

    async def stop(self) -> None:
        """Stop the flapping and close every DTU."""
        flappers, self._flappers = self._flappers, []
        for task in flappers:
            task.cancel()
        for task in flappers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for dtu in self._dtus:
            await dtu.stop()

    async def __aenter__(self) -> FieldSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


async def _flap(dtu: SimulatedDtu) -> None:
    """Take the DTU down every ``flap_every_seconds`` for ``flap_down_seconds``."""
    every = dtu.faults.flap_every_seconds
    assert every is not None
    down = min(dtu.faults.flap_down_seconds, every)
    while True:
        await asyncio.sleep(every - down)
        log.info("DTU drops off", extra={"dtu_id": dtu.dtu_id})
        await dtu.stop()
        await asyncio.sleep(down)
        await dtu.start()


def _weighted_shares(mix: Mapping[str, float], count: int) -> list[str]:
    """Share ``count`` items among names by weight (largest remainder), in mix order."""
    total = sum(mix.values())
    if total <= 0 or any(weight < 0 for weight in mix.values()):
        raise ValueError("weights must be zero or more, and not all zero")
    quotas = {name: count * weight / total for name, weight in mix.items()}
    shares = {name: int(quota) for name, quota in quotas.items()}
    by_remainder = sorted(mix, key=lambda name: quotas[name] - shares[name], reverse=True)
    for name in by_remainder[: count - sum(shares.values())]:
        shares[name] += 1
    return [name for name, share in shares.items() for _ in range(share)]


def assign_profiles(mix: Mapping[str, float], count: int) -> list[str]:
    """Share ``count`` meters among profiles by weight (largest remainder), in mix order."""
    unknown = set(mix) - set(PROFILE_NAMES)
    if unknown:
        raise ValueError(f"unknown profiles {sorted(unknown)}; known: {list(PROFILE_NAMES)}")
    try:
        return _weighted_shares(mix, count)
    except ValueError:
        raise ValueError("profile weights must be zero or more, and not all zero") from None


def assign_kinds(mix: Mapping[DtuKind, float], count: int) -> list[DtuKind]:
    """Share ``count`` DTUs among kinds by weight, interleaved so every kind is spread out."""
    unknown = set(mix) - set(DTU_KINDS)
    if unknown:
        raise ValueError(f"unknown DTU kinds {sorted(unknown)}; known: {list(DTU_KINDS)}")
    ordered = _weighted_shares({str(k): w for k, w in mix.items()}, count)
    by_kind = {kind: [k for k in ordered if k == kind] for kind in DTU_KINDS}
    result: list[DtuKind] = []
    while len(result) < count:
        for kind in DTU_KINDS:
            if by_kind[kind]:
                by_kind[kind].pop()
                result.append(kind)
    return result


def _keep_dlt645_off_gateways(profiles: list[str], kinds: list[DtuKind], per_dtu: int) -> None:
    """Swap DL/T 645 meters off Modbus TCP gateways (they only speak Modbus), in place."""

    def on_gateway(slot: int) -> bool:
        return kinds[slot // per_dtu] == "modbus-tcp"

    stranded = [i for i, p in enumerate(profiles) if p in DLT645_PROFILE_NAMES and on_gateway(i)]
    free = [
        i for i, p in enumerate(profiles) if p not in DLT645_PROFILE_NAMES and not on_gateway(i)
    ]
    if len(stranded) > len(free):
        raise ValueError(
            "DL/T 645 meters need serial device servers or client-mode DTUs: "
            "add rtu-over-tcp or client to the DTU kind mix"
        )
    for slot, other in zip(stranded, free, strict=False):
        profiles[slot], profiles[other] = profiles[other], profiles[slot]
