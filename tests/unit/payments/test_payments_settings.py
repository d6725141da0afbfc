"""Configuration: a provider with no settings is off, one set in part refuses to start, and
key material never shows in a representation (or so in a log line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from payments.keys import describe_channels, load_alipay, load_wechat
from payments.settings import PaymentsSettings
from pydantic import ValidationError
from simulator.payproviders import FakeKeys

KEYS = FakeKeys.generate()


def test_no_provider_settings_means_both_off() -> None:
    settings = PaymentsSettings()
    assert not settings.wechatpay_enabled()
    assert not settings.alipay_enabled()
    assert load_wechat(settings) is None
    assert load_alipay(settings) is None
    states = describe_channels(None, None)
    assert states["wechatpay"].startswith("off")
    assert states["alipay"].startswith("off")


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"wechatpay_mchid": "1900000109"}, "PREPAID_WECHATPAY_APPID"),
        ({"alipay_app_id": "2021"}, "PREPAID_ALIPAY_SELLER_ID"),
        ({"wechatpay_public_key_id": "PUB_KEY_ID_1"}, "PREPAID_WECHATPAY_PUBLIC_KEY_FILE"),
    ],
)
def test_a_half_configured_provider_refuses_to_start(given: dict[str, str], missing: str) -> None:
    with pytest.raises(ValidationError, match=missing):
        PaymentsSettings(**given)  # type: ignore[arg-type]


def test_the_environment_names_are_the_documented_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = KEYS.write_merchant_files(tmp_path)
    for name, value in files.items():
        monkeypatch.setenv(f"PREPAID_{name.upper()}", value)
    monkeypatch.setenv("PREPAID_PUBLIC_BASE_URL", "https://pay.example.com")
    monkeypatch.setenv("PREPAID_WECHATPAY_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("PREPAID_ALIPAY_GATEWAY_URL", "http://127.0.0.1:1/gateway.do")
    settings = PaymentsSettings()
    wechat, alipay = load_wechat(settings), load_alipay(settings)
    assert wechat is not None
    assert alipay is not None
    assert wechat.notify_url == "https://pay.example.com/api/v1/webhooks/wechatpay"
    assert alipay.notify_url == "https://pay.example.com/api/v1/webhooks/alipay"
    assert wechat.provider_keys.public_key_id == KEYS.wechat_public_key_id
    assert KEYS.wechat_platform_serial in wechat.provider_keys.certificates
    shown = repr(wechat) + repr(alipay) + repr(settings) + str(describe_channels(wechat, alipay))
    assert KEYS.api_v3_key.decode() not in shown
    assert "PRIVATE KEY" not in shown
    assert "on (" in describe_channels(wechat, alipay)["wechatpay"]


def test_an_api_v3_key_of_the_wrong_length_refuses_to_start(tmp_path: Path) -> None:
    files = KEYS.write_merchant_files(tmp_path)
    (tmp_path / "wechatpay-apiv3.key").write_text("too-short")
    settings = PaymentsSettings(**files, public_base_url="https://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32-character"):
        load_wechat(settings)
