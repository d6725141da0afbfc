"""The payments service's own metrics."""

from __future__ import annotations

from prometheus_client import Counter

NOTIFICATIONS = Counter(
    "prepaid_payments_notifications",
    "Provider notifications by outcome: credited, duplicate, flagged, ignored, refused",
    ["provider", "outcome"],
)


# Created at 0, so that the verification-failure panel and alert see 0, not no data.
for _provider in ("wechatpay", "alipay"):
    for _outcome in ("credited", "duplicate", "flagged", "ignored", "refused", "refund"):
        NOTIFICATIONS.labels(_provider, _outcome)
