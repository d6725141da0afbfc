"""Fake WeChat Pay and Alipay for tests and the demo: the real protocols, keys of their own.

Written apart from the payments service (and importing nothing of it), so a mistake made in
one is caught by the other. Not for production: it pays whatever it is asked to.
"""

from simulator.payproviders.app import FakeProviders
from simulator.payproviders.keys import FakeKeys
from simulator.payproviders.server import BackgroundServer

__all__ = ["BackgroundServer", "FakeKeys", "FakeProviders"]
