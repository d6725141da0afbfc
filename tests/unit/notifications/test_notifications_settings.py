"""Channels are off unless configured; one configured in part refuses to start; secrets come
from files and never show in the settings' or a client's repr."""

from __future__ import annotations

from pathlib import Path

import pytest
from notifications.bootstrap import build_senders
from notifications.settings import NotificationsSettings
from pydantic import ValidationError

DEV = {"environment": "development"}


def test_every_channel_is_off_by_default() -> None:
    assert build_senders(NotificationsSettings(**DEV)) == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"aliyun_sms_access_key_id": "LTAI"}, "PREPAID_ALIYUN_SMS_ACCESS_KEY_SECRET_FILE"),
        ({"tencent_sms_secret_id": "AKID"}, "PREPAID_TENCENT_SMS_SDK_APP_ID"),
        ({"wechat_mp_app_id": "wx1"}, "PREPAID_WECHAT_MP_APP_SECRET_FILE"),
        ({"smtp_host": "mail.example.com"}, "PREPAID_SMTP_FROM"),
        (
            {"smtp_host": "mail.example.com", "smtp_from": "a@example.com", "smtp_username": "u"},
            "PREPAID_SMTP_PASSWORD_FILE",
        ),
    ],
)
def test_a_half_configured_channel_refuses_to_start(given: dict[str, str], missing: str) -> None:
    with pytest.raises(ValidationError, match=missing):
        NotificationsSettings(**DEV, **given)  # type: ignore[arg-type]


def test_secrets_are_read_from_files_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "aliyun"
    secret.write_text("s3cr3t-aliyun-value\n")
    wechat = tmp_path / "wechat"
    wechat.write_text("s3cr3t-wechat-value\n")
    settings = NotificationsSettings(
        **DEV,  # type: ignore[arg-type]
        aliyun_sms_access_key_id="LTAI",
        aliyun_sms_access_key_secret_file=secret,
        aliyun_sms_sign_name="物业",
        aliyun_sms_template_code="SMS_1",
        wechat_mp_app_id="wx1",
        wechat_mp_app_secret_file=wechat,
        wechat_mp_template_id="T1",
    )
    senders = build_senders(settings)
    assert set(senders) == {"sms", "wechat"}
    assert senders["sms"].provider == "aliyun"
    shown = repr(settings) + repr(senders)
    assert "s3cr3t" not in shown
