"""What crosses a service boundary: bus messages and the HTTP APIs' models.

- ``contracts.messages``: the versioned bus messages and their envelope (re-exported here,
  so ``from prepaid_common.contracts import ReadingV1`` reads as before);
- ``contracts.identifiers``: the one rule every id follows;
- ``contracts.api.<area>``: request and response models of the HTTP APIs, by area.

Pydantic only: no server, database or service imports, so any process may import them.
"""

from prepaid_common.contracts.identifiers import IDENTIFIER_PATTERN, Identifier
from prepaid_common.contracts.messages import (
    MESSAGE_TYPES,
    AnomalyV1,
    BalanceChangedV1,
    CommandAction,
    CommandOutcomeV1,
    CommandRequestV1,
    CommandResultV1,
    CreditRequestedV1,
    Envelope,
    Message,
    MeterStatusV1,
    PaymentSucceededV1,
    ReadingBatchV1,
    ReadingV1,
    RelayAction,
    RelayRequestedV1,
    RelayState,
    SupplyDecidedV1,
    TouPeriod,
    open_envelope,
    utcnow,
)

__all__ = [
    "IDENTIFIER_PATTERN",
    "MESSAGE_TYPES",
    "AnomalyV1",
    "BalanceChangedV1",
    "CommandAction",
    "CommandOutcomeV1",
    "CommandRequestV1",
    "CommandResultV1",
    "CreditRequestedV1",
    "Envelope",
    "Identifier",
    "Message",
    "MeterStatusV1",
    "PaymentSucceededV1",
    "ReadingBatchV1",
    "ReadingV1",
    "RelayAction",
    "RelayRequestedV1",
    "RelayState",
    "SupplyDecidedV1",
    "TouPeriod",
    "open_envelope",
    "utcnow",
]
