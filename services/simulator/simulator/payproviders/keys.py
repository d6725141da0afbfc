"""The fake providers' keys, and the merchant's, generated at start; files for the merchant."""

from __future__ import annotations

import functools
import json
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

    @classmethod
    def load_or_generate(cls, directory: Path) -> FakeKeys:
        """Read the fakes' keys kept in ``directory``, or make them (once per process)."""
        path = directory / "fake-providers.json"
        if path.exists():
            kept = json.loads(path.read_text())
            return cls(
                wechat_platform=RSA.import_key(kept["wechat_platform"]),
                wechat_platform_serial=kept["wechat_platform_serial"],
                wechat_public_key=RSA.import_key(kept["wechat_public_key"]),
                wechat_public_key_id=kept["wechat_public_key_id"],
                merchant=RSA.import_key(kept["merchant"]),
                api_v3_key=kept["api_v3_key"].encode(),
                alipay=RSA.import_key(kept["alipay"]),
                alipay_app=RSA.import_key(kept["alipay_app"]),
            )
        keys = _generated_once()
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "wechat_platform": keys.wechat_platform.export_key().decode(),
                    "wechat_platform_serial": keys.wechat_platform_serial,
                    "wechat_public_key": keys.wechat_public_key.export_key().decode(),
                    "wechat_public_key_id": keys.wechat_public_key_id,
                    "merchant": keys.merchant.export_key().decode(),
                    "api_v3_key": keys.api_v3_key.decode(),
                    "alipay": keys.alipay.export_key().decode(),
                    "alipay_app": keys.alipay_app.export_key().decode(),
                }
            )
        )
        path.chmod(0o600)
        return keys

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


@functools.cache
def _generated_once() -> FakeKeys:
    # RSA generation takes a second or two: a process starting many demos makes keys once.
    return FakeKeys.generate()
