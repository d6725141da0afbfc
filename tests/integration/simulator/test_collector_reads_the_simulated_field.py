"""The real collector against the simulator: every DTU kind, every shipped profile, sockets."""

from __future__ import annotations

from decimal import Decimal

from prepaid_common.contracts import ReadingV1
from prepaid_common.sealing import KeyRing
from simulator import PROFILE_NAMES, FieldSimulator
from testkit import wait_until
from testkit.collector import holds, running_collector


async def test_collector_reads_every_kind_and_profile_the_simulator_has(sqlite_url: str) -> None:
    async with running_collector(sqlite_url, collector_listen_port=0) as collector:
        listener = collector.service.listener
        assert listener is not None
        field = FieldSimulator(
            3,
            len(PROFILE_NAMES),
            kind_mix={"modbus-tcp": 1, "rtu-over-tcp": 1, "dtu-client": 1},
            profile_mix=dict.fromkeys(PROFILE_NAMES, 1.0),
            target=("127.0.0.1", listener.port),
            heartbeat_seconds=1.0,
            reconnect_seconds=0.1,
            speed=60.0,
            seed=4,
            # The secure-prepaid meters keep keys of their own; reading them needs none.
            command_keys=KeyRing({1: bytes(range(16))}),
        )
        async with field:
            kinds = {dtu.kind for dtu in field.dtus}
            assert kinds == {"modbus-tcp", "rtu-over-tcp", "dtu-client"}
            assert {m.profile for m in field.meters} == set(PROFILE_NAMES)
            for dtu in field.dtus:
                response = await collector.register(dtu.registration())
                assert response.status_code == 201, response.text

            def last(meter_id: str) -> ReadingV1 | None:
                readings = collector.readings(meter_id)
                return readings[-1] if readings else None

            await wait_until(holds(lambda: all(last(m.meter_id) for m in field.meters)))
            for meter in field.meters:
                reading = last(meter.meter_id)
                assert reading is not None
                # A float32 register may round a little above the meter's own figure.
                true_kwh = Decimal(str(meter.energy_kwh()))
                assert reading.energy_kwh <= true_kwh + Decimal("0.01"), meter.profile
                assert reading.energy_kwh >= true_kwh - Decimal("5"), meter.profile
