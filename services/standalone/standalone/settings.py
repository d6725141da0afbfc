"""Standalone settings (environment, prefix ``PREPAID_``)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from billing.settings import BillingSettings
from collector.settings import CollectorSettings
from control.settings import ControlSettings
from gateway.settings import GatewaySettings
from payments.settings import PaymentsSettings
from prepaid_common.settings import DEVELOPMENT_SECRET
from pydantic import SecretStr


class StandaloneSettings(
    GatewaySettings, CollectorSettings, BillingSettings, ControlSettings, PaymentsSettings
):
    """Every service's settings (the same environment variables as in a cluster), and the
    standalone product's own: where its data lives, its address, the simulator."""

    # One PC: development's plain defaults unless told otherwise; the token secret is still
    # never the public one (with_local_secret makes one in data_dir).
    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    # A person reads the standalone's output in a terminal; clusters keep JSON lines.
    log_format: Literal["json", "text"] = "text"
    # Loopback by default: an office PC should not expose the API until someone decides to.
    http_host: str = "127.0.0.1"
    # Empty: a SQLite file in data_dir.
    database_url: str = ""
    simulator: bool = True
    sim_dtus: int = 10
    sim_meters: int = 8
    # Simulated seconds per real second, so that a newcomer sees credit run out quickly.
    sim_speed: float = 60.0
    # 0 picks free ports.
    sim_base_port: int = 15020
    sim_seed: int = 1
    demo_data: bool = True
    # Fake WeChat Pay and Alipay beside the simulator (only while no real one is configured);
    # 0 picks a free port.
    sim_payments: bool = True
    sim_payments_port: int = 0

    def check_secrets(self) -> None:
        """Take the development token secret: ``with_local_secret`` replaces it before use."""
        if self.token_secret.get_secret_value() == DEVELOPMENT_SECRET:
            return
        super().check_secrets()

    def with_local_secret(self) -> StandaloneSettings:
        """Replace the development token secret by a random one kept in the data directory.

        A well-known secret would let anyone sign an admin token for a site's PC.
        """
        if self.token_secret.get_secret_value() != DEVELOPMENT_SECRET:
            return self
        path = self.data_dir / "token-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32) + "\n")
            path.chmod(0o600)
        return self.model_copy(update={"token_secret": SecretStr(path.read_text().strip())})

    def effective_database_url(self) -> str:
        """The configured database, else a SQLite file in the data directory."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'prepaid.db'}"
