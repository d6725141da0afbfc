"""Alipay's open platform gateway over httpx: RSA2-signed requests, verified answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from prepaid_common.errors import BadGateway

from payments.domain import alipay
from payments.domain.bills import BillLine, read_alipay_bill_archive
from payments.domain.money import parse_yuan, yuan_text
from payments.domain.orders import Channel, PaidReport, Provider
from payments.keys import AlipayCredentials
from payments.providers import NewOrder, QueryAnswer, RefundAnswer

# Alipay writes its times in Beijing time.
BEIJING = ZoneInfo("Asia/Shanghai")


def beijing_text(moment: datetime) -> str:
    """Return a moment as Alipay writes it (``yyyy-MM-dd HH:mm:ss``, Beijing time)."""
    return moment.astimezone(BEIJING).strftime(alipay.TIMESTAMP_FORMAT)


def parse_beijing(text: str) -> datetime:
    """Read an Alipay time (Beijing time) as an aware UTC moment."""
    return datetime.strptime(text, alipay.TIMESTAMP_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)


def paid_report(fields: dict[str, Any]) -> PaidReport:
    """Return what a verified TRADE_SUCCESS/TRADE_FINISHED message says was paid."""
    try:
        paid_text = fields.get("gmt_payment") or fields.get("send_pay_date")
        return PaidReport(
            provider=Provider.ALIPAY,
            out_trade_no=str(fields["out_trade_no"]),
            transaction_id=str(fields["trade_no"]),
            amount=parse_yuan(str(fields["total_amount"])),
            paid_at=parse_beijing(str(paid_text)) if paid_text else datetime.now(UTC),
        )
    except (KeyError, ValueError) as error:
        raise alipay.AlipayRefused(f"trade lacks {error}") from None


class AlipayClient:
    """The app's side of the Alipay gateway."""

    def __init__(
        self,
        credentials: AlipayCredentials,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.credentials = credentials
        self.http = http
        self.clock = clock

    def signed_params(self, method: str, biz: dict[str, Any], *, notify: bool) -> dict[str, str]:
        """Return the gateway parameters of a call, signed with the app key."""
        params = {
            "app_id": self.credentials.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": beijing_text(self.clock()),
            "version": "1.0",
            "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False),
        }
        if notify:
            params["notify_url"] = self.credentials.notify_url
        params["sign"] = alipay.sign_request(params, self.credentials.app_key)
        return params

    async def _call(self, method: str, biz: dict[str, Any], *, notify: bool) -> dict[str, Any]:
        params = self.signed_params(method, biz, notify=notify)
        try:
            response = await self.http.post(
                self.credentials.gateway_url,
                content=urlencode(params).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
            )
        except httpx.HTTPError as error:
            raise BadGateway(f"Alipay unreachable: {error!r}") from error
        if response.status_code != 200:
            raise BadGateway(f"Alipay answered {response.status_code}: {response.text[:200]}")
        try:
            return alipay.verify_response(response.text, method, self.credentials.alipay_key)
        except alipay.AlipayRefused as refused:
            raise BadGateway(f"Alipay answer refused: {refused.reason}") from None

    async def start(self, order: NewOrder) -> dict[str, object]:
        """Precreate a QR order, or sign the wap page URL the payer opens."""
        biz = {
            "out_trade_no": order.out_trade_no,
            "total_amount": yuan_text(order.amount),
            "subject": order.description,
            "time_expire": beijing_text(order.expires_at),
        }
        if order.channel is Channel.ALIPAY_WAP:
            # A signed redirect, not a server call: the payer's browser opens it.
            biz["product_code"] = "QUICK_WAP_WAY"
            params = self.signed_params("alipay.trade.wap.pay", biz, notify=True)
            return {"pay_url": f"{self.credentials.gateway_url}?{urlencode(params)}"}
        answer = await self._call("alipay.trade.precreate", biz, notify=True)
        if answer.get("code") != alipay.SUCCESS_CODE:
            raise BadGateway(f"Alipay refused the order: {answer.get('sub_code')}")
        return {"qr_code": str(answer["qr_code"])}

    async def query(self, out_trade_no: str) -> QueryAnswer:
        """Ask Alipay for the trade's status."""
        answer = await self._call(
            "alipay.trade.query", {"out_trade_no": out_trade_no}, notify=False
        )
        if answer.get("code") != alipay.SUCCESS_CODE:
            # ACQ.TRADE_NOT_EXIST: the payer has not even scanned the code yet.
            return QueryAnswer(paid=None, state=str(answer.get("sub_code", "")))
        state = str(answer.get("trade_status", ""))
        if state in alipay.PAID_STATES:
            try:
                return QueryAnswer(paid=paid_report(answer), state=state)
            except alipay.AlipayRefused as refused:
                raise BadGateway(f"Alipay query: {refused.reason}") from None
        return QueryAnswer(paid=None, state=state, closed=state == "TRADE_CLOSED")

    async def close(self, out_trade_no: str) -> None:
        """Nothing to call: the order's time_expire closes it at Alipay by itself."""

    async def refund(
        self, *, out_trade_no: str, out_refund_no: str, amount: Decimal, total: Decimal, reason: str
    ) -> RefundAnswer:
        """Refund at once (Alipay answers the outcome; fund_change Y means money moved)."""
        del total
        answer = await self._call(
            "alipay.trade.refund",
            {
                "out_trade_no": out_trade_no,
                "out_request_no": out_refund_no,
                "refund_amount": yuan_text(amount),
                "refund_reason": reason,
            },
            notify=False,
        )
        if answer.get("code") != alipay.SUCCESS_CODE:
            return RefundAnswer(succeeded=False, state=str(answer.get("sub_code", "")))
        return RefundAnswer(succeeded=True, state="SUCCESS")

    async def refund_status(self, out_refund_no: str) -> RefundAnswer | None:
        """Alipay refunds answer at once: an unsettled one was never received (send it)."""
        del out_refund_no
        return None

    async def trade_bill(self, day: date) -> list[BillLine]:
        """Fetch a day's trade bill: its address from the gateway, then the zipped CSVs."""
        answer = await self._call(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": day.isoformat()},
            notify=False,
        )
        if answer.get("code") != alipay.SUCCESS_CODE:
            if answer.get("sub_code") == "isp.bill_not_exist":
                return []
            raise BadGateway(f"Alipay bill: {answer.get('sub_code')}")
        try:
            response = await self.http.get(str(answer["bill_download_url"]))
            response.raise_for_status()
            return read_alipay_bill_archive(response.content)
        except (httpx.HTTPError, ValueError) as error:
            raise BadGateway(f"Alipay bill download failed: {error!r}") from error
