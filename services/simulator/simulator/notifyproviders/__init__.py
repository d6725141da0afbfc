"""Fake SMS (Aliyun, Tencent Cloud), WeChat official-account and SMTP providers for tests
and the demo: the real protocols, checked with keys of their own, and a record of what
arrived (``GET /received``).

Written apart from the notifications service (and importing nothing of it), so a mistake
in one is caught by the other. Not for production: it delivers nothing to anyone.
"""

from simulator.notifyproviders.app import FakeNotifyProviders, NotifyKeys
from simulator.notifyproviders.smtp import FakeSmtpServer

__all__ = ["FakeNotifyProviders", "FakeSmtpServer", "NotifyKeys"]
