"""The one rule for the ids of meters, DTUs, accounts, tariffs and users.

Ids appear in URL paths, in routing keys (``reading.v1.<meter id>``) and in the gateway's
list of accounts a tenant may see, so every service must accept exactly the same ones: an
id one service takes and another refuses is an account that can be opened but never given
to its tenant. Letters, digits, ``_``, ``-`` and ``:`` (``shop:12``); no dots, which
separate the words of a routing key, and nothing that needs escaping in a path.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_:-]{1,64}$"

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
