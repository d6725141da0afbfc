"""What the payments API does: each use case one unit of work, raising service errors.

``counter``: cash at the counter; ``orders``: provider orders, crediting a paid one once,
reconciliation and bills; ``webhooks``: the providers' notifications; ``refunds``.
"""

from payments.operations.counter import get_payment, list_payments, record_counter_top_up

__all__ = ["get_payment", "list_payments", "record_counter_top_up"]
