"""The providers configured here, by name; a channel whose provider is off says so."""

from __future__ import annotations

from dataclasses import dataclass

from prepaid_common.contracts.api.payments import ChannelState
from prepaid_common.errors import Invalid

from payments.domain.orders import Provider
from payments.keys import AlipayCredentials, WechatCredentials
from payments.providers import ProviderClient
from payments.providers.alipay import AlipayClient
from payments.providers.wechatpay import WechatPayClient


@dataclass(frozen=True)
class ProviderRegistry:
    """The clients and credentials of the providers that are on (None: off)."""

    wechat: WechatPayClient | None = None
    alipay: AlipayClient | None = None

    @property
    def wechat_credentials(self) -> WechatCredentials | None:
        """WeChat Pay's credentials, if it is on."""
        return self.wechat.credentials if self.wechat else None

    @property
    def alipay_credentials(self) -> AlipayCredentials | None:
        """Alipay's credentials, if it is on."""
        return self.alipay.credentials if self.alipay else None

    def client(self, provider: Provider) -> ProviderClient:
        """Return a provider's client; Invalid when it is not configured."""
        client: ProviderClient | None = (
            self.wechat if provider is Provider.WECHATPAY else self.alipay
        )
        if client is None:
            raise Invalid(f"{provider.value} is off: it is not configured on this site")
        return client

    def states(self) -> list[ChannelState]:
        """Return whether each provider is on, for the API."""
        return [
            ChannelState(
                provider="wechatpay",
                enabled=self.wechat is not None,
                detail="on" if self.wechat else "off: no PREPAID_WECHATPAY_* settings",
            ),
            ChannelState(
                provider="alipay",
                enabled=self.alipay is not None,
                detail="on" if self.alipay else "off: no PREPAID_ALIPAY_* settings",
            ),
        ]
