"""Where the notifications service is wired: its one factory, for every entry point."""

from __future__ import annotations

import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from prepaid_common.bus import MessageBus
from sqlalchemy.ext.asyncio import AsyncEngine

from notifications.channels import Sender
from notifications.channels.mail import SmtpMail
from notifications.channels.sms import AliyunSms, TencentSms
from notifications.channels.wechat import WechatTemplates
from notifications.domain.delivery import Backoff, QuietHours
from notifications.domain.preferences import Contacts, Preferences
from notifications.handlers import Audience
from notifications.service import NotificationsService
from notifications.settings import NotificationsSettings

log = logging.getLogger(__name__)


def _secret(path: Path | None) -> str:
    # The file a *_FILE setting names (a mounted Secret); its text is never logged.
    if path is None:
        raise ValueError("a secret's file is not set")
    return path.read_text().strip()


def build_senders(settings: NotificationsSettings) -> dict[str, Sender]:
    """Return the channels configured (an SMS channel: Aliyun, else Tencent Cloud)."""

    def http() -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=settings.notifications_provider_timeout_seconds)

    senders: dict[str, Sender] = {}
    if settings.aliyun_sms_access_key_id:
        senders["sms"] = AliyunSms(
            access_key_id=settings.aliyun_sms_access_key_id,
            sign_name=settings.aliyun_sms_sign_name,
            template_code=settings.aliyun_sms_template_code,
            templates=dict(settings.aliyun_sms_templates),
            url=settings.aliyun_sms_url,
            http=http(),
            secret=_secret(settings.aliyun_sms_access_key_secret_file),
        )
    elif settings.tencent_sms_secret_id:
        senders["sms"] = TencentSms(
            secret_id=settings.tencent_sms_secret_id,
            sdk_app_id=settings.tencent_sms_sdk_app_id,
            sign_name=settings.tencent_sms_sign_name,
            template_id=settings.tencent_sms_template_id,
            templates=dict(settings.tencent_sms_templates),
            region=settings.tencent_sms_region,
            url=settings.tencent_sms_url,
            http=http(),
            secret_key=_secret(settings.tencent_sms_secret_key_file),
        )
    if settings.wechat_mp_app_id:
        senders["wechat"] = WechatTemplates(
            app_id=settings.wechat_mp_app_id,
            template_id=settings.wechat_mp_template_id,
            templates=dict(settings.wechat_mp_templates),
            url=settings.wechat_mp_url,
            http=http(),
            app_secret=_secret(settings.wechat_mp_app_secret_file),
        )
    if settings.smtp_host:
        senders["email"] = SmtpMail(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            starttls=settings.smtp_starttls,
            timeout=settings.notifications_provider_timeout_seconds,
            password=_secret(settings.smtp_password_file) if settings.smtp_password_file else "",
        )
    for channel in ("sms", "wechat", "email"):
        sender = senders.get(channel)
        log.info("notifications: %s %s", channel, f"on ({sender.provider})" if sender else "off")
    return senders


def audience_of(settings: NotificationsSettings, senders: dict[str, Sender]) -> Audience:
    quiet = None
    if settings.notifications_quiet_start is not None and settings.notifications_quiet_end:
        quiet = QuietHours(
            settings.notifications_quiet_start,
            settings.notifications_quiet_end,
            ZoneInfo(settings.notifications_time_zone),
        )
    return Audience(
        enabled=frozenset(senders),  # type: ignore[arg-type]
        operators=Preferences(
            contacts=Contacts(
                phones=tuple(settings.notifications_operator_phones),
                emails=tuple(settings.notifications_operator_emails),
                openids=tuple(settings.notifications_operator_openids),
            )
        ),
        quiet=quiet,
    )


def build(
    settings: NotificationsSettings,
    *,
    engine: AsyncEngine,
    bus: MessageBus,
    senders: dict[str, Sender] | None = None,
) -> NotificationsService:
    """Build the notifications service on an engine and a bus (channels from the settings)."""
    chosen = senders if senders is not None else build_senders(settings)
    return NotificationsService(
        engine=engine,
        bus=bus,
        senders=chosen,
        audience=audience_of(settings, chosen),
        message_backoff=Backoff(
            first_seconds=settings.notifications_first_retry_seconds,
            max_seconds=settings.notifications_max_retry_seconds,
            max_attempts=settings.notifications_max_attempts,
        ),
        webhook_backoff=Backoff(
            first_seconds=settings.notifications_first_retry_seconds,
            max_seconds=settings.notifications_max_retry_seconds,
            max_attempts=settings.webhook_max_attempts,
        ),
        webhook_http=httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False
        ),
        dispatch_interval_seconds=settings.notifications_dispatch_interval_seconds,
    )
