"""The collector against the field simulator's faults, every DTU kind: garbled and
wrong-address replies never become readings, silent meters go offline, the rest stay read."""

from __future__ import annotations

from decimal import Decimal

from prepaid_common.contracts import MeterStatusV1
from simulator import FaultPlan, FieldSimulator
from testkit import wait_until
from testkit.collector import holds, running_collector

PROFILES = {"reference-prepaid": 1.0, "eastron-sdm120": 1.0, "dlt645-2007": 1.0}


async def test_faulty_replies_never_become_readings(sqlite_url: str) -> None:
    # A generous timeout: on a busy machine a slow answer is not the fault under test.
    async with running_collector(
        sqlite_url, collector_listen_port=0, request_timeout_seconds=1.0
    ) as collector:
        listener = collector.service.listener
        assert listener is not None
        field = FieldSimulator(
            3,
            4,
            kind_mix={"modbus-tcp": 1, "rtu-over-tcp": 1, "dtu-client": 1},
            profile_mix=PROFILES,
            target=("127.0.0.1", listener.port),
            heartbeat_seconds=1.0,
            reconnect_seconds=0.1,
            speed=60.0,
            seed=11,
            faults=FaultPlan(crc_error_rate=0.05, wrong_address_rate=0.05),
        )
        async with field:
            for dtu in field.dtus:
                assert (await collector.register(dtu.registration())).status_code == 201
            meter_ids = [m.meter_id for m in field.meters]

            def short() -> dict[str, int]:
                counts = {m: len(collector.readings(m)) for m in meter_ids}
                return {m: n for m, n in counts.items() if n < 3}

            await wait_until(holds(lambda: not short()), timeout=60)
            counters = [dict(dtu.bus.counters) for dtu in field.dtus]
            # The faults did happen: the readings below came through them.
            assert sum(c.get("crc_error", 0) for c in counters) > 0, counters
            assert sum(c.get("wrong_address", 0) for c in counters) > 0, counters
            for meter in field.meters:
                readings = collector.readings(meter.meter_id)
                energies = [r.energy_kwh for r in readings]
                # A neighbour's register or a flipped bit would break one of these.
                assert energies == sorted(energies), (meter.profile, energies)
                true_kwh = Decimal(str(meter.energy_kwh()))
                assert energies[-1] <= true_kwh + Decimal("0.01"), meter.profile
                assert energies[-1] >= true_kwh - Decimal("5"), meter.profile
            reasons = [s.reason for s in collector.messages(MeterStatusV1, online=False)]
            assert all(not r.startswith("DTU offline") for r in reasons), reasons


async def test_late_replies_are_not_taken_for_the_next_answer(sqlite_url: str) -> None:
    # RTU has no transaction id: a reply arriving after its timeout could pass for the
    # answer to the next request of the same size (SDM120 reads four 2-register blocks).
    async with running_collector(sqlite_url, request_timeout_seconds=0.5) as collector:
        field = FieldSimulator(
            2,
            3,
            kind_mix={"rtu-over-tcp": 1},
            profile_mix={"eastron-sdm120": 1.0},
            speed=60.0,
            seed=5,
            faults=FaultPlan(slow_reply_rate=0.1, slow_reply_seconds=0.7),
        )
        async with field:
            for dtu in field.dtus:
                assert (await collector.register(dtu.registration())).status_code == 201
            meter_ids = [m.meter_id for m in field.meters]
            # Failing meters back off, so a busy machine may need a while for every meter.
            await wait_until(
                holds(lambda: all(len(collector.readings(m)) >= 2 for m in meter_ids)),
                timeout=60,
            )
            assert sum(dtu.bus.counters.get("slow", 0) for dtu in field.dtus) > 0
            for meter in field.meters:
                energies = [r.energy_kwh for r in collector.readings(meter.meter_id)]
                assert energies == sorted(energies), energies
                powers = [r.power_kw for r in collector.readings(meter.meter_id)]
                # Power is kW: a voltage or an energy in its place would be hundreds.
                assert all(p is not None and p < 30 for p in powers), powers
