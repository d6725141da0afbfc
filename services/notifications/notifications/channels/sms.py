"""SMS through Aliyun (dysmsapi SendSms, RPC signature) or Tencent Cloud (SendSms
2021-01-11, TC3-HMAC-SHA256)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from notifications.channels import ChannelFailure
from notifications.domain.kinds import Channel
from notifications.domain.signing import aliyun_signature, tencent_authorization
from notifications.domain.texts import Rendered

# Codes after which the same request may succeed later (throttling, the provider's own fault).
_ALIYUN_RETRYABLE = ("isv.BUSINESS_LIMIT_CONTROL", "Throttling", "ServiceUnavailable")
_TENCENT_RETRYABLE = ("RequestLimitExceeded", "InternalError", "FailedOperation.ServiceBusy")


def _transport_failure(error: httpx.HTTPError) -> ChannelFailure:
    return ChannelFailure(f"unreachable: {type(error).__name__}", retryable=True)


@dataclass
class AliyunSms:
    access_key_id: str
    sign_name: str
    template_code: str
    templates: dict[str, str]
    url: str
    http: httpx.AsyncClient
    secret: str = field(repr=False)
    channel: Channel = "sms"
    provider: str = "aliyun"

    async def send(self, address: str, rendered: Rendered) -> str:
        params = {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
            # Mainland numbers go without the country code; others keep it.
            "PhoneNumbers": address.removeprefix("+86"),
            "SignName": self.sign_name,
            "TemplateCode": self.templates.get(rendered.kind.value, self.template_code),
            "TemplateParam": json.dumps(dict(rendered.params), ensure_ascii=False),
        }
        params["Signature"] = aliyun_signature(self.secret, "GET", params)
        try:
            answer = await self.http.get(self.url.rstrip("/") + "/", params=params)
        except httpx.HTTPError as error:
            raise _transport_failure(error) from error
        try:
            body = answer.json()
        except ValueError:
            body = {}
        code = str(body.get("Code", ""))
        said = f"HTTP {answer.status_code} Code={code} Message={body.get('Message', '')} " + (
            f"RequestId={body.get('RequestId', '')}"
        )
        if answer.status_code == 200 and code == "OK":
            return f"BizId={body.get('BizId', '')} RequestId={body.get('RequestId', '')}"
        retryable = answer.status_code >= 500 or code.startswith(_ALIYUN_RETRYABLE)
        raise ChannelFailure(said, retryable=retryable)

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class TencentSms:
    secret_id: str
    sdk_app_id: str
    sign_name: str
    template_id: str
    templates: dict[str, str]
    region: str
    url: str
    http: httpx.AsyncClient
    secret_key: str = field(repr=False)
    channel: Channel = "sms"
    provider: str = "tencent"

    async def send(self, address: str, rendered: Rendered) -> str:
        phone = address if address.startswith("+") else f"+86{address}"
        payload = json.dumps(
            {
                "PhoneNumberSet": [phone],
                "SmsSdkAppId": self.sdk_app_id,
                "SignName": self.sign_name,
                "TemplateId": self.templates.get(rendered.kind.value, self.template_id),
                "TemplateParamSet": [value for _, value in rendered.params],
            },
            ensure_ascii=False,
        ).encode()
        timestamp = int(time.time())
        host = urlsplit(self.url).netloc
        content_type = "application/json; charset=utf-8"
        headers = {
            "Authorization": tencent_authorization(
                secret_id=self.secret_id,
                secret_key=self.secret_key,
                service="sms",
                host=host,
                payload=payload,
                timestamp=timestamp,
                content_type=content_type,
            ),
            "Content-Type": content_type,
            "Host": host,
            "X-TC-Action": "SendSms",
            "X-TC-Version": "2021-01-11",
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
        }
        try:
            answer = await self.http.post(
                self.url.rstrip("/") + "/", content=payload, headers=headers
            )
        except httpx.HTTPError as error:
            raise _transport_failure(error) from error
        try:
            response = answer.json().get("Response", {})
        except ValueError:
            response = {}
        request_id = response.get("RequestId", "")
        refusal = response.get("Error") or {}
        if refusal or answer.status_code != 200:
            code = str(refusal.get("Code", ""))
            raise ChannelFailure(
                f"HTTP {answer.status_code} Code={code} "
                f"Message={refusal.get('Message', '')} RequestId={request_id}",
                retryable=answer.status_code >= 500 or code.startswith(_TENCENT_RETRYABLE),
            )
        statuses = response.get("SendStatusSet") or [{}]
        status = statuses[0]
        code = str(status.get("Code", ""))
        if code != "Ok":
            raise ChannelFailure(
                f"Code={code} Message={status.get('Message', '')} RequestId={request_id}",
                retryable=code.startswith(_TENCENT_RETRYABLE),
            )
        return f"SerialNo={status.get('SerialNo', '')} RequestId={request_id}"

    async def aclose(self) -> None:
        await self.http.aclose()
