"""The fake providers' HTTP app: WeChat Pay v3 under ``/v3``, Alipay at ``/gateway.do``, and
``/pay/{provider}/{out_trade_no}``, the page a payer "opens" to pay, which then notifies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import re
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.PublicKey.RSA import RsaKey
from Crypto.Signature import pkcs1_15
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from simulator.payproviders.keys import (
    ALIPAY_APP_ID,
    ALIPAY_SELLER_ID,
    MCHID,
    MERCHANT_SERIAL,
    WECHAT_APPID,
    FakeKeys,
)

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8))
# How long the fake waits before notifying again when the merchant did not say received.
RETRY_PAUSES = (0.5, 1.0, 2.0, 5.0)
_AUTH = re.compile(r'(\w+)="([^"]*)"')


def _sign(key: RsaKey, message: bytes) -> str:
    return base64.b64encode(pkcs1_15.new(key).sign(SHA256.new(message))).decode()


def _verifies(key: RsaKey, message: bytes, signature: str) -> bool:
    try:
        pkcs1_15.new(key).verify(SHA256.new(message), base64.b64decode(signature))
    except (ValueError, TypeError):
        return False
    return True


def _alipay_content(params: dict[str, str], *drop: str) -> bytes:
    keys = sorted(k for k in params if k not in drop and params[k] != "")
    return "&".join(f"{k}={params[k]}" for k in keys).encode()


class _GbkNamed(zipfile.ZipInfo):
    """A zip entry named in GBK without the UTF-8 flag, as Alipay's bill archives are."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename, date_time=time.localtime()[:6])
        self.compress_type = zipfile.ZIP_DEFLATED

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's own name
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


@dataclass
class FakeOrder:
    """An order as a provider keeps it."""

    provider: Literal["wechatpay", "alipay"]
    out_trade_no: str
    fen: int
    notify_url: str
    channel: str
    state: str = "NOTPAY"
    transaction_id: str = ""
    paid_fen: int = 0
    paid_at: datetime | None = None
    refunded_fen: int = 0
    notifications: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


