"""The fake providers' keys, and the merchant's, generated at start; files for the merchant."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from Crypto.PublicKey import RSA
from Crypto.PublicKey.RSA import RsaKey

MCHID = "1900000109"
WECHAT_APPID = "wxd930ea5d5a258f4f"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD8C3E5B6C"
ALIPAY_APP_ID = "2021000000000001"
ALIPAY_SELLER_ID = "2088000000000001"


@dataclass(frozen=True)
class FakeKeys:
    """Both sides' keys: what the fakes sign with, and what the merchant must be given."""

    wechat_platform: RsaKey = field(repr=False)
    wechat_platform_serial: str
    wechat_public_key: RsaKey = field(repr=False)
    wechat_public_key_id: str
    merchant: RsaKey = field(repr=False)
    api_v3_key: bytes = field(repr=False)
    alipay: RsaKey = field(repr=False)
    alipay_app: RsaKey = field(repr=False)

    @classmethod
    def generate(cls) -> FakeKeys:
        """Make fresh keys (a few hundred milliseconds of RSA)."""
        return cls(
            wechat_platform=RSA.generate(2048),
            wechat_platform_serial=secrets.token_hex(20).upper(),
            wechat_public_key=RSA.generate(2048),
            wechat_public_key_id="PUB_KEY_ID_" + secrets.token_hex(14),
            merchant=RSA.generate(2048),
            # 32 printable characters, like the key a merchant sets in WeChat Pay's console.
            api_v3_key=secrets.token_hex(16).encode(),
            alipay=RSA.generate(2048),
            alipay_app=RSA.generate(2048),
        )

    def write_merchant_files(self, directory: Path) -> dict[str, str]:
        """Write the merchant's side in ``directory``; return the PREPAID_* settings naming it."""
        directory.mkdir(parents=True, exist_ok=True)
        certs = directory / "wechatpay-platform-certs"
        certs.mkdir(exist_ok=True)
        files = {
            "wechatpay-apiv3.key": self.api_v3_key,
            "wechatpay-merchant.pem": self.merchant.export_key(),
            "wechatpay-public-key.pem": self.wechat_public_key.public_key().export_key(),
            f"wechatpay-platform-certs/{self.wechat_platform_serial}.pem": (
                self.wechat_platform.public_key().export_key()
            ),
            "alipay-app.pem": self.alipay_app.export_key(),
            "alipay-public-key.pem": self.alipay.public_key().export_key(),
        }
        for name, content in files.items():
            path = directory / name
            path.write_bytes(content)
            path.chmod(0o600)
        return {
            "wechatpay_mchid": MCHID,
            "wechatpay_appid": WECHAT_APPID,
            "wechatpay_apiv3_key_file": str(directory / "wechatpay-apiv3.key"),
            "wechatpay_merchant_key_file": str(directory / "wechatpay-merchant.pem"),
            "wechatpay_merchant_serial": MERCHANT_SERIAL,
            "wechatpay_public_key_file": str(directory / "wechatpay-public-key.pem"),
            "wechatpay_public_key_id": self.wechat_public_key_id,
            "wechatpay_platform_certs_dir": str(certs),
            "alipay_app_id": ALIPAY_APP_ID,
            "alipay_seller_id": ALIPAY_SELLER_ID,
            "alipay_app_key_file": str(directory / "alipay-app.pem"),
            "alipay_public_key_file": str(directory / "alipay-public-key.pem"),
        }
