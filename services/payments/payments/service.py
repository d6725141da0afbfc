"""The payments service: takes money in and tells billing once, exactly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter
from prepaid_common.service import Service

from payments import api
from payments.tables import metadata, plumbing


class PaymentsService(Service):
    name = "payments"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing
    metadata = metadata

    def routers(self) -> Sequence[APIRouter]:
        return [api.internal_router(self.store)]
