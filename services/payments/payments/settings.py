"""The payments service's settings, from the environment (``PREPAID_`` prefix).

A provider whose settings are all absent is off (and says so); one set only in part refuses
to start, naming what is missing. Key material is read from files, never from the
environment, and never printed.
"""

from __future__ import annotations

from pathlib import Path

from prepaid_common.settings import CommonSettings
from pydantic import Field, model_validator

WECHATPAY_PRODUCTION_URL = "https://api.mch.weixin.qq.com"
ALIPAY_PRODUCTION_URL = "https://openapi.alipay.com/gateway.do"


class PaymentsSettings(CommonSettings):
    """Cluster-mode settings of one payments process."""

    service_port: int = Field(default=8104, ge=1, le=65535)
    # Where the providers reach our webhooks: the gateway's public address (HTTPS in
    # production); the notify URLs are this plus /api/v1/webhooks/wechatpay or /alipay.
    public_base_url: str = ""

    wechatpay_mchid: str = ""
    wechatpay_appid: str = ""
    wechatpay_apiv3_key_file: Path | None = None
    wechatpay_merchant_key_file: Path | None = None
    wechatpay_merchant_serial: str = ""
    # Public-key mode (PUB_KEY_ID_...) and platform certificates may both be configured.
    wechatpay_public_key_file: Path | None = None
    wechatpay_public_key_id: str = ""
    wechatpay_platform_certs_dir: Path | None = None
    wechatpay_base_url: str = WECHATPAY_PRODUCTION_URL

    alipay_app_id: str = ""
    alipay_seller_id: str = ""
    alipay_app_key_file: Path | None = None
    alipay_public_key_file: Path | None = None
    alipay_gateway_url: str = ALIPAY_PRODUCTION_URL

    # How long a payer has to pay an order before it is closed.
    payments_order_lifetime_seconds: int = Field(default=900, ge=1, le=7200)
    # How often the reconciliation loop looks for silent orders (each has its own pauses).
    payments_reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    # When the daily job compares yesterday's trade bills (hour of the day, Beijing time: the
    # providers publish them from about 09:00).
    payments_bill_hour: int = Field(default=10, ge=0, le=23)
    # How long a provider may take to answer one request.
    payments_provider_timeout_seconds: float = Field(default=10.0, gt=0)

    def wechatpay_missing(self) -> list[str]:
        """Return the WeChat Pay settings still needed (all of them: the channel is off)."""
        missing = [
            name
            for name, value in [
                ("PREPAID_WECHATPAY_MCHID", self.wechatpay_mchid),
                ("PREPAID_WECHATPAY_APPID", self.wechatpay_appid),
                ("PREPAID_WECHATPAY_APIV3_KEY_FILE", self.wechatpay_apiv3_key_file),
                ("PREPAID_WECHATPAY_MERCHANT_KEY_FILE", self.wechatpay_merchant_key_file),
                ("PREPAID_WECHATPAY_MERCHANT_SERIAL", self.wechatpay_merchant_serial),
                ("PREPAID_PUBLIC_BASE_URL", self.public_base_url),
            ]
            if not value
        ]
        if bool(self.wechatpay_public_key_file) != bool(self.wechatpay_public_key_id):
            missing.append("PREPAID_WECHATPAY_PUBLIC_KEY_FILE with PREPAID_WECHATPAY_PUBLIC_KEY_ID")
        elif not self.wechatpay_public_key_file and not self.wechatpay_platform_certs_dir:
            missing.append(
                "PREPAID_WECHATPAY_PUBLIC_KEY_FILE (+ _ID) or PREPAID_WECHATPAY_PLATFORM_CERTS_DIR"
            )
        return missing

    def alipay_missing(self) -> list[str]:
        """Return the Alipay settings still needed (all of them: the channel is off)."""
        return [
            name
            for name, value in [
                ("PREPAID_ALIPAY_APP_ID", self.alipay_app_id),
                ("PREPAID_ALIPAY_SELLER_ID", self.alipay_seller_id),
                ("PREPAID_ALIPAY_APP_KEY_FILE", self.alipay_app_key_file),
                ("PREPAID_ALIPAY_PUBLIC_KEY_FILE", self.alipay_public_key_file),
                ("PREPAID_PUBLIC_BASE_URL", self.public_base_url),
            ]
            if not value
        ]

    def wechatpay_enabled(self) -> bool:
        """Whether WeChat Pay is configured (checked complete at start)."""
        return bool(
            self.wechatpay_mchid
            or self.wechatpay_appid
            or self.wechatpay_apiv3_key_file
            or self.wechatpay_merchant_key_file
            or self.wechatpay_merchant_serial
            or self.wechatpay_public_key_file
            or self.wechatpay_public_key_id
            or self.wechatpay_platform_certs_dir
        )

    def alipay_enabled(self) -> bool:
        """Whether Alipay is configured (checked complete at start)."""
        return bool(
            self.alipay_app_id
            or self.alipay_seller_id
            or self.alipay_app_key_file
            or self.alipay_public_key_file
        )

    @model_validator(mode="after")
    def _refuse_half_configured_providers(self) -> PaymentsSettings:
        for provider, enabled, missing in [
            ("WeChat Pay", self.wechatpay_enabled(), self.wechatpay_missing()),
            ("Alipay", self.alipay_enabled(), self.alipay_missing()),
        ]:
            if enabled and missing:
                raise ValueError(f"{provider} is configured in part; missing: {', '.join(missing)}")
        return self
