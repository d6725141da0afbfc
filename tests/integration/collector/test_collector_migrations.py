"""collector_0002 on both backends: existing meters keep their unit ids as addresses, and
the schema the migrations build is the one the tables describe."""

from __future__ import annotations

import shutil
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from collector.service import CollectorService
from collector.tables import metadata
from prepaid_common.bus import InProcessBus
from prepaid_common.db import create_engine, upgrade_schema
from sqlalchemy import text


async def test_upgrade_from_0001_keeps_meters_and_matches_the_tables(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    database_url, _ = backend
    first_only = tmp_path / "migrations"
    shutil.copytree(CollectorService.migrations_dir, first_only)
    for later in (first_only / "versions").glob("*.py"):
        if not later.name.startswith("0001_"):
            later.unlink()
    engine = create_engine(database_url)
    try:
        await upgrade_schema(engine, first_only, "collector_alembic_version")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO collector_dtus (id, name, kind, host, port, enabled, online) "
                    "VALUES ('OLD', 'old', 'modbus-tcp', '127.0.0.1', 502, true, false)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO collector_meters (id, dtu_id, unit_id, profile, online, "
                    "consecutive_failures) VALUES ('OLD-07', 'OLD', 7, 'reference-prepaid', "
                    "false, 0)"
                )
            )
        await CollectorService(engine=engine, bus=InProcessBus()).migrate()
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT address, unit_id FROM collector_meters WHERE id = 'OLD-07'")
                )
            ).one()
            dtu = (
                await connection.execute(
                    text("SELECT registration_mode, heartbeat FROM collector_dtus")
                )
            ).one()

            def differences(sync_connection: object) -> list[object]:
                context = MigrationContext.configure(sync_connection)  # type: ignore[arg-type]
                collector_only = [
                    diff
                    for diff in compare_metadata(context, metadata)
                    if "collector_" in repr(diff) and "alembic_version" not in repr(diff)
                ]
                return collector_only

            drift = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert (row.address, row.unit_id) == ("7", 7)
    assert (dtu.registration_mode, dtu.heartbeat) == ("once", "HB")
    assert drift == []
