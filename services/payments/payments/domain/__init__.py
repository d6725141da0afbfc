"""Pure rules for taking money in: counter cash, provider orders, and the providers' signatures.

``counter``: cash against a receipt; ``money``: yuan and fen; ``orders``: an order's life;
``wechatpay`` and ``alipay``: each provider's signatures, exactly as its documentation says.
"""

from payments.domain.counter import (
    MAX_REFERENCE_LENGTH,
    CounterTopUp,
    check_replay,
    validate_amount,
    validate_receipt,
)

__all__ = [
    "MAX_REFERENCE_LENGTH",
    "CounterTopUp",
    "check_replay",
    "validate_amount",
    "validate_receipt",
]
