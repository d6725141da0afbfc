"""WeChat official-account template messages: an access token from cgi-bin/token, kept
until shortly before it expires (the token endpoint is rate-limited), then
cgi-bin/message/template/send."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from notifications.channels import ChannelFailure
from notifications.domain.kinds import Channel
from notifications.domain.texts import Rendered

# The token is no longer good: fetch a new one and send again, once.
_TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# System busy, or the API's own rate limit: the same message may go later.
_RETRYABLE = frozenset({-1, 45009, 45011})
# A token is renewed this long before WeChat says it ends.
_TOKEN_MARGIN_SECONDS = 300


@dataclass
class WechatTemplates:
    app_id: str
    template_id: str
    templates: dict[str, str]
    url: str
    http: httpx.AsyncClient
    app_secret: str = field(repr=False)
    channel: Channel = "wechat"
    provider: str = "wechat_mp"
    _token: str | None = field(default=None, repr=False)
    _token_until: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    tokens_fetched: int = 0

    async def _access_token(self, *, renew: bool = False) -> str:
        async with self._lock:
            if not renew and self._token and time.monotonic() < self._token_until:
                return self._token
            try:
                answer = await self.http.get(
                    self.url.rstrip("/") + "/cgi-bin/token",
                    params={
                        "grant_type": "client_credential",
                        "appid": self.app_id,
                        "secret": self.app_secret,
                    },
                )
                body = answer.json()
            except (httpx.HTTPError, ValueError) as error:
                raise ChannelFailure(
                    f"token unreachable: {type(error).__name__}", retryable=True
                ) from error
            if "access_token" not in body:
                raise ChannelFailure(
                    f"token refused: errcode={body.get('errcode')} errmsg={body.get('errmsg')}",
                    retryable=body.get("errcode") in _RETRYABLE,
                )
            self.tokens_fetched += 1
            self._token = str(body["access_token"])
            lifetime = int(body.get("expires_in", 7200))
            self._token_until = time.monotonic() + max(lifetime - _TOKEN_MARGIN_SECONDS, 1)
            return self._token

    async def send(self, address: str, rendered: Rendered) -> str:
        data = {"first": {"value": rendered.title}}
        for number, (_, value) in enumerate(rendered.params, start=1):
            data[f"keyword{number}"] = {"value": value}
        data["remark"] = {"value": rendered.text}
        message = {
            "touser": address,
            "template_id": self.templates.get(rendered.kind.value, self.template_id),
            "data": data,
        }
        for attempt in (1, 2):
            token = await self._access_token(renew=attempt == 2)
            try:
                answer = await self.http.post(
                    self.url.rstrip("/") + "/cgi-bin/message/template/send",
                    params={"access_token": token},
                    json=message,
                )
                body = answer.json()
            except (httpx.HTTPError, ValueError) as error:
                raise ChannelFailure(
                    f"unreachable: {type(error).__name__}", retryable=True
                ) from error
            code = body.get("errcode", 0)
            if code == 0:
                return f"msgid={body.get('msgid')}"
            if code in _TOKEN_ERRORS and attempt == 1:
                continue
            raise ChannelFailure(
                f"errcode={code} errmsg={body.get('errmsg')}", retryable=code in _RETRYABLE
            )
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.http.aclose()
