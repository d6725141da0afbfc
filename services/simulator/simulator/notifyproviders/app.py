"""The HTTP fakes: Aliyun dysmsapi (``/aliyun/``), Tencent Cloud SMS (``/tencent/``), the
WeChat official-account API (``/wechat/cgi-bin/...``), and what they received
(``GET /received``, ``GET /refused``, ``POST /faults``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class NotifyKeys:
    """The credentials the fakes accept (and notifications is configured with)."""

    aliyun_access_key_id: str = "LTAIfakeAccessKey"
    aliyun_access_key_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    tencent_secret_id: str = "AKIDfakeSecretId"
    tencent_secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    tencent_sdk_app_id: str = "1400000000"
    wechat_app_id: str = "wxfakeappid0001"
    wechat_app_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    smtp_username: str = "prepaid"
    smtp_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def write_secret_files(self, directory: Path) -> dict[str, Path]:
        """Write each secret to a file of its own (mode 0600); return them by setting."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "aliyun_sms_access_key_secret_file": self.aliyun_access_key_secret,
            "tencent_sms_secret_key_file": self.tencent_secret_key,
            "wechat_mp_app_secret_file": self.wechat_app_secret,
            "smtp_password_file": self.smtp_password,
        }
        written: dict[str, Path] = {}
        for name, value in files.items():
            path = directory / name.removesuffix("_file")
            path.write_text(value + "\n")
            path.chmod(0o600)
            written[name] = path
        return written


