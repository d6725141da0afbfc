"""WeChat Pay API v3 over httpx: signed requests, verified answers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
from prepaid_common.errors import BadGateway

from payments.domain import wechatpay
from payments.domain.bills import BillLine, parse_wechat_trade_bill
from payments.domain.money import fen_to_yuan, yuan_to_fen
from payments.domain.orders import Channel, PaidReport, Provider
from payments.keys import WechatCredentials, platform_certificates
from payments.providers import NewOrder, QueryAnswer, RefundAnswer

log = logging.getLogger(__name__)

# An unknown serial makes us read the certificates again, at most this often (a forger
# sending unknown serials must not make us read the directory on every request).
RELOAD_PAUSE_SECONDS = 10.0


class WechatPayAnswered(BadGateway):
    """WeChat Pay answered with an error status (its code and message in the text)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"WeChat Pay answered {status}: {text}")
        self.status = status


_ENDPOINTS = {
    Channel.WECHAT_NATIVE: "/v3/pay/transactions/native",
    Channel.WECHAT_JSAPI: "/v3/pay/transactions/jsapi",
    Channel.WECHAT_H5: "/v3/pay/transactions/h5",
}


def paid_report(transaction: dict[str, Any]) -> PaidReport:
    """Return what a decrypted (or queried) SUCCESS transaction says was paid."""
    try:
        return PaidReport(
            provider=Provider.WECHATPAY,
            out_trade_no=str(transaction["out_trade_no"]),
            transaction_id=str(transaction["transaction_id"]),
            amount=fen_to_yuan(int(transaction["amount"]["total"])),
            paid_at=datetime.fromisoformat(str(transaction["success_time"])).astimezone(UTC),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise wechatpay.WechatRefused(f"transaction lacks {error}") from None


class WechatPayClient:
    """The merchant's side of WeChat Pay v3."""

    def __init__(
        self,
        credentials: WechatCredentials,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self.http = http
        self.clock = clock
        self._reloaded_at = float("-inf")

    def verify(self, *, headers: dict[str, str], body: bytes) -> None:
        """Refuse a message not signed by WeChat Pay; an unknown serial reloads certificates.

        Certificates rotate: the new one can sign before a timer would have fetched it.
        """
        try:
            wechatpay.verify_signed(
                headers=headers, body=body, keys=self.credentials.provider_keys, now=self.clock()
            )
        except wechatpay.WechatRefused as refused:
            if not refused.reason.startswith("unknown") or not self.reload_certificates():
                raise
            wechatpay.verify_signed(
                headers=headers, body=body, keys=self.credentials.provider_keys, now=self.clock()
            )

    def reload_certificates(self) -> bool:
        """Read the platform certificates again; whether any changed."""
        directory = self.credentials.platform_certs_dir
        now = time.monotonic()
        if directory is None or now - self._reloaded_at < RELOAD_PAUSE_SECONDS:
            return False
        self._reloaded_at = now
        try:
            certificates = platform_certificates(directory)
        except (OSError, ValueError) as error:
            log.warning("WeChat Pay platform certificates could not be read again: %s", error)
            return False
        keys = self.credentials.provider_keys
        if set(certificates) == set(keys.certificates):
            return False
        log.info("WeChat Pay platform certificates now: %s", ", ".join(sorted(certificates)))
        self.credentials = dataclasses.replace(
            self.credentials,
            provider_keys=dataclasses.replace(keys, certificates=certificates),
        )
        return True

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        response = await self._send(method, path, body)
        try:
            self.verify(
                headers={k.lower(): v for k, v in response.headers.items()}, body=response.content
            )
        except wechatpay.WechatRefused as refused:
            raise BadGateway(f"WeChat Pay answer refused: {refused.reason}") from None
        answer = json.loads(response.content) if response.content else {}
        if not isinstance(answer, dict):
            raise BadGateway("WeChat Pay answered something other than an object")
        return response.status_code, answer

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        creds = self.credentials
        # Serialised once: the bytes signed are the bytes sent.
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {
            "Authorization": wechatpay.authorization(
                mchid=creds.mchid,
                serial_no=creds.merchant_serial,
                key=creds.merchant_key,
                method=method,
                path_with_query=path,
                body=content,
                timestamp=int(self.clock()),
                nonce=secrets.token_hex(16),
            ),
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        if creds.public_key_id:
            headers["Wechatpay-Serial"] = creds.public_key_id
        try:
            response = await self.http.request(
                method, creds.base_url + path, content=content or None, headers=headers
            )
        except httpx.HTTPError as error:
            raise BadGateway(f"WeChat Pay unreachable: {error!r}") from error
        if response.status_code >= 300:
            raise WechatPayAnswered(response.status_code, response.text[:200])
        return response

    async def start(self, order: NewOrder) -> dict[str, object]:
        """Create the order; return code_url, h5_url or the jsapi page's signed parameters."""
        creds = self.credentials
        body: dict[str, Any] = {
            "appid": creds.appid,
            "mchid": creds.mchid,
            "description": order.description,
            "out_trade_no": order.out_trade_no,
            "time_expire": order.expires_at.astimezone(UTC).isoformat(timespec="seconds"),
            "notify_url": creds.notify_url,
            "amount": {"total": yuan_to_fen(order.amount), "currency": "CNY"},
        }
        if order.channel is Channel.WECHAT_JSAPI:
            body["payer"] = {"openid": order.openid}
        if order.channel is Channel.WECHAT_H5:
            body["scene_info"] = {
                "payer_client_ip": order.payer_ip or "127.0.0.1",
                "h5_info": {"type": "Wap"},
            }
        _, answer = await self._call("POST", _ENDPOINTS[order.channel], body)
        if order.channel is Channel.WECHAT_NATIVE:
            return {"code_url": str(answer["code_url"])}
        if order.channel is Channel.WECHAT_H5:
            return {"h5_url": str(answer["h5_url"])}
        return {
            "jsapi": wechatpay.jsapi_pay_parameters(
                appid=creds.appid,
                prepay_id=str(answer["prepay_id"]),
                key=creds.merchant_key,
                timestamp=int(self.clock()),
                nonce=secrets.token_hex(16),
            )
        }

    async def query(self, out_trade_no: str) -> QueryAnswer:
        """Ask WeChat Pay for the order's trade_state."""
        path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={self.credentials.mchid}"
        _, answer = await self._call("GET", path)
        state = str(answer.get("trade_state", ""))
        if state in {"SUCCESS", "REFUND"}:
            try:
                return QueryAnswer(paid=paid_report(answer), state=state)
            except wechatpay.WechatRefused as refused:
                raise BadGateway(f"WeChat Pay query: {refused.reason}") from None
        return QueryAnswer(paid=None, state=state, closed=state in {"CLOSED", "REVOKED"})

    async def close(self, out_trade_no: str) -> None:
        """Close the order at WeChat Pay."""
        path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close"
        await self._call("POST", path, {"mchid": self.credentials.mchid})

    async def refund(
        self, *, out_trade_no: str, out_refund_no: str, amount: Decimal, total: Decimal, reason: str
    ) -> RefundAnswer:
        """Ask for a domestic refund; its notification says when the money went back."""
        body = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "reason": reason,
            "notify_url": self.credentials.notify_url,
            "amount": {
                "refund": yuan_to_fen(amount),
                "total": yuan_to_fen(total),
                "currency": "CNY",
            },
        }
        _, answer = await self._call("POST", "/v3/refund/domestic/refunds", body)
        state = str(answer.get("status", ""))
        return RefundAnswer(succeeded=state == "SUCCESS", state=state)

    async def refund_status(self, out_refund_no: str) -> RefundAnswer | None:
        """Query a domestic refund (SUCCESS, PROCESSING, ABNORMAL or CLOSED)."""
        try:
            _, answer = await self._call("GET", f"/v3/refund/domestic/refunds/{out_refund_no}")
        except WechatPayAnswered as error:
            if error.status == 404:  # RESOURCE_NOT_EXISTS: never received
                return None
            raise
        state = str(answer.get("status", ""))
        return RefundAnswer(succeeded=state == "SUCCESS", state=state)

    async def trade_bill(self, day: date) -> list[BillLine]:
        """Fetch a day's trade bill: a signed request for its address, then the file."""
        _, answer = await self._call("GET", f"/v3/bill/tradebill?bill_date={day.isoformat()}")
        url = urlsplit(str(answer["download_url"]))
        # The file itself is not signed: its SHA1, given in the signed answer, vouches for it.
        response = await self._send("GET", url.path + (f"?{url.query}" if url.query else ""))
        if hashlib.sha1(response.content).hexdigest() != str(answer.get("hash_value", "")).lower():
            raise BadGateway("WeChat Pay bill does not match its hash")
        return parse_wechat_trade_bill(response.content.decode("utf-8-sig"))
