"""The notifications service's settings, from the environment (``PREPAID_`` prefix).

Every channel is off unless configured; one configured in part refuses to start, naming
what is missing. Secrets (access key secrets, the WeChat app secret, the SMTP password) are
read from the files the ``*_FILE`` settings name, never from the environment, never logged.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path

from prepaid_common.settings import CommonSettings
from pydantic import Field, model_validator

ALIYUN_SMS_URL = "https://dysmsapi.aliyuncs.com"
TENCENT_SMS_URL = "https://sms.tencentcloudapi.com"
WECHAT_MP_URL = "https://api.weixin.qq.com"


class NotificationsSettings(CommonSettings):
    """Cluster-mode settings of one notifications process."""

    service_port: int = Field(default=8105, ge=1, le=65535)

    # SMS through Aliyun (dysmsapi SendSms): one approved template for every kind, or one
    # per kind in PREPAID_ALIYUN_SMS_TEMPLATES (JSON: {"supply_cut": "SMS_123", ...}).
    aliyun_sms_access_key_id: str = ""
    aliyun_sms_access_key_secret_file: Path | None = None
    aliyun_sms_sign_name: str = ""
    aliyun_sms_template_code: str = ""
    aliyun_sms_templates: dict[str, str] = Field(default_factory=dict)
    aliyun_sms_url: str = ALIYUN_SMS_URL

    # SMS through Tencent Cloud (SendSms 2021-01-11, TC3-HMAC-SHA256).
    tencent_sms_secret_id: str = ""
    tencent_sms_secret_key_file: Path | None = None
    tencent_sms_sdk_app_id: str = ""
    tencent_sms_sign_name: str = ""
    tencent_sms_template_id: str = ""
    tencent_sms_templates: dict[str, str] = Field(default_factory=dict)
    tencent_sms_region: str = "ap-guangzhou"
    tencent_sms_url: str = TENCENT_SMS_URL

    # WeChat official-account template messages.
    wechat_mp_app_id: str = ""
    wechat_mp_app_secret_file: Path | None = None
    wechat_mp_template_id: str = ""
    wechat_mp_templates: dict[str, str] = Field(default_factory=dict)
    wechat_mp_url: str = WECHAT_MP_URL

    # E-mail over SMTP (STARTTLS when the server offers it and smtp_starttls is on).
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_from: str = ""
    smtp_username: str = ""
    smtp_password_file: Path | None = None
    smtp_starttls: bool = True

    # Who hears what concerns the site (meters and DTUs offline, payments to look at).
    notifications_operator_phones: list[str] = Field(default_factory=list)
    notifications_operator_emails: list[str] = Field(default_factory=list)
    notifications_operator_openids: list[str] = Field(default_factory=list)

    # Quiet hours, in the site's time zone: messages that can wait are held until they end.
    notifications_quiet_start: time | None = time(22, 0)
    notifications_quiet_end: time | None = time(7, 0)
    notifications_time_zone: str = "Asia/Shanghai"

    # Delivery: how often the dispatcher looks for due messages; retries with back-off.
    notifications_dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    notifications_max_attempts: int = Field(default=8, ge=1, le=50)
    notifications_first_retry_seconds: float = Field(default=30.0, gt=0)
    notifications_max_retry_seconds: float = Field(default=3600.0, gt=0)
    notifications_provider_timeout_seconds: float = Field(default=10.0, gt=0)

    # Outbound webhooks.
    webhook_max_attempts: int = Field(default=10, ge=1, le=50)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    def missing(self) -> dict[str, list[str]]:
        """Return, per channel configured at all, the settings it still needs."""
        channels: dict[str, list[tuple[str, object]]] = {
            "Aliyun SMS": [
                ("PREPAID_ALIYUN_SMS_ACCESS_KEY_ID", self.aliyun_sms_access_key_id),
                (
                    "PREPAID_ALIYUN_SMS_ACCESS_KEY_SECRET_FILE",
                    self.aliyun_sms_access_key_secret_file,
                ),
                ("PREPAID_ALIYUN_SMS_SIGN_NAME", self.aliyun_sms_sign_name),
                (
                    "PREPAID_ALIYUN_SMS_TEMPLATE_CODE",
                    self.aliyun_sms_template_code or self.aliyun_sms_templates,
                ),
            ],
            "Tencent Cloud SMS": [
                ("PREPAID_TENCENT_SMS_SECRET_ID", self.tencent_sms_secret_id),
                ("PREPAID_TENCENT_SMS_SECRET_KEY_FILE", self.tencent_sms_secret_key_file),
                ("PREPAID_TENCENT_SMS_SDK_APP_ID", self.tencent_sms_sdk_app_id),
                ("PREPAID_TENCENT_SMS_SIGN_NAME", self.tencent_sms_sign_name),
                (
                    "PREPAID_TENCENT_SMS_TEMPLATE_ID",
                    self.tencent_sms_template_id or self.tencent_sms_templates,
                ),
            ],
            "WeChat official account": [
                ("PREPAID_WECHAT_MP_APP_ID", self.wechat_mp_app_id),
                ("PREPAID_WECHAT_MP_APP_SECRET_FILE", self.wechat_mp_app_secret_file),
                (
                    "PREPAID_WECHAT_MP_TEMPLATE_ID",
                    self.wechat_mp_template_id or self.wechat_mp_templates,
                ),
            ],
            "SMTP": [
                ("PREPAID_SMTP_HOST", self.smtp_host),
                ("PREPAID_SMTP_FROM", self.smtp_from),
            ],
        }
        answer: dict[str, list[str]] = {}
        for channel, needed in channels.items():
            if any(value for _, value in needed):
                answer[channel] = [name for name, value in needed if not value]
        if bool(self.smtp_username) != bool(self.smtp_password_file):
            answer.setdefault("SMTP", []).append(
                "PREPAID_SMTP_USERNAME with PREPAID_SMTP_PASSWORD_FILE"
            )
        return answer

    @model_validator(mode="after")
    def _refuse_half_configured_channels(self) -> NotificationsSettings:
        for channel, missing in self.missing().items():
            if missing:
                raise ValueError(f"{channel} is configured in part; missing: {', '.join(missing)}")
        if (self.notifications_quiet_start is None) != (self.notifications_quiet_end is None):
            raise ValueError("quiet hours need both PREPAID_NOTIFICATIONS_QUIET_START and _END")
        return self
