"""The providers' notifications: verified on the raw bytes, credited once, answered as each
provider expects (WeChat Pay: the status code; Alipay: the text ``success``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from prepaid_common.outbox import ServiceStore

from payments.domain import alipay, wechatpay
from payments.domain.orders import Provider
from payments.metrics import NOTIFICATIONS
from payments.operations.orders import Credit, credit_paid, raise_issue
from payments.operations.refunds import settle_refund
from payments.providers import alipay as alipay_client
from payments.providers import wechatpay as wechat_client
from payments.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookAnswer:
    """What to send back to the provider."""

    status: int
    body: bytes
    media_type: str


_WECHAT_OK = WebhookAnswer(204, b"", "application/json")
_ALIPAY_OK = WebhookAnswer(200, b"success", "text/plain")
_ALIPAY_FAIL = WebhookAnswer(400, b"failure", "text/plain")


def _wechat_fail(status: int, message: str) -> WebhookAnswer:
    body = json.dumps({"code": "FAIL", "message": message}).encode()
    return WebhookAnswer(status, body, "application/json")


def _refused(provider: Provider, reason: str, request_id: str) -> None:
    NOTIFICATIONS.labels(provider.value, "refused").inc()
    log.warning("refused a %s notification (request %s): %s", provider.value, request_id, reason)


async def receive_wechatpay(
    service_store: ServiceStore,
    providers: ProviderRegistry,
    *,
    headers: Mapping[str, str],
    body: bytes,
) -> WebhookAnswer:
    """Verify, decrypt and act on a WeChat Pay notification; answer 204 or 4xx/5xx FAIL."""
    lowered = {name.lower(): value for name, value in headers.items()}
    request_id = lowered.get("request-id", "-")
    client = providers.wechat
    if client is None:
        _refused(Provider.WECHATPAY, "WeChat Pay is not configured", request_id)
        return _wechat_fail(404, "WeChat Pay is not configured here")
    try:
        client.verify(headers=lowered, body=body)
        creds = client.credentials
        resource = wechatpay.notification_transaction(body, creds.api_v3_key)
    except wechatpay.WechatRefused as refused:
        _refused(Provider.WECHATPAY, refused.reason, request_id)
        return _wechat_fail(401, "signature verification failed")
    event = str(resource.get("event_type", ""))
    if event.startswith("REFUND."):
        await settle_refund(
            service_store,
            out_refund_no=str(resource.get("out_refund_no", "")),
            succeeded=resource.get("refund_status") == "SUCCESS",
        )
        NOTIFICATIONS.labels(Provider.WECHATPAY.value, "refund").inc()
        return _WECHAT_OK
    if resource.get("trade_state") != "SUCCESS":
        NOTIFICATIONS.labels(Provider.WECHATPAY.value, "ignored").inc()
        return _WECHAT_OK
    if resource.get("mchid") != creds.mchid or resource.get("appid") != creds.appid:
        await _identity_mismatch(
            service_store,
            Provider.WECHATPAY,
            resource,
            f"paid to mchid {resource.get('mchid')} appid {resource.get('appid')}",
        )
        return _WECHAT_OK
    try:
        report = wechat_client.paid_report(resource)
    except wechatpay.WechatRefused as refused:
        _refused(Provider.WECHATPAY, refused.reason, request_id)
        return _wechat_fail(400, "transaction incomplete")
    outcome = await credit_paid(service_store, report)
    NOTIFICATIONS.labels(Provider.WECHATPAY.value, outcome.value).inc()
    # Flagged or not, a verified notification is answered received: retrying changes nothing.
    return _WECHAT_OK


async def receive_alipay(
    service_store: ServiceStore, providers: ProviderRegistry, *, body: bytes
) -> WebhookAnswer:
    """Verify and act on an Alipay asynchronous notification; answer ``success`` once handled."""
    creds = providers.alipay_credentials
    if creds is None:
        _refused(Provider.ALIPAY, "Alipay is not configured", "-")
        return _ALIPAY_FAIL
    try:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        _refused(Provider.ALIPAY, "body is not a form", "-")
        return _ALIPAY_FAIL
    notify_id = params.get("notify_id", "-")
    try:
        alipay.verify_notification(params, creds.alipay_key)
    except alipay.AlipayRefused as refused:
        _refused(Provider.ALIPAY, refused.reason, notify_id)
        return _ALIPAY_FAIL
    if params.get("app_id") != creds.app_id or params.get("seller_id") != creds.seller_id:
        await _identity_mismatch(
            service_store,
            Provider.ALIPAY,
            params,
            f"paid to app {params.get('app_id')} seller {params.get('seller_id')}",
        )
        return _ALIPAY_OK
    if params.get("trade_status") not in alipay.PAID_STATES:
        NOTIFICATIONS.labels(Provider.ALIPAY.value, "ignored").inc()
        return _ALIPAY_OK
    try:
        report = alipay_client.paid_report(params)
    except alipay.AlipayRefused as refused:
        _refused(Provider.ALIPAY, refused.reason, notify_id)
        return _ALIPAY_FAIL
    # TRADE_FINISHED after TRADE_SUCCESS (even after a refund) is the same payment: the
    # order is already paid by that trade_no, so it is a duplicate, never a new credit.
    outcome = await credit_paid(service_store, report)
    NOTIFICATIONS.labels(Provider.ALIPAY.value, outcome.value).inc()
    return _ALIPAY_OK


async def _identity_mismatch(
    service_store: ServiceStore, provider: Provider, fields: Mapping[str, object], detail: str
) -> None:
    NOTIFICATIONS.labels(provider.value, Credit.FLAGGED.value).inc()
    await raise_issue(
        service_store,
        kind="not_our_merchant",
        provider=provider,
        out_trade_no=str(fields.get("out_trade_no", "")) or None,
        reference=str(fields.get("transaction_id") or fields.get("trade_no") or ""),
        detail=detail,
    )