def _aliyun_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def aliyun_expected_signature(secret: str, params: dict[str, str]) -> str:
    """Aliyun's RPC signature of a GET, as its documentation gives it."""
    canonical = "&".join(
        f"{_aliyun_encode(k)}={_aliyun_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    to_sign = f"GET&{_aliyun_encode('/')}&{_aliyun_encode(canonical)}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def tencent_expected_authorization(
    secret_id: str, secret_key: str, *, host: str, content_type: str, body: bytes, timestamp: int
) -> str:
    """The TC3-HMAC-SHA256 Authorization a request with these parts must carry."""
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = (
        f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n"
        + hashlib.sha256(body).hexdigest()
    )
    scope = f"{day}/sms/tc3_request"
    to_sign = (
        f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n" + hashlib.sha256(canonical.encode()).hexdigest()
    )

    def sign(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()

    key = sign(sign(sign(("TC3" + secret_key).encode(), day), "sms"), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
        f"Signature={signature}"
    )


class FakeNotifyProviders:
    """The fakes' state and their ASGI app."""

    def __init__(self, keys: NotifyKeys, *, token_lifetime: int = 7200) -> None:
        self.keys = keys
        self.received: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        # Provider -> how many next requests answer a retryable failure (throttling).
        self.faults: dict[str, int] = {}
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.app = self._build()

    def record(self, provider: str, **what: Any) -> None:
        self.received.append({"provider": provider, "at": datetime.now(UTC).isoformat(), **what})

    def refuse(self, provider: str, reason: str) -> None:
        self.refused.append(
            {"provider": provider, "at": datetime.now(UTC).isoformat(), "reason": reason}
        )

    def fault(self, provider: str) -> bool:
        left = self.faults.get(provider, 0)
        if left <= 0:
            return False
        self.faults[provider] = left - 1
        return True

    def _build(self) -> FastAPI:
        app = FastAPI(title="fake notification providers", openapi_url=None)

        @app.get("/received")
        async def received(provider: str | None = None) -> list[dict[str, Any]]:
            return [r for r in self.received if provider is None or r["provider"] == provider]

        @app.get("/refused")
        async def refused() -> list[dict[str, Any]]:
            return self.refused

        @app.post("/faults")
        async def faults(request: Request) -> dict[str, int]:
            body = await request.json()
            self.faults[str(body["provider"])] = int(body["count"])
            return self.faults

        @app.get("/aliyun/")
        async def aliyun(request: Request) -> JSONResponse:
            return self._aliyun(dict(request.query_params))

        @app.post("/tencent/")
        async def tencent(request: Request) -> JSONResponse:
            return self._tencent(dict(request.headers), await request.body())

        @app.get("/wechat/cgi-bin/token")
        async def wechat_token(request: Request) -> JSONResponse:
            return self._wechat_token(dict(request.query_params))

        @app.post("/wechat/cgi-bin/message/template/send")
        async def wechat_send(request: Request) -> JSONResponse:
            return self._wechat_send(
                request.query_params.get("access_token", ""), await request.body()
            )

        return app

    # --- Aliyun ------------------------------------------------------------------------
    def _aliyun(self, params: dict[str, str]) -> JSONResponse:
        request_id = str(uuid.uuid4()).upper()
        if params.get("AccessKeyId") != self.keys.aliyun_access_key_id:
            self.refuse("aliyun", "unknown AccessKeyId")
            return JSONResponse(
                {
                    "Code": "InvalidAccessKeyId.NotFound",
                    "Message": "Specified access key is not found.",
                    "RequestId": request_id,
                },
                status_code=404,
            )
        expected = aliyun_expected_signature(self.keys.aliyun_access_key_secret, params)
        if not hmac.compare_digest(expected, params.get("Signature", "")):
            self.refuse("aliyun", "signature does not match")
            return JSONResponse(
                {
                    "Code": "SignatureDoesNotMatch",
                    "Message": "Specified signature is not matched with our calculation.",
                    "RequestId": request_id,
                },
                status_code=400,
            )
        for name, value in (
            ("Action", "SendSms"),
            ("Version", "2017-05-25"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
        ):
            if params.get(name) != value:
                self.refuse("aliyun", f"{name} is not {value}")
                return JSONResponse(
                    {"Code": "InvalidParameter", "Message": f"{name}", "RequestId": request_id},
                    status_code=400,
                )
        if self.fault("aliyun"):
            return JSONResponse(
                {
                    "Code": "isv.BUSINESS_LIMIT_CONTROL",
                    "Message": "触发流控",
                    "RequestId": request_id,
                }
            )
        biz_id = f"{int(time.time())}^{uuid.uuid4().int % 10**10}"
        self.record(
            "aliyun",
            phone=params.get("PhoneNumbers"),
            sign_name=params.get("SignName"),
            template=params.get("TemplateCode"),
            params=json.loads(params.get("TemplateParam") or "{}"),
            biz_id=biz_id,
        )
        return JSONResponse(
            {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}
        )

    # --- Tencent Cloud -----------------------------------------------------------------
    def _tencent(self, headers: dict[str, str], body: bytes) -> JSONResponse:
        request_id = str(uuid.uuid4())

        def error(code: str, message: str) -> JSONResponse:
            return JSONResponse(
                {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
            )

        if headers.get("x-tc-action") != "SendSms" or headers.get("x-tc-version") != "2021-01-11":
            self.refuse("tencent", "not SendSms 2021-01-11")
            return error("InvalidAction", "action or version not supported")
        try:
            timestamp = int(headers.get("x-tc-timestamp", ""))
        except ValueError:
            self.refuse("tencent", "no timestamp")
            return error("MissingParameter", "X-TC-Timestamp")
        if abs(time.time() - timestamp) > 300:
            self.refuse("tencent", "timestamp too far")
            return error("AuthFailure.SignatureExpire", "signature expired")
        expected = tencent_expected_authorization(
            self.keys.tencent_secret_id,
            self.keys.tencent_secret_key,
            host=headers.get("host", ""),
            content_type=headers.get("content-type", ""),
            body=body,
            timestamp=timestamp,
        )
        if not hmac.compare_digest(expected, headers.get("authorization", "")):
            self.refuse("tencent", "signature does not match")
            return error(
                "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
            )
        if self.fault("tencent"):
            return error("RequestLimitExceeded", "request limit exceeded")
        request = json.loads(body)
        if request.get("SmsSdkAppId") != self.keys.tencent_sdk_app_id:
            return error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId not exist")
        serial = f"{uuid.uuid4().int % 10**10}:{int(time.time())}"
        statuses = []
        for phone in request.get("PhoneNumberSet", []):
            self.record(
                "tencent",
                phone=phone,
                sign_name=request.get("SignName"),
                template=request.get("TemplateId"),
                params=request.get("TemplateParamSet", []),
                serial=serial,
                region=headers.get("x-tc-region"),
            )
            statuses.append(
                {
                    "SerialNo": serial,
                    "PhoneNumber": phone,
                    "Fee": 1,
                    "SessionContext": "",
                    "Code": "Ok",
                    "Message": "send success",
                    "IsoCode": "CN",
                }
            )
        return JSONResponse({"Response": {"SendStatusSet": statuses, "RequestId": request_id}})

    # --- WeChat official account -------------------------------------------------------
    def _wechat_token(self, params: dict[str, str]) -> JSONResponse:
        if params.get("grant_type") != "client_credential":
            return JSONResponse({"errcode": 40002, "errmsg": "invalid grant_type"})
        if params.get("appid") != self.keys.wechat_app_id:
            self.refuse("wechat", "invalid appid")
            return JSONResponse({"errcode": 40013, "errmsg": "invalid appid"})
        if not hmac.compare_digest(params.get("secret", ""), self.keys.wechat_app_secret):
            self.refuse("wechat", "invalid appsecret")
            return JSONResponse({"errcode": 40125, "errmsg": "invalid appsecret"})
        token = secrets.token_urlsafe(48)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        self.tokens_issued += 1
        return JSONResponse({"access_token": token, "expires_in": self.token_lifetime})

    def expire_tokens(self) -> None:
        """Make every token issued so far expired (as WeChat does after expires_in)."""
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    def _wechat_send(self, token: str, body: bytes) -> JSONResponse:
        until = self.tokens.get(token)
        if until is None:
            self.refuse("wechat", "invalid access_token")
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        if time.monotonic() >= until:
            return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
        if self.fault("wechat"):
            return JSONResponse({"errcode": -1, "errmsg": "system error"})
        message = json.loads(body)
        if not message.get("touser") or not message.get("template_id"):
            return JSONResponse({"errcode": 47001, "errmsg": "data format error"})
        msgid = uuid.uuid4().int % 10**12
        self.record(
            "wechat",
            openid=message["touser"],
            template=message["template_id"],
            data={k: v.get("value") for k, v in message.get("data", {}).items()},
            msgid=msgid,
        )
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": msgid})
