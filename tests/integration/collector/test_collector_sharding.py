"""Two collector replicas on one database share the dialled DTUs, route commands to the
owner of a meter's DTU, and take over the DTUs of a replica that stops or dies."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta

from collector import records
from collector.domain.ownership import owner_of
from prepaid_common.contracts import CommandResultV1, utcnow
from testkit import wait_until
from testkit.collector import Collector, holds, running_collector
from testkit.field import FakeBus, ModbusMeter, serve_raw

DTU_IDS = [f"SH{n}" for n in range(6)]


def pollers(collector: Collector) -> set[str]:
    return collector.service.polled_dtus()


def heard(a: Collector, b: Collector, meter_id: str) -> int:
    return len(a.readings(meter_id)) + len(b.readings(meter_id))


async def test_replicas_share_the_field_and_take_over(sqlite_url: str) -> None:
    buses = {dtu_id: FakeBus(modbus={1: ModbusMeter(unit=1)}) for dtu_id in DTU_IDS}
    async with AsyncExitStack() as stack:
        addresses = {d: await stack.enter_async_context(serve_raw(b)) for d, b in buses.items()}
        a = await stack.enter_async_context(
            running_collector(
                sqlite_url, collector_instance="replica-a", collector_lease_seconds=1.0
            )
        )
        b_stack = AsyncExitStack()
        b = await b_stack.enter_async_context(
            running_collector(
                sqlite_url, collector_instance="replica-b", collector_lease_seconds=1.0
            )
        )
        try:
            for dtu_id, (host, port) in addresses.items():
                meter = {"id": f"{dtu_id}-01", "unit_id": 1, "profile": "reference-prepaid"}
                dtu = {
                    "id": dtu_id,
                    "name": dtu_id,
                    "kind": "rtu-over-tcp",
                    "host": host,
                    "port": port,
                    "meters": [meter],
                }
                assert (await a.register(dtu)).status_code == 201
            both = ["replica-a", "replica-b"]
            expected_a = {d for d in DTU_IDS if owner_of(d, both) == "replica-a"}
            assert expected_a  # both replicas get a share
            assert expected_a != set(DTU_IDS)

            await wait_until(
                holds(lambda: pollers(a) == expected_a and pollers(b) == set(DTU_IDS) - expected_a)
            )
            # Readings come only from bus loops, and no DTU has a loop on both replicas.
            # (Both relay the one outbox, so what each bus heard says nothing of who read.)
            assert not pollers(a) & pollers(b)
            await wait_until(holds(lambda: all(heard(a, b, f"{d}-01") >= 2 for d in DTU_IDS)))

            # A command taken off the bus by A, for a meter on one of B's DTUs, runs on B:
            # A keeps it in the shared database and B, polling that DTU, finds it there.
            b_dtu = sorted(set(DTU_IDS) - expected_a)[0]
            b_meter = f"{b_dtu}-01"
            command_id = await a.command(b_meter, "trip")

            async def result() -> list[CommandResultV1]:
                return a.messages(CommandResultV1, command_id=command_id) + b.messages(
                    CommandResultV1, command_id=command_id
                )

            # Both replicas relay the one outbox, at least once: a result may be heard twice,
            # but it is one result.
            outcomes = await wait_until(result)
            assert len({(o.succeeded, o.relay, o.at) for o in outcomes}) == 1, outcomes
            outcome = outcomes[0]
            assert (outcome.succeeded, outcome.relay) == (True, "open"), outcome.error
            assert buses[b_dtu].modbus[1].relay_open

            # A read-now asked of A for B's meter is served by B.
            response = await a.http.post(f"/internal/meters/{b_meter}/read")
            assert response.status_code == 200, response.text
        finally:
            await b_stack.aclose()  # B stops cleanly and gives up its lease

        await wait_until(holds(lambda: pollers(a) == set(DTU_IDS)))
        counts = {d: len(a.readings(f"{d}-01")) for d in DTU_IDS}
        # Only A is left: every meter's readings now reach A's bus, B's included.
        await wait_until(
            holds(lambda: all(len(a.readings(f"{d}-01")) > counts[d] + 1 for d in DTU_IDS))
        )


async def test_a_dead_replicas_dtus_move_when_its_lease_runs_out(sqlite_url: str) -> None:
    async with running_collector(
        sqlite_url,
        collector_instance="replica-a",
        collector_lease_seconds=1.0,
        poll_interval_seconds=0.2,
    ) as a:
        # A replica that died without a word: a lease that will simply not be renewed.
        await records.renew_lease(
            a.service.store, instance="ghost", now=utcnow(), lease_seconds=1.5
        )
        for n, dtu_id in enumerate(DTU_IDS):
            # Nothing listens there: ownership is what is checked, not readings. Each DTU
            # has its own port: one host:port is one DTU (a second is refused, 409).
            registered = await a.register(
                {
                    "id": dtu_id,
                    "name": dtu_id,
                    "kind": "modbus-tcp",
                    "host": "127.0.0.1",
                    "port": 9 + n,
                    "meters": [],
                }
            )
            assert registered.status_code == 201, registered.text
        ghosts = {d for d in DTU_IDS if owner_of(d, ["replica-a", "ghost"]) == "ghost"}
        assert ghosts
        await wait_until(holds(lambda: pollers(a) == set(DTU_IDS) - ghosts), timeout=5)
        await wait_until(holds(lambda: pollers(a) == set(DTU_IDS)), timeout=10)
        live = await records.renew_lease(
            a.service.store,
            instance="replica-a",
            now=utcnow() + timedelta(seconds=0),
            lease_seconds=1.0,
        )
        assert live == ["replica-a"]