class FakeProviders:
    """Both fake providers and the orders they hold."""

    def __init__(
        self,
        keys: FakeKeys,
        *,
        wechat_signs_with: Literal["certificate", "public_key"] = "certificate",
        notify: bool = True,
    ) -> None:
        self.keys = keys
        self.wechat_signs_with = wechat_signs_with
        self.notify = notify
        self.orders: dict[tuple[str, str], FakeOrder] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.refunds_down = False  # answer refund requests with a 500, as an outage would
        self.sent: list[tuple[str, int]] = []  # (provider, the merchant's status) per delivery
        # When each order's notification was first posted and first answered received
        # (time.monotonic()), for timing what follows a payment.
        self.notified_at: dict[str, float] = {}
        self.received_at: dict[str, float] = {}
        self.http = httpx.AsyncClient(timeout=10)
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = FastAPI(title="fake payment providers")
        self.app.include_router(self._wechat_router())
        self.app.include_router(self._alipay_router())
        self.app.include_router(self._pay_router())

    async def aclose(self) -> None:
        """Stop pending deliveries and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()

    # --- WeChat Pay v3 ------------------------------------------------------------------
    def wechat_signed_headers(self, body: bytes, *, at: int | None = None) -> dict[str, str]:
        """Return the Wechatpay-* headers signing ``body`` as the platform does."""
        timestamp, nonce = str(at if at is not None else int(time.time())), secrets.token_hex(16)
        if self.wechat_signs_with == "public_key":
            key, serial = self.keys.wechat_public_key, self.keys.wechat_public_key_id
        else:
            key, serial = self.keys.wechat_platform, self.keys.wechat_platform_serial
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": _sign(key, message),
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Request-ID": secrets.token_hex(12),
        }

    def _wechat_answer(self, status: int, payload: dict[str, Any] | None) -> Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        return Response(
            body,
            status_code=status,
            media_type="application/json",
            headers=self.wechat_signed_headers(body),
        )

    def _wechat_caller_ok(self, request: Request, body: bytes) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("WECHATPAY2-SHA256-RSA2048 "):
            return "no WECHATPAY2-SHA256-RSA2048 authorization"
        fields = dict(_AUTH.findall(header))
        if fields.get("mchid") != MCHID or fields.get("serial_no") != MERCHANT_SERIAL:
            return "unknown mchid or serial_no"
        if abs(time.time() - int(fields.get("timestamp", "0"))) > 300:
            return "timestamp outside the window"
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        message = (
            (
                f"{request.method}\n{path}\n{fields.get('timestamp')}\n{fields.get('nonce_str')}\n"
            ).encode()
            + body
            + b"\n"
        )
        if not _verifies(self.keys.merchant.public_key(), message, fields.get("signature", "")):
            return "signature does not verify"
        return None

    def _transaction(self, order: FakeOrder) -> dict[str, Any]:
        state = order.state
        transaction: dict[str, Any] = {
            "appid": WECHAT_APPID,
            "mchid": MCHID,
            "out_trade_no": order.out_trade_no,
            "trade_state": state,
            "trade_state_desc": state,
            "trade_type": order.channel.upper(),
            "attach": "",
        }
        if order.paid_at is not None:
            transaction.update(
                transaction_id=order.transaction_id,
                bank_type="OTHERS",
                success_time=order.paid_at.astimezone(BEIJING).isoformat(timespec="seconds"),
                payer={"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                amount={
                    "total": order.paid_fen,
                    "payer_total": order.paid_fen,
                    "currency": "CNY",
                    "payer_currency": "CNY",
                },
            )
        return transaction

    def wechat_notification(
        self, resource: dict[str, Any], *, event_type: str, at: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Return (headers, body) of a signed notification sealing ``resource``."""
        nonce = secrets.token_hex(6)  # 12 characters: the GCM nonce is these bytes
        associated = "transaction" if event_type.startswith("TRANSACTION") else "refund"
        cipher = AES.new(self.keys.api_v3_key, AES.MODE_GCM, nonce=nonce.encode())
        cipher.update(associated.encode())
        sealed, tag = cipher.encrypt_and_digest(json.dumps(resource).encode())
        envelope = {
            "id": secrets.token_hex(18),
            "create_time": datetime.now(BEIJING).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功" if event_type.startswith("TRANSACTION") else "退款成功",
            "resource": {
                "original_type": "transaction" if associated == "transaction" else "refund",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(sealed + tag).decode(),
                "associated_data": associated,
                "nonce": nonce,
            },
        }
        # The provider's own spacing: the merchant must verify these bytes, not a re-dump.
        body = json.dumps(envelope, ensure_ascii=False, indent=None).encode()
        headers = {**self.wechat_signed_headers(body, at=at), "Content-Type": "application/json"}
        return headers, body

    def _wechat_router(self) -> APIRouter:
        router = APIRouter(prefix="/v3")

        @router.post("/pay/transactions/{kind}")
        async def create(kind: str, request: Request) -> Response:
            body = await request.body()
            problem = self._wechat_caller_ok(request, body)
            if problem:
                return JSONResponse({"code": "SIGN_ERROR", "message": problem}, status_code=401)
            order_fields = json.loads(body)
            if kind not in {"native", "jsapi", "h5"} or order_fields.get("mchid") != MCHID:
                return self._wechat_answer(400, {"code": "PARAM_ERROR", "message": kind})
            if kind == "jsapi" and not order_fields.get("payer", {}).get("openid"):
                return self._wechat_answer(400, {"code": "PARAM_ERROR", "message": "payer"})
            no = str(order_fields["out_trade_no"])
            self.orders[("wechatpay", no)] = FakeOrder(
                provider="wechatpay",
                out_trade_no=no,
                fen=int(order_fields["amount"]["total"]),
                notify_url=str(order_fields["notify_url"]),
                channel=kind,
            )
            pay = f"{str(request.base_url).rstrip('/')}/pay/wechatpay/{no}"
            answer = {
                "native": {"code_url": pay},
                "h5": {"h5_url": pay},
                "jsapi": {"prepay_id": "wx" + secrets.token_hex(15)},
            }[kind]
            return self._wechat_answer(200, answer)

        @router.get("/pay/transactions/out-trade-no/{no}")
        async def query(no: str, request: Request) -> Response:
            problem = self._wechat_caller_ok(request, b"")
            if problem:
                return JSONResponse({"code": "SIGN_ERROR", "message": problem}, status_code=401)
            order = self.orders.get(("wechatpay", no))
            if order is None:
                return self._wechat_answer(404, {"code": "ORDER_NOT_EXIST", "message": no})
            return self._wechat_answer(200, self._transaction(order))

        @router.post("/pay/transactions/out-trade-no/{no}/close")
        async def close(no: str, request: Request) -> Response:
            problem = self._wechat_caller_ok(request, await request.body())
            if problem:
                return JSONResponse({"code": "SIGN_ERROR", "message": problem}, status_code=401)
            order = self.orders.get(("wechatpay", no))
            if order is None:
                return self._wechat_answer(404, {"code": "ORDER_NOT_EXIST", "message": no})
            if order.state != "NOTPAY":
                return self._wechat_answer(400, {"code": "ORDERPAID", "message": order.state})
            order.state = "CLOSED"
            return self._wechat_answer(204, None)

        @router.post("/refund/domestic/refunds")
        async def refund(request: Request) -> Response:
            body = await request.body()
            problem = self._wechat_caller_ok(request, body)
            if problem:
                return JSONResponse({"code": "SIGN_ERROR", "message": problem}, status_code=401)
            if self.refunds_down:
                return JSONResponse({"code": "SYSTEM_ERROR", "message": "down"}, status_code=500)
            asked = json.loads(body)
            if str(asked["out_refund_no"]) in self.refunds:
                # The same refund number again: taken once, answered as it stands.
                return self._wechat_answer(200, self.refunds[str(asked["out_refund_no"])])
            order = self.orders.get(("wechatpay", str(asked["out_trade_no"])))
            fen = int(asked["amount"]["refund"])
            if order is None or order.state not in {"SUCCESS", "REFUND"}:
                return self._wechat_answer(400, {"code": "INVALID_REQUEST", "message": "unpaid"})
            if fen > order.paid_fen - order.refunded_fen:
                return self._wechat_answer(400, {"code": "NOT_ENOUGH", "message": "too much"})
            order.refunded_fen += fen
            order.state = "REFUND"
            record = {
                "refund_id": "50" + secrets.token_hex(14),
                "out_refund_no": asked["out_refund_no"],
                "transaction_id": order.transaction_id,
                "out_trade_no": order.out_trade_no,
                "channel": "ORIGINAL",
                "status": "PROCESSING",
                "create_time": datetime.now(BEIJING).isoformat(timespec="seconds"),
                "amount": {"total": order.paid_fen, "refund": fen, "currency": "CNY"},
            }
            self.refunds[str(asked["out_refund_no"])] = record
            resource = {
                "mchid": MCHID,
                "out_trade_no": order.out_trade_no,
                "transaction_id": order.transaction_id,
                "out_refund_no": record["out_refund_no"],
                "refund_id": record["refund_id"],
                "refund_status": "SUCCESS",
                "success_time": datetime.now(BEIJING).isoformat(timespec="seconds"),
                "amount": {
                    "total": order.paid_fen,
                    "refund": fen,
                    "payer_total": order.paid_fen,
                    "payer_refund": fen,
                },
            }
            headers, note = self.wechat_notification(resource, event_type="REFUND.SUCCESS")
            if self.notify:
                self._deliver(
                    "wechatpay", str(asked.get("notify_url") or order.notify_url), headers, note,
                    order,
                )  # fmt: skip
            answer = self._wechat_answer(200, record)
            record["status"] = "SUCCESS"  # what a later query finds
            return answer

        @router.get("/bill/tradebill")
        async def trade_bill(bill_date: date, request: Request) -> Response:
            problem = self._wechat_caller_ok(request, b"")
            if problem:
                return JSONResponse({"code": "SIGN_ERROR", "message": problem}, status_code=401)
            content = self.wechat_bill(bill_date)
            return self._wechat_answer(
                200,
                {
                    "hash_type": "SHA1",
                    "hash_value": hashlib.sha1(content).hexdigest(),
                    "download_url": f"{str(request.base_url).rstrip('/')}/v3/billdownload/file"
                    f"?token={bill_date.isoformat()}",
                },
            )

        @router.get("/billdownload/file")
        async def bill_file(token: date, request: Request) -> Response:
            problem = self._wechat_caller_ok(request, b"")
            if problem:
                return JSONResponse({"code": "SIGN_ERROR", "message": problem}, status_code=401)
            return Response(self.wechat_bill(token), media_type="text/csv")

        @router.get("/refund/domestic/refunds/{no}")
        async def refund_query(no: str, request: Request) -> Response:
            problem = self._wechat_caller_ok(request, b"")
            if problem:
                return JSONResponse({"code": "SIGN_ERROR", "message": problem}, status_code=401)
            record = self.refunds.get(no)
            if record is None:
                return self._wechat_answer(404, {"code": "RESOURCE_NOT_EXISTS", "message": no})
            return self._wechat_answer(200, record)

        return router

    def _paid_on(self, provider: str, day: date) -> list[FakeOrder]:
        return [
            order
            for (kind, _), order in sorted(self.orders.items())
            if kind == provider
            and order.paid_at is not None
            and order.paid_at.astimezone(BEIJING).date() == day
        ]

    def wechat_bill(self, day: date) -> bytes:
        """Return the day's trade bill as WeChat Pay writes it (each cell after a backtick)."""
        header = (
            "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
            "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
            "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
            "费率备注"
        )
        rows = [header]
        for order in self._paid_on("wechatpay", day):
            assert order.paid_at is not None
            yuan = f"{Decimal(order.paid_fen) / 100:.2f}"
            cells = [
                order.paid_at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
                WECHAT_APPID, MCHID, "0", "", order.transaction_id, order.out_trade_no,
                "o1", order.channel.upper(), "SUCCESS", "OTHERS", "CNY", yuan, "0.00",
                "0", "0", "0.00", "0.00", "", "", "top-up", "", "0.00", "0.60%", yuan,
                "0.00", "",
            ]  # fmt: skip
            rows.append(",".join(f"`{cell}" for cell in cells))
        rows.append(
            "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
        )
        rows.append(f"`{len(rows) - 2},`0.00,`0.00,`0.00,`0.00,`0.00,`0.00")
        return ("\n".join(rows) + "\n").encode()

    def alipay_bill(self, day: date) -> bytes:
        """Return the day's trade bill as Alipay serves it.

        A zip of two GBK CSV files named in GBK without the zip's UTF-8 flag: the detail
        (业务明细) with its note lines, a tab after every cell, the list's end line and the
        totals, and the summary (业务明细(汇总)); lines end in CRLF.
        """
        header = (
            "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
            "终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,"
            "支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,"
            "卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
        )
        account = f"{ALIPAY_SELLER_ID}0156"
        period = (
            f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]   "
            f"终止日期：[{day + timedelta(days=1):%Y年%m月%d日} 00:00:00]"
        )
        exported = f"#导出时间：[{datetime.now(BEIJING):%Y年%m月%d日 %H:%M:%S}]"
        rule = "#" + "-" * 41
        rows = [
            "#支付宝业务明细查询",
            f"#账号：[{account}]",
            period,
            f"{rule}业务明细列表{'-' * 40}",
            header,
        ]
        total = Decimal("0.00")
        paid = self._paid_on("alipay", day)
        for order in paid:
            assert order.paid_at is not None
            when = order.paid_at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
            yuan = f"{Decimal(order.paid_fen) / 100:.2f}"
            total += Decimal(order.paid_fen) / 100
            cells = [
                order.transaction_id, order.out_trade_no, "交易", "电费充值", when, when,
                "", "", "", "", "buyer", yuan, yuan, "0.00", "0.00", "0.00", "0.00", "0.00",
                "", "0.00", "0.00", "", "0.00", "0.00", "",
            ]  # fmt: skip
            rows.append(",".join(f"{cell}\t" for cell in cells))
        rows += [
            f"{rule}业务明细列表结束{'-' * 36}",
            f"#交易合计：{len(paid)}笔，商家实收共：{total:.2f}元，商家优惠共：0.00元",
            "#退款合计：0笔，商家实收退款共：0.00元，商家优惠退款共：0.00元",
            exported,
        ]
        summary = [
            "#支付宝业务汇总查询",
            f"#账号：[{account}]",
            period,
            f"{rule}业务汇总列表{'-' * 40}",
            "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,"
            "支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）",
            f"合计,,{len(paid)},0,{total:.2f},{total:.2f},0.00,0.00,0.00,0.00,0.00,{total:.2f}",
            f"{rule}业务汇总列表结束{'-' * 36}",
            exported,
        ]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            stem = f"{account}_{day:%Y%m%d}"
            for name, lines in (
                (f"{stem}_业务明细.csv", rows),
                (f"{stem}_业务明细(汇总).csv", summary),
            ):
                archive.writestr(_GbkNamed(name), ("\r\n".join(lines) + "\r\n").encode("gbk"))
        return buffer.getvalue()

    # --- Alipay -------------------------------------------------------------------------
    def _alipay_answer(self, method: str, member: dict[str, Any]) -> Response:
        name = method.replace(".", "_") + "_response"
        text = json.dumps(member, ensure_ascii=False)
        signed = f'{{"{name}":{text},"sign":"{_sign(self.keys.alipay, text.encode())}"}}'
        return Response(signed.encode(), media_type="application/json;charset=utf-8")

    def alipay_notification(self, order: FakeOrder, *, trade_status: str) -> bytes:
        """Return the form body of a signed asynchronous notification."""
        now = datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        yuan = f"{Decimal(order.paid_fen) / 100:.2f}"
        params = {
            "notify_time": now,
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "app_id": ALIPAY_APP_ID,
            "charset": "utf-8",
            "version": "1.0",
            "trade_no": order.transaction_id,
            "out_trade_no": order.out_trade_no,
            "buyer_id": "2088102122524333",
            "seller_id": ALIPAY_SELLER_ID,
            "trade_status": trade_status,
            "total_amount": yuan,
            "receipt_amount": yuan,
            "buyer_pay_amount": yuan,
            "gmt_create": now,
            "gmt_payment": now,
            "passback_params": "",
            "subject": "Electricity top-up & more",
        }
        params["sign"] = _sign(self.keys.alipay, _alipay_content(params, "sign", "sign_type"))
        params["sign_type"] = "RSA2"
        return urlencode(params).encode()

    def _alipay_caller_ok(self, params: dict[str, str]) -> bool:
        if params.get("app_id") != ALIPAY_APP_ID or params.get("sign_type") != "RSA2":
            return False
        content = _alipay_content(params, "sign")
        return _verifies(self.keys.alipay_app.public_key(), content, params.get("sign", ""))

    def _alipay_router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/gateway.do")
        async def wap_page(request: Request) -> Response:
            params = dict(request.query_params)
            if params.get("method") != "alipay.trade.wap.pay" or not self._alipay_caller_ok(params):
                return Response("invalid signature", status_code=400)
            biz = json.loads(params["biz_content"])
            no = str(biz["out_trade_no"])
            self.orders.setdefault(
                ("alipay", no),
                FakeOrder(
                    provider="alipay",
                    out_trade_no=no,
                    fen=int(Decimal(str(biz["total_amount"])) * 100),
                    notify_url=params.get("notify_url", ""),
                    channel="wap",
                ),
            )
            # The cashier page; "opening" it pays, as a payer confirming in the app would.
            return RedirectResponse(f"/pay/alipay/{no}", status_code=303)

        @router.post("/gateway.do")
        async def gateway(request: Request) -> Response:
            params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            method = params.get("method", "")
            if not self._alipay_caller_ok(params):
                return self._alipay_answer(
                    method,
                    {
                        "code": "40002",
                        "msg": "Invalid Arguments",
                        "sub_code": "isv.invalid-signature",
                    },
                )
            biz = json.loads(params.get("biz_content", "{}"))
            no = str(biz.get("out_trade_no", ""))
            order = self.orders.get(("alipay", no))
            if method == "alipay.data.dataservice.bill.downloadurl.query":
                day = str(biz.get("bill_date", ""))
                base = str(request.base_url).rstrip("/")
                return self._alipay_answer(
                    method,
                    {
                        "code": "10000",
                        "msg": "Success",
                        "bill_download_url": f"{base}/fake/alipay-bill?day={day}",
                    },
                )
            if method == "alipay.trade.precreate":
                self.orders[("alipay", no)] = FakeOrder(
                    provider="alipay",
                    out_trade_no=no,
                    fen=int(Decimal(str(biz["total_amount"])) * 100),
                    notify_url=params.get("notify_url", ""),
                    channel="qr",
                )
                pay = f"{str(request.base_url).rstrip('/')}/pay/alipay/{no}"
                return self._alipay_answer(
                    method,
                    {"code": "10000", "msg": "Success", "out_trade_no": no, "qr_code": pay},
                )
            if order is None:
                return self._alipay_answer(
                    method,
                    {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"},
                )
            if method == "alipay.trade.query":
                status = {"NOTPAY": "WAIT_BUYER_PAY", "CLOSED": "TRADE_CLOSED"}.get(
                    order.state, "TRADE_SUCCESS"
                )
                member: dict[str, Any] = {
                    "code": "10000",
                    "msg": "Success",
                    "out_trade_no": no,
                    "trade_status": status,
                    "total_amount": f"{Decimal(order.paid_fen or order.fen) / 100:.2f}",
                }
                if order.paid_at is not None:
                    member["trade_no"] = order.transaction_id
                    member["send_pay_date"] = order.paid_at.astimezone(BEIJING).strftime(
                        "%Y-%m-%d %H:%M:%S"
                    )
                return self._alipay_answer(method, member)
            if method == "alipay.trade.refund":
                fen = int(Decimal(str(biz["refund_amount"])) * 100)
                if order.paid_at is None or fen > order.paid_fen - order.refunded_fen:
                    return self._alipay_answer(
                        method,
                        {
                            "code": "40004",
                            "msg": "Business Failed",
                            "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                        },
                    )
                order.refunded_fen += fen
                return self._alipay_answer(
                    method,
                    {
                        "code": "10000",
                        "msg": "Success",
                        "fund_change": "Y",
                        "refund_fee": f"{Decimal(order.refunded_fen) / 100:.2f}",
                        "out_trade_no": no,
                        "trade_no": order.transaction_id,
                    },
                )
            return self._alipay_answer(
                method, {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.UNKNOWN"}
            )

        return router

    # --- paying -------------------------------------------------------------------------
    def pay(self, provider: str, out_trade_no: str, *, fen: int | None = None) -> FakeOrder:
        """Mark an order paid (``fen``: a different amount, to test mismatches)."""
        order = self.orders[(provider, out_trade_no)]
        if order.paid_at is None:
            order.state = "SUCCESS"
            order.paid_fen = order.fen if fen is None else fen
            order.paid_at = datetime.now(UTC).replace(microsecond=0)
            prefix = "4200" if provider == "wechatpay" else "2026"
            order.transaction_id = prefix + secrets.token_hex(12)
        return order

    def paid_notification(self, order: FakeOrder) -> tuple[dict[str, str], bytes]:
        """Return (headers, body) of the notification a paid order sends."""
        if order.provider == "wechatpay":
            return self.wechat_notification(
                self._transaction(order), event_type="TRANSACTION.SUCCESS"
            )
        body = self.alipay_notification(order, trade_status="TRADE_SUCCESS")
        return {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, body

    def _deliver(
        self, provider: str, url: str, headers: dict[str, str], body: bytes, order: FakeOrder
    ) -> None:
        order.notifications.append((headers, body))
        task = asyncio.create_task(self._send(provider, url, headers, body, order.out_trade_no))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, provider: str, url: str, headers: dict[str, str], body: bytes, out_trade_no: str
    ) -> None:
        for pause in (0.0, *RETRY_PAUSES):
            await asyncio.sleep(pause)
            self.notified_at.setdefault(out_trade_no, time.monotonic())
            try:
                answer = await self.http.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                log.info("fake %s: notification to %s failed: %r", provider, url, error)
                continue
            self.sent.append((provider, answer.status_code))
            received = (
                answer.status_code in {200, 204}
                if provider == "wechatpay"
                else answer.text == "success"
            )
            if received:
                self.received_at.setdefault(out_trade_no, time.monotonic())
                return

    def _pay_router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/pay/{provider}/{out_trade_no}")
        async def pay_page(
            provider: str, out_trade_no: str, fen: int | None = None, notify: bool = True
        ) -> Response:
            if (provider, out_trade_no) not in self.orders:
                return Response("no such order", status_code=404, media_type="text/plain")
            order = self.orders[(provider, out_trade_no)]
            if order.state == "CLOSED":
                return Response("order closed", status_code=409, media_type="text/plain")
            first = order.paid_at is None
            self.pay(provider, out_trade_no, fen=fen)
            if first:
                headers, body = self.paid_notification(order)
                if self.notify and notify:
                    self._deliver(provider, order.notify_url, headers, body, order)
                else:  # kept, not sent: a notification lost on the way
                    order.notifications.append((headers, body))
            yuan = Decimal(order.paid_fen) / 100
            return Response(
                f"paid {yuan:.2f} CNY for {out_trade_no} ({provider})\n", media_type="text/plain"
            )

        @router.get("/fake/alipay-bill")
        async def alipay_bill(day: date) -> Response:
            return Response(self.alipay_bill(day), media_type="application/zip")

        @router.get("/fake/notifications/{provider}/{out_trade_no}")
        async def notifications(provider: str, out_trade_no: str) -> list[dict[str, Any]]:
            order = self.orders.get((provider, out_trade_no))
            return [
                {"headers": h, "body": b.decode()}
                for h, b in (order.notifications if order else [])
            ]

        return router
