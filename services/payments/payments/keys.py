"""Read the providers' keys from the files the settings name (never logged, never repr'd)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from Crypto.PublicKey import RSA
from Crypto.PublicKey.RSA import RsaKey

from payments.domain.wechatpay import API_V3_KEY_BYTES, WechatKeys
from payments.settings import PaymentsSettings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/v1/webhooks/{provider}"


@dataclass(frozen=True)
class WechatCredentials:
    """What a merchant needs to talk to WeChat Pay."""

    mchid: str
    appid: str
    merchant_serial: str
    base_url: str
    notify_url: str
    public_key_id: str | None
    platform_certs_dir: Path | None
    merchant_key: RsaKey = field(repr=False)
    api_v3_key: bytes = field(repr=False)
    provider_keys: WechatKeys = field(repr=False)


@dataclass(frozen=True)
class AlipayCredentials:
    """What an app needs to talk to Alipay."""

    app_id: str
    seller_id: str
    gateway_url: str
    notify_url: str
    app_key: RsaKey = field(repr=False)
    alipay_key: RsaKey = field(repr=False)


def _rsa(path: Path) -> RsaKey:
    # A PEM private key, public key or X.509 certificate (its public key) all import.
    try:
        return RSA.import_key(path.read_bytes())
    except (ValueError, IndexError, TypeError) as error:
        raise ValueError(f"{path} is not an RSA key or certificate in PEM") from error


def platform_certificates(directory: Path) -> dict[str, RsaKey]:
    """Read every platform certificate in the directory, by serial (its file's name)."""
    # One PEM per certificate, named after its serial (<serial>.pem): rotation overlaps,
    # so every valid one is kept and chosen by the Wechatpay-Serial header.
    return {path.stem.upper(): _rsa(path) for path in sorted(directory.glob("*.pem"))}


def load_wechat(settings: PaymentsSettings) -> WechatCredentials | None:
    """Return WeChat Pay's credentials, or None when the channel is off."""
    if not settings.wechatpay_enabled():
        return None
    assert settings.wechatpay_apiv3_key_file
    assert settings.wechatpay_merchant_key_file
    api_v3_key = settings.wechatpay_apiv3_key_file.read_bytes().strip()
    if len(api_v3_key) != API_V3_KEY_BYTES:
        raise ValueError("PREPAID_WECHATPAY_APIV3_KEY_FILE must hold the 32-character API v3 key")
    public_key_id = settings.wechatpay_public_key_id or None
    public_key = (
        _rsa(settings.wechatpay_public_key_file) if settings.wechatpay_public_key_file else None
    )
    certificates = (
        platform_certificates(settings.wechatpay_platform_certs_dir)
        if settings.wechatpay_platform_certs_dir
        else {}
    )
    return WechatCredentials(
        mchid=settings.wechatpay_mchid,
        appid=settings.wechatpay_appid,
        merchant_serial=settings.wechatpay_merchant_serial,
        base_url=settings.wechatpay_base_url.rstrip("/"),
        notify_url=_notify_url(settings, "wechatpay"),
        public_key_id=public_key_id,
        platform_certs_dir=settings.wechatpay_platform_certs_dir,
        merchant_key=_rsa(settings.wechatpay_merchant_key_file),
        api_v3_key=api_v3_key,
        provider_keys=WechatKeys(
            public_key_id=public_key_id, public_key=public_key, certificates=certificates
        ),
    )


def load_alipay(settings: PaymentsSettings) -> AlipayCredentials | None:
    """Return Alipay's credentials, or None when the channel is off."""
    if not settings.alipay_enabled():
        return None
    assert settings.alipay_app_key_file
    assert settings.alipay_public_key_file
    return AlipayCredentials(
        app_id=settings.alipay_app_id,
        seller_id=settings.alipay_seller_id,
        gateway_url=settings.alipay_gateway_url,
        notify_url=_notify_url(settings, "alipay"),
        app_key=_rsa(settings.alipay_app_key_file),
        alipay_key=_rsa(settings.alipay_public_key_file),
    )


def _notify_url(settings: PaymentsSettings, provider: str) -> str:
    return settings.public_base_url.rstrip("/") + WEBHOOK_PATH.format(provider=provider)


def describe_channels(
    wechat: WechatCredentials | None, alipay: AlipayCredentials | None
) -> dict[str, str]:
    """Return, per provider, whether it is on (with its addresses) or off: for the start log."""
    return {
        "wechatpay": f"on ({wechat.base_url}, notify {wechat.notify_url})"
        if wechat
        else "off (no PREPAID_WECHATPAY_* settings)",
        "alipay": f"on ({alipay.gateway_url}, notify {alipay.notify_url})"
        if alipay
        else "off (no PREPAID_ALIPAY_* settings)",
    }
