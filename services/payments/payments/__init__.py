"""Payments: counter cash top-ups now; WeChat Pay and Alipay webhooks in their own issue."""
